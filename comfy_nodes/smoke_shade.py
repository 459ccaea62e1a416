"""Run the concept-poisoning chain through a real ComfyUI, over its own HTTP API.

    python comfy_nodes/smoke_shade.py --comfyui /path/to/ComfyUI [--cpu]

As smoke.py does for the cloak workflow, with ``workflows/shade_concept_api.json``: artcloak
Concept anchor makes the anchors with the graph's checkpoint, one Shade protects the picture
for the checkpoint's VAE and a second Shade (``original`` and ``previous_report`` connected)
for a second VAE, Save Protected writes it and Verify checks it against the original.
Offline, the checkpoint is a full-size SD 1.5 one with random weights, built with ComfyUI's
own UNet and CLIP text encoder classes, and the second VAE another random SD-shaped VAE: every
code path is real, the pictures mean nothing. The run is made small (one 64 x 64 anchor in 2
sampler steps; ``--steps`` at ``--resolution`` for the Shades). Prints a JSON summary; exit
status 0 when the chain's Verify says the budget held against the original.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import smoke

WORKFLOW = smoke.PACK / "workflows" / "shade_concept_api.json"
SHADES = ("5", "6")  # the first Shade (the checkpoint's VAE) and the second (SDXL VAE)
# the SD 1.5 UNet's architecture as its original config states it (v1-inference.yaml)
SD15_UNET = {
    "image_size": 32, "in_channels": 4, "out_channels": 4, "model_channels": 320,
    "attention_resolutions": [4, 2, 1], "num_res_blocks": 2, "channel_mult": [1, 2, 4, 4],
    "num_heads": 8, "use_spatial_transformer": True, "transformer_depth": 1, "context_dim": 768,
    "use_linear_in_transformer": False, "legacy": False, "adm_in_channels": None,
    "use_checkpoint": False,
}  # fmt: skip


def _randomise(module, seed: int) -> dict:
    """Small random weights (ComfyUI builds its modules without initialising them)."""
    import torch

    generator = torch.Generator().manual_seed(seed)
    state = {}
    for name, tensor in module.state_dict().items():
        if not tensor.is_floating_point():  # position ids and the like
            state[name] = tensor.clone()
        elif tensor.dim() > 1:
            state[name] = torch.randn(tensor.shape, generator=generator) * 0.02
        elif name.endswith("weight"):  # norms
            state[name] = torch.ones(tensor.shape)
        else:
            state[name] = torch.zeros(tensor.shape)
    return state


def random_sd15_checkpoint(path: Path, comfyui: Path) -> None:
    """A full-size SD 1.5 checkpoint with random weights, in the original key layout
    (model.diffusion_model., cond_stage_model., first_stage_model.), about 2 GB in fp16."""
    import torch
    from safetensors.torch import save_file

    sys.path.insert(0, str(comfyui))
    import comfy.cli_args

    comfy.cli_args.args.cpu = True  # only to build modules: no device is asked for
    import comfy.model_detection
    import comfy.ops
    import comfy.sd1_clip
    from comfy.ldm.modules.diffusionmodules.openaimodel import UNetModel

    config = comfy.model_detection.convert_config(SD15_UNET)
    unet = UNetModel(**config, operations=comfy.ops.disable_weight_init)
    clip = comfy.sd1_clip.SDClipModel(device="cpu", dtype=torch.float32)
    parts = {
        "model.diffusion_model.": _randomise(unet, 0),
        "cond_stage_model.": _randomise(clip, 1),
        "first_stage_model.": smoke.random_vae_state(2),
    }
    state = {
        prefix + name: (value.half() if value.is_floating_point() else value).contiguous()
        for prefix, part in parts.items()
        for name, value in part.items()
    }
    save_file(state, str(path))


def _small(workflow: dict, args: argparse.Namespace) -> dict:
    for key, node in workflow.items():
        node.pop("_meta", None)
        if node["class_type"] == "artcloak.ConceptAnchor":
            node["inputs"].update(count=1, width=64, height=64, steps=2)
        if key in SHADES:
            node["inputs"].update(steps=args.steps, resolution=args.resolution)
        if node["class_type"] == "artcloak.Verify":
            node["inputs"]["resolution"] = args.resolution
    return workflow


def _prepare(args: argparse.Namespace, comfyui: Path, base: Path, workflow: dict) -> None:
    """The checkpoint, the second VAE and the picture the workflow names."""
    nodes = {node["class_type"]: node["inputs"] for node in workflow.values()}
    checkpoint = base / "models" / "checkpoints" / nodes["CheckpointLoaderSimple"]["ckpt_name"]
    if not checkpoint.exists():
        random_sd15_checkpoint(checkpoint, comfyui)
    vae = base / "models" / "vae" / nodes["VAELoader"]["vae_name"]
    if not vae.exists():
        smoke.random_vae(vae, seed=3)
    smoke.picture(args.width, args.height, 0).save(base / "input" / nodes["LoadImage"]["image"])


def run(args: argparse.Namespace) -> dict:
    comfyui = smoke.comfyui_checkout(args.comfyui)
    base = smoke.base_directory(args.keep)
    workflow = _small(json.loads(WORKFLOW.read_text()), args)
    _prepare(args, comfyui, base, workflow)
    server = smoke.ComfyUIServer(args, comfyui, base)
    try:
        history = smoke.run_prompt(
            server.url, workflow, server.process, server.started, args.timeout, server.log_path
        )
    finally:
        server.stop()
    outputs = history.get("outputs", {})

    def shown(node: str) -> dict | None:  # a report shown by a Preview as Text node
        text = outputs.get(node, {}).get("text") or [None]
        return json.loads(text[0]) if text[0] else None

    saved = [
        base / "output" / item.get("subfolder", "") / item["filename"]
        for item in outputs.get("7", {}).get("images", [])
    ]
    verify = shown("11")
    summary = {
        "status": history["status"].get("status_str"),
        "original": str(base / "input" / workflow["2"]["inputs"]["image"]),
        "saved": [str(path) for path in saved],
        "png_chunks": sorted({chunk for path in saved for chunk in smoke.png_chunks(path)}),
        "chain_report": shown("10"),
        "verify": verify,
        "within_budget": bool(verify and verify["within_budget"]),
        "log": str(server.log_path),
    }
    if summary["status"] != "success":
        summary["messages"] = history["status"].get("messages")
    return summary


def main(argv: list[str] | None = None) -> int:
    parser = smoke.server_arguments(__doc__.split("\n\n")[0])
    parser.add_argument("--steps", type=int, default=3, help="each Shade's optimisation steps")
    parser.add_argument("--resolution", type=int, default=64, help="working resolution")
    return smoke.report(run(parser.parse_args(argv)))


if __name__ == "__main__":
    sys.exit(main())
