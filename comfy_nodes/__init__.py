"""artcloak for ComfyUI: cloak (style protection), shade (concept poisoning), verify, save
protected (PNGs without workflow metadata), and the style target / concept anchor nodes that
make their targets with ComfyUI's own sampler.

ComfyUI loads this folder from its ``custom_nodes`` and calls ``comfy_entrypoint`` (the V3
node API). artcloak itself must be installed in ComfyUI's Python environment, from the same
checkout as this pack (install.py installs it editable); at load the pack checks that it is,
and logs how to fix it if not.
"""

from __future__ import annotations

import logging
from pathlib import Path

try:
    import artcloak
except ImportError as error:  # ComfyUI logs this line and goes on without the pack
    raise ImportError(
        "artcloak is not installed in ComfyUI's Python; run "
        "'python comfy_nodes/install.py /path/to/ComfyUI' from the artcloak repository."
    ) from error

from comfy_api.latest import ComfyExtension, io

from . import compat

if compat.check_at_load(Path(__file__).parent, artcloak.__file__):
    logging.getLogger("artcloak.comfy").warning("artcloak: %s", compat.PROBLEM)

from . import ensemble, nodes, save, targets  # noqa: E402  (after the check, whose warning comes first)

# The editor extension in web/: each seed starts at the mode its node asks for ("fixed").
WEB_DIRECTORY = "./web"


class ArtcloakExtension(ComfyExtension):
    async def get_node_list(self) -> list[type[io.ComfyNode]]:
        return [*nodes.NODES, *ensemble.NODES, *save.NODES, *targets.NODES]


async def comfy_entrypoint() -> ArtcloakExtension:
    return ArtcloakExtension()
