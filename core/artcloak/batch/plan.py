"""What a batch run does: the inputs under SRC, their outputs mirrored under DEST, which are
already done (resume), and chunks of images that share a working size.

SRC is a folder (searched recursively), a glob pattern or a list file (one path per line,
relative paths are relative to the list file). Every output path is DEST / (the input's path
relative to SRC's root), with the output format's extension.
"""

from __future__ import annotations

import glob
import json
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from ..engine import (
    FORMAT_EXTENSIONS,
    IMAGE_EXTENSIONS,
    LOSSLESS_EXTENSIONS,
    check_output_fits,
    format_for_path,
)
from ..errors import ArtcloakError
from ..report import report_path, settings_section
from ..settings import ModelSettings, ProtectionSettings

# Imported where used, not here: reading processes import this module and need no torch.

GLOB_CHARACTERS = set("*?[")
SUMMARY_NAME = "artcloak-batch.json"  # the run's summary and failures, in DEST


@dataclass(frozen=True)
class Item:
    """One input file and where its protected copy goes."""

    source: Path
    output: Path
    relative: str  # the input's path relative to SRC's root, for people


@dataclass(frozen=True)
class Refused:
    """An input whose output cannot be written, and why: said before any model loads."""

    item: Item
    reason: str


@dataclass(frozen=True)
class Plan:
    root: Path
    todo: list[Item]
    skipped: list[Item]
    run_key: dict  # what must match in an existing report for its output to be kept
    refused: list[Refused] = field(default_factory=list)  # outputs that cannot be written

    @property
    def total(self) -> int:
        return len(self.todo) + len(self.skipped) + len(self.refused)


def find_inputs(src: Path) -> tuple[Path, list[Path]]:
    """SRC's root folder and its input files, sorted. ArtcloakError when there are none."""
    text = str(src)
    if src.is_dir():
        root = src
        sources = [
            path
            for path in src.rglob("*")
            if path.suffix.lower() in IMAGE_EXTENSIONS
            and path.is_file()
            and not any(part.startswith(".") for part in path.relative_to(src).parts)
        ]
    elif GLOB_CHARACTERS & set(text):
        root = _glob_root(text)
        sources = [Path(p) for p in glob.glob(text, recursive=True) if Path(p).is_file()]
    elif src.is_file() and src.suffix.lower() in IMAGE_EXTENSIONS:
        root, sources = src.parent, [src]
    elif src.is_file():
        root, sources = _read_list(src)
    else:
        raise ArtcloakError(f"{src} does not exist; give a folder, a glob pattern or a list file.")
    if not sources:
        raise ArtcloakError(f"No images found in {src}.")
    return root, sorted(set(sources))


def _glob_root(pattern: str) -> Path:
    """The folders before the first part with a wildcard: ``art/**/*.png`` -> ``art``."""
    fixed: list[str] = []
    for part in Path(pattern).parts:
        if GLOB_CHARACTERS & set(part):
            break
        fixed.append(part)
    return Path(*fixed) if fixed else Path(".")


def _read_list(path: Path) -> tuple[Path, list[Path]]:
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as error:
        raise ArtcloakError(f"Cannot read the list file {path}: {error}.") from None
    sources = []
    for line in lines:
        line = line.strip()
        if line and not line.startswith("#"):
            entry = Path(line).expanduser()
            sources.append(entry if entry.is_absolute() else path.parent / entry)
    if not sources:
        return path.parent, []
    root = Path(os.path.commonpath([os.path.abspath(p.parent) for p in sources]))
    return root, sources


def check_folders(root: Path, sources: Sequence[Path], dest: Path, recursive: bool = True) -> None:
    """DEST must be a folder that holds no input, and outside SRC when SRC is searched
    recursively (a folder, a ``**`` pattern): a later run would take the copies for inputs."""
    if dest.exists() and not dest.is_dir():
        raise ArtcloakError(f"DEST {dest} is a file; give a folder for the protected copies.")
    dest_abs, root_abs = dest.resolve(), root.resolve()
    if dest_abs == root_abs or (recursive and root_abs in dest_abs.parents):
        raise ArtcloakError(
            f"DEST {dest} is inside SRC {root}; choose a folder outside it, so that originals "
            "and protected copies never mix."
        )
    for source in sources:
        if dest_abs in source.resolve().parents:
            raise ArtcloakError(f"The input {source} is inside DEST {dest}; choose another DEST.")


def output_paths(root: Path, sources: Sequence[Path], dest: Path, fmt: str | None) -> list[Item]:
    """Mirror each input under DEST; lossy inputs become PNG unless a format is given.
    Two inputs that would share an output name get distinct names by one rule, whatever the
    order: an input already in the output's format keeps the plain name (``cat.png``), the
    other takes its own extension into the name (``cat.jpg`` -> ``cat-jpg.png``)."""
    planned = [_mirrored(root, source, dest, fmt) for source in sources]
    # Inputs already in the output's format claim their plain names first.
    claims = sorted(range(len(planned)), key=lambda index: not planned[index][2])
    taken: set[Path] = set()
    outputs: dict[int, Path] = {}
    for index in claims:
        relative, output, _ = planned[index]
        if output in taken:
            suffix = sources[index].suffix.lower().lstrip(".")
            output = dest / relative.with_name(f"{relative.stem}-{suffix}{output.suffix}")
        taken.add(output)
        outputs[index] = output
    return [
        Item(source, outputs[index], planned[index][0].as_posix())
        for index, source in enumerate(sources)
    ]


def _mirrored(root: Path, source: Path, dest: Path, fmt: str | None) -> tuple[Path, Path, bool]:
    """(path relative to SRC, plain output path, whether the input is in the output's format)."""
    relative = Path(os.path.relpath(source, root))
    suffix = source.suffix.lower()
    if fmt:
        extension = FORMAT_EXTENSIONS[fmt]
    else:
        extension = suffix if suffix in LOSSLESS_EXTENSIONS else ".png"
    output = dest / relative.with_suffix(extension)
    return relative, output, suffix == extension


def run_key(settings: ProtectionSettings, models: ModelSettings, fmt: str | None) -> dict:
    """What a report must say for its output to count as done with these settings."""
    from ..engine import describe_target

    key = {
        "settings": settings_section(settings),
        "target": describe_target(settings.target, settings.mode).as_dict(),
        "encoders": list(models.encoders),
        "encoder_config": models.encoder_config,
        "precision": models.precision.value,
        "lpips_net": models.lpips_net.value,
        "lpips_random_backbone": models.lpips_random_backbone,
        "format": fmt,
    }
    return json.loads(json.dumps(key))


def source_stamp(source: Path) -> dict:
    stat = source.stat()
    return {"size": stat.st_size, "mtime_ns": stat.st_mtime_ns}


def is_done(item: Item, key: dict) -> bool:
    """The output and its report exist, for this input as it is now, with these settings."""
    report = report_path(item.output)
    if not (item.output.is_file() and report.is_file()):
        return False
    try:
        batch = json.loads(report.read_text(encoding="utf-8")).get("batch") or {}
        return batch.get("run") == key and batch.get("source") == source_stamp(item.source)
    except (OSError, ValueError, AttributeError):
        return False


def make_plan(
    src: Path,
    dest: Path,
    settings: ProtectionSettings,
    models: ModelSettings,
    fmt: str | None = None,
    redo: bool = False,
) -> Plan:
    root, sources = find_inputs(src)
    check_folders(root, sources, dest, recursive=src.is_dir() or "**" in str(src))
    key = run_key(settings, models, fmt)
    todo, skipped, refused = [], [], []
    for item in output_paths(root, sources, dest, fmt):
        if not redo and is_done(item, key):
            skipped.append(item)
        elif (reason := _refusal(item)) is not None:
            refused.append(Refused(item, reason))
        else:
            todo.append(item)
    return Plan(root=root, todo=todo, skipped=skipped, run_key=key, refused=refused)


def _refusal(item: Item) -> str | None:
    """Why the item's output cannot be written (from the input's header), or None."""
    try:
        check_output_fits(item.source, format_for_path(item.output))
    except ArtcloakError as error:
        return str(error)
    return None


def chunks(items: Sequence[Item], size: int, resolution: int) -> list[list[Item]]:
    """Items bucketed by working size (read from the file headers), in chunks of ``size``:
    images optimised together share a tensor shape, so nothing is padded."""
    from ..engine import working_size

    buckets: dict[tuple[int, int], list[Item]] = {}
    for item in items:
        buckets.setdefault(_working_size(item.source, resolution, working_size), []).append(item)
    return [
        bucket[start : start + size]
        for _, bucket in sorted(buckets.items())
        for start in range(0, len(bucket), size)
    ]


def _working_size(path: Path, resolution: int, size_for) -> tuple[int, int]:
    """From the header only; (0, 0) when it cannot be read (loading will say why)."""
    from PIL import Image

    try:
        with Image.open(path) as image:
            width, height = image.size
            if image.format in ("JPEG", "TIFF", "WEBP") and image.getexif().get(0x0112, 1) > 4:
                width, height = height, width
    except Exception:  # noqa: BLE001 - any unreadable header sorts first and fails on load
        return (0, 0)
    if min(width, height) < 1:
        return (0, 0)
    return size_for(width, height, resolution)
