"""artcloak for ComfyUI: cloak (style protection), shade (concept poisoning), verify, and the
style target / concept anchor nodes that make their targets with ComfyUI's own sampler.

ComfyUI loads this folder from its ``custom_nodes`` and calls ``comfy_entrypoint`` (the V3
node API). artcloak itself must be installed in ComfyUI's Python environment.
"""

from __future__ import annotations

try:
    import artcloak  # noqa: F401
except ImportError as error:  # ComfyUI logs this line and goes on without the pack
    raise ImportError(
        "artcloak is not installed in ComfyUI's Python; run "
        "'python comfy_nodes/install.py /path/to/ComfyUI' from the artcloak repository."
    ) from error

from comfy_api.latest import ComfyExtension, io

from . import nodes, targets


class ArtcloakExtension(ComfyExtension):
    async def get_node_list(self) -> list[type[io.ComfyNode]]:
        return [*nodes.NODES, *targets.NODES]


async def comfy_entrypoint() -> ArtcloakExtension:
    return ArtcloakExtension()
