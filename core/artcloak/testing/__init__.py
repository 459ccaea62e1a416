"""Tiny, deterministic VAEs and the files artists have, for tests and benches.

Nothing here downloads anything: the models are built with random weights from a seed, and
written in every layout :func:`artcloak.engine.encoders.load_encoder` accepts (a diffusers folder,
a pipeline folder with ``vae/``, single ``.safetensors`` files in the diffusers and the
original SD key layouts, a full checkpoint with the VAE under ``first_stage_model.``, and a
``.ckpt`` pickle of that checkpoint).
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

__all__ = [
    "full_size_vae_config",
    "make_tiny_vae",
    "save_tiny_models",
    "tiny_vae_config",
    "to_original_layout",
]


def tiny_vae_config(latent_channels: int = 4, *, quant_conv: bool | None = None) -> dict:
    """A tiny AutoencoderKL config with SD's 8x downsampling (4 blocks); fast at 64x64.

    ``quant_conv`` defaults to what the real families do: present for 4 latent channels
    (SD 1.x/2.x/XL), absent for 16 (SD3, Flux).
    """
    if quant_conv is None:
        quant_conv = latent_channels != 16
    return {
        "_class_name": "AutoencoderKL",
        "act_fn": "silu",
        "block_out_channels": [8, 16, 32, 32],
        "down_block_types": ["DownEncoderBlock2D"] * 4,
        "up_block_types": ["UpDecoderBlock2D"] * 4,
        "in_channels": 3,
        "out_channels": 3,
        "layers_per_block": 1,
        "norm_num_groups": 8,
        "latent_channels": int(latent_channels),
        "sample_size": 64,
        "scaling_factor": 0.5,
        "force_upcast": False,
        "use_quant_conv": bool(quant_conv),
        "use_post_quant_conv": bool(quant_conv),
        "mid_block_add_attention": True,
    }


def _init_kwargs(config: dict) -> dict:
    return {k: v for k, v in config.items() if not k.startswith("_")}


def make_tiny_vae(seed: int = 0, latent_channels: int = 4) -> Any:
    """A tiny ``AutoencoderKL`` with deterministic random weights (eval mode)."""
    from diffusers import AutoencoderKL

    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        vae = AutoencoderKL(**_init_kwargs(tiny_vae_config(latent_channels)))
    _reinit(vae, seed)
    return vae.eval()


def _reinit(model: torch.nn.Module, seed: int) -> None:
    """Weights drawn from a seeded generator, independent of torch's default init."""
    generator = torch.Generator().manual_seed(int(seed))
    with torch.no_grad():
        for name, param in model.named_parameters():
            noise = torch.randn(param.shape, generator=generator, dtype=torch.float32)
            if param.ndim >= 2:
                fan_in = param[0].numel()
                param.copy_(noise / math.sqrt(fan_in))
            elif name.endswith(".weight"):  # norm scales
                param.copy_(1.0 + 0.1 * noise)
            else:  # biases and norm shifts
                param.copy_(0.05 * noise)


def full_size_vae_config(family: str = "sd1") -> dict:
    """The shipped, full-size diffusers AutoencoderKL config of a model family."""
    from artcloak.engine.encoders import shipped_config

    return shipped_config(family)


_ATTN_TO_ORIGINAL = {
    "group_norm": "norm",
    "to_q": "q",
    "to_k": "k",
    "to_v": "v",
    "to_out": "proj_out",
}


def _resnet_part(name: str) -> str:
    return "nin_shortcut" if name == "conv_shortcut" else name


def to_original_layout(diffusers_state_dict: dict) -> dict:
    """Diffusers AutoencoderKL keys -> the original SD (LDM) VAE keys of real checkpoints.

    The mid-block attention becomes ``mid.attn_1.{norm,q,k,v,proj_out}`` with its linear
    weights stored as 1x1 convolutions ``(C, C, 1, 1)``, as in SD checkpoints; the decoder's
    up blocks are numbered from the lowest resolution up (the reverse of diffusers).
    """
    up_indices = {
        int(key.split(".")[2])
        for key in diffusers_state_dict
        if key.startswith("decoder.up_blocks.")
    }
    n_up = max(up_indices) + 1 if up_indices else 0
    out: dict[str, Tensor] = {}
    for key, tensor in diffusers_state_dict.items():
        parts = key.split(".")
        top = parts[0]
        if top in ("quant_conv", "post_quant_conv"):
            out[key] = tensor
            continue
        if top not in ("encoder", "decoder"):
            raise ValueError(f"not an AutoencoderKL key: {key}")
        part = parts[1]
        param = parts[-1]
        if part in ("conv_in", "conv_out"):
            new = parts
        elif part == "conv_norm_out":
            new = [top, "norm_out", param]
        elif part == "down_blocks":
            block = parts[2]
            if parts[3] == "resnets":
                new = [top, "down", block, "block", parts[4], _resnet_part(parts[5]), param]
            else:  # downsamplers.0.conv
                new = [top, "down", block, "downsample", "conv", param]
        elif part == "up_blocks":
            block = str(n_up - 1 - int(parts[2]))
            if parts[3] == "resnets":
                new = [top, "up", block, "block", parts[4], _resnet_part(parts[5]), param]
            else:  # upsamplers.0.conv
                new = [top, "up", block, "upsample", "conv", param]
        elif part == "mid_block" and parts[2] == "resnets":
            new = [top, "mid", f"block_{int(parts[3]) + 1}", _resnet_part(parts[4]), param]
        elif part == "mid_block" and parts[2] == "attentions":
            layer = parts[4]
            new = [top, "mid", "attn_1", _ATTN_TO_ORIGINAL[layer], param]
            if layer != "group_norm" and param == "weight" and tensor.ndim == 2:
                tensor = tensor.reshape(*tensor.shape, 1, 1)
        else:
            raise ValueError(f"unknown AutoencoderKL key: {key}")
        out[".".join(new)] = tensor.contiguous()
    return out


def _save_safetensors(tensors: dict, path: Path) -> None:
    from safetensors.torch import save_file

    save_file(
        {k: v.detach().cpu().contiguous() for k, v in tensors.items()},
        str(path),
        metadata={"format": "pt"},
    )


def save_tiny_models(folder: Path, seed: int = 0) -> dict[str, Path]:
    """Write one tiny VAE in every layout ``load_encoder`` reads; return the paths by name.

    Names: ``diffusers_folder`` (config.json + safetensors), ``pipeline_folder`` (with the
    VAE in ``vae/``), ``diffusers_file`` and ``original_file`` (single-file VAEs in the two key
    layouts), ``full_checkpoint`` (VAE under ``first_stage_model.`` plus dummy UNet and text
    encoder keys), ``pickle`` (that checkpoint as a ``.ckpt``), ``config`` (the config.json the
    single files need, since their family cannot be guessed).
    """
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    vae = make_tiny_vae(seed)
    config = tiny_vae_config()
    diffusers_sd = {k: v.detach().clone().contiguous() for k, v in vae.state_dict().items()}
    original_sd = to_original_layout(diffusers_sd)
    config_text = json.dumps(config, indent=2) + "\n"

    paths: dict[str, Path] = {}

    paths["config"] = folder / "tiny_vae_config.json"
    paths["config"].write_text(config_text, encoding="utf-8")

    diffusers_folder = folder / "tiny_vae_diffusers"
    diffusers_folder.mkdir(exist_ok=True)
    (diffusers_folder / "config.json").write_text(config_text, encoding="utf-8")
    _save_safetensors(diffusers_sd, diffusers_folder / "diffusion_pytorch_model.safetensors")
    paths["diffusers_folder"] = diffusers_folder

    pipeline = folder / "tiny_pipeline"
    (pipeline / "vae").mkdir(parents=True, exist_ok=True)
    model_index = {"_class_name": "StableDiffusionPipeline", "vae": ["diffusers", "AutoencoderKL"]}
    (pipeline / "model_index.json").write_text(json.dumps(model_index), encoding="utf-8")
    (pipeline / "vae" / "config.json").write_text(config_text, encoding="utf-8")
    _save_safetensors(diffusers_sd, pipeline / "vae" / "diffusion_pytorch_model.safetensors")
    paths["pipeline_folder"] = pipeline

    paths["diffusers_file"] = folder / "tiny_vae_diffusers.safetensors"
    _save_safetensors(diffusers_sd, paths["diffusers_file"])

    paths["original_file"] = folder / "tiny_vae_original.safetensors"
    _save_safetensors(original_sd, paths["original_file"])

    generator = torch.Generator().manual_seed(int(seed) + 1)
    checkpoint = {f"first_stage_model.{k}": v for k, v in original_sd.items()}
    checkpoint["model.diffusion_model.input_blocks.0.0.weight"] = torch.randn(
        8, 4, 3, 3, generator=generator
    )
    checkpoint["model.diffusion_model.input_blocks.0.0.bias"] = torch.zeros(8)
    checkpoint["cond_stage_model.transformer.text_model.embeddings.token_embedding.weight"] = (
        torch.randn(16, 8, generator=generator)
    )
    paths["full_checkpoint"] = folder / "tiny_checkpoint.safetensors"
    _save_safetensors(checkpoint, paths["full_checkpoint"])

    paths["pickle"] = folder / "tiny_checkpoint.ckpt"
    torch.save(
        {"state_dict": {k: v.clone() for k, v in checkpoint.items()}, "global_step": 0},
        str(paths["pickle"]),
    )
    return paths
