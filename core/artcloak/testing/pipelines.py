"""Tiny Stable Diffusion pipelines, built offline, for tests and demos of target generation.

Everything is made here from a seed: a tiny UNet, the tiny VAE of :mod:`artcloak.testing`, a
tiny CLIP text model and a CLIP tokenizer whose vocabulary (the 256 byte symbols, no merges)
this module writes. Nothing is downloaded. The pictures are noise-like, but every code path of
a real pipeline runs (tokenizer, text encoder, scheduler, UNet, VAE, img2img).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch

from . import _reinit, make_tiny_vae

__all__ = [
    "make_tiny_pipeline",
    "save_tiny_checkpoint",
    "save_tiny_pipeline",
    "write_tiny_tokenizer",
]

TEXT_WIDTH = 32


def _byte_symbols() -> list[str]:
    """GPT-2/CLIP's reversible byte -> unicode symbol table, in byte order."""
    printable = (
        list(range(ord("!"), ord("~") + 1))
        + list(range(ord("¡"), ord("¬") + 1))
        + list(range(ord("®"), ord("ÿ") + 1))
    )
    symbols, extra = {}, 0
    for byte in range(256):
        if byte in printable:
            symbols[byte] = chr(byte)
        else:
            symbols[byte] = chr(256 + extra)
            extra += 1
    return [symbols[byte] for byte in range(256)]


def write_tiny_tokenizer(folder: Path) -> Path:
    """A CLIPTokenizer folder (vocab.json, merges.txt, configs) with a 514-token vocabulary."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    symbols = _byte_symbols()
    vocab = {symbol: index for index, symbol in enumerate(symbols)}
    vocab.update({symbol + "</w>": 256 + index for index, symbol in enumerate(symbols)})
    vocab["<|startoftext|>"] = len(vocab)
    vocab["<|endoftext|>"] = len(vocab)
    (folder / "vocab.json").write_text(json.dumps(vocab), encoding="utf-8")
    (folder / "merges.txt").write_text("#version: 0.2\n", encoding="utf-8")
    config = {
        "tokenizer_class": "CLIPTokenizer",
        "model_max_length": 77,
        "bos_token": "<|startoftext|>",
        "eos_token": "<|endoftext|>",
        "unk_token": "<|endoftext|>",
        "pad_token": "<|endoftext|>",
    }
    (folder / "tokenizer_config.json").write_text(json.dumps(config), encoding="utf-8")
    return folder


def make_tiny_pipeline(tokenizer_folder: Path, seed: int = 0) -> Any:
    """A tiny ``StableDiffusionPipeline`` (64 px images, 8x8 latents), eval mode, CPU."""
    from diffusers import DDIMScheduler, StableDiffusionPipeline, UNet2DConditionModel
    from transformers import CLIPTextConfig, CLIPTextModel, CLIPTokenizer

    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        unet = UNet2DConditionModel(
            sample_size=8,
            in_channels=4,
            out_channels=4,
            block_out_channels=(16,),
            layers_per_block=1,
            down_block_types=("CrossAttnDownBlock2D",),
            up_block_types=("CrossAttnUpBlock2D",),
            cross_attention_dim=TEXT_WIDTH,
            attention_head_dim=4,
            norm_num_groups=8,
        )
        text_encoder = CLIPTextModel(
            CLIPTextConfig(
                vocab_size=520,
                hidden_size=TEXT_WIDTH,
                intermediate_size=64,
                num_hidden_layers=2,
                num_attention_heads=4,
                max_position_embeddings=77,
                projection_dim=TEXT_WIDTH,
                bos_token_id=514,
                eos_token_id=515,
                pad_token_id=515,
            )
        )
    _reinit(unet, seed + 1)
    _reinit(text_encoder, seed + 2)
    scheduler = DDIMScheduler(
        beta_start=0.00085,
        beta_end=0.012,
        beta_schedule="scaled_linear",
        clip_sample=False,
        set_alpha_to_one=False,
        steps_offset=1,
    )
    return StableDiffusionPipeline(
        vae=make_tiny_vae(seed + 3),
        text_encoder=text_encoder.eval(),
        tokenizer=CLIPTokenizer.from_pretrained(str(tokenizer_folder)),
        unet=unet.eval(),
        scheduler=scheduler,
        safety_checker=None,
        feature_extractor=None,
        requires_safety_checker=False,
    )


def save_tiny_pipeline(folder: Path, seed: int = 0) -> Path:
    """Write a tiny diffusers pipeline folder that ``--diffusion FOLDER`` loads offline."""
    folder = Path(folder)
    tokenizer = write_tiny_tokenizer(folder.parent / f".{folder.name}-tokenizer")
    pipeline = make_tiny_pipeline(tokenizer, seed)
    pipeline.save_pretrained(str(folder), safe_serialization=True)
    return folder


_UNET_FIXED = {
    "time_embedding.linear_1": "time_embed.0",
    "time_embedding.linear_2": "time_embed.2",
    "conv_in": "input_blocks.0.0",
    "conv_norm_out": "out.0",
    "conv_out": "out.2",
}
_RESNET_TO_ORIGINAL = {
    "norm1": "in_layers.0",
    "conv1": "in_layers.2",
    "norm2": "out_layers.0",
    "conv2": "out_layers.3",
    "time_emb_proj": "emb_layers.1",
    "conv_shortcut": "skip_connection",
}


def _unet_key_to_original(key: str, layers_per_block: int) -> str:
    """A diffusers UNet key -> the original SD (LDM) key, for SD 1.x-style UNets."""
    for prefix, original in _UNET_FIXED.items():
        if key.startswith(prefix + "."):
            return original + key[len(prefix) :]
    parts = key.split(".")
    per_block = layers_per_block + 1
    if parts[0] == "mid_block":
        index = {"resnets.0": 0, "attentions.0": 1, "resnets.1": 2}[".".join(parts[1:3])]
        kind, position, rest = parts[1], f"middle_block.{index}", parts[3:]
    elif parts[0] in ("down_blocks", "up_blocks") and parts[2] in ("resnets", "attentions"):
        block, layer, kind, rest = int(parts[1]), int(parts[3]), parts[2], parts[4:]
        sub = 0 if kind == "resnets" else 1
        if parts[0] == "down_blocks":
            position = f"input_blocks.{1 + block * per_block + layer}.{sub}"
        else:
            position = f"output_blocks.{block * per_block + layer}.{sub}"
    else:
        raise ValueError(f"no original key for {key} (tiny UNets have no resamplers)")
    if kind == "resnets":
        rest = [_RESNET_TO_ORIGINAL.get(rest[0], rest[0]), *rest[1:]]
    return ".".join([position, *rest])


def save_tiny_checkpoint(pipeline_folder: Path, path: Path) -> Path:
    """The tiny pipeline as one original-layout SD 1.x ``.safetensors`` checkpoint, such as
    ``from_single_file`` reads (load it with the pipeline folder as its config)."""
    from diffusers import StableDiffusionPipeline

    from . import _save_safetensors, to_original_layout

    pipeline = StableDiffusionPipeline.from_pretrained(str(pipeline_folder))
    layers = pipeline.unet.config.layers_per_block
    tensors = {
        f"model.diffusion_model.{_unet_key_to_original(key, layers)}": value
        for key, value in pipeline.unet.state_dict().items()
    }
    vae = to_original_layout(pipeline.vae.state_dict())
    tensors.update({f"first_stage_model.{key}": value for key, value in vae.items()})
    for key, value in pipeline.text_encoder.state_dict().items():  # as in real checkpoints:
        key = (
            key if key.startswith("text_model.") else f"text_model.{key}"
        )  # transformers 5 drops it
        tensors[f"cond_stage_model.transformer.{key}"] = value
    _save_safetensors(tensors, Path(path))
    return Path(path)


if __name__ == "__main__":  # python -m artcloak.testing.pipelines FOLDER
    import sys

    if len(sys.argv) != 2:
        sys.exit("usage: python -m artcloak.testing.pipelines FOLDER")
    print(save_tiny_pipeline(Path(sys.argv[1])))
