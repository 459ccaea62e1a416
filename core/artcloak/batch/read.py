"""Reading a chunk of inputs: a Ray CPU task, so this module stays free of torch (a reading
process starts in about a second instead of importing the models' libraries)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from ..engine import LoadedImage, check_output_path, load_image
from ..errors import ArtcloakError
from .outcome import ItemOutcome, failed
from .plan import Item, source_stamp


@dataclass
class Loaded:
    """An input read and ready to protect, with the stamp of the file that was read."""

    item: Item
    stamp: dict
    image: LoadedImage


def load_chunk(items: Sequence[Item]) -> list[Loaded | ItemOutcome]:
    """Read each input; a file that cannot be used becomes a failed outcome."""
    loaded: list[Loaded | ItemOutcome] = []
    for item in items:
        try:
            stamp = source_stamp(item.source)
            item.output.parent.mkdir(parents=True, exist_ok=True)
            # DEST belongs to the run: outputs that are not done are replaced, originals never.
            check_output_path(item.source, item.output, overwrite=True)
            loaded.append(Loaded(item, stamp, load_image(item.source)))
        except ArtcloakError as error:
            loaded.append(failed(item, str(error)))
        except OSError as error:
            loaded.append(failed(item, f"Cannot read {item.source}: {error.strerror or error}."))
    return loaded
