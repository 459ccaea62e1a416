"""Write a full-size Stable Diffusion VAE as one .safetensors file in the original SD key
layout (the kind artists and ComfyUI users have), with seeded random weights.

No pretrained weights can be downloaded on the project's machines; the architecture, the
file layout and the loading path are the real ones, so time, memory and the loading code
are measured honestly. Usage (from the repository root):

    .venv/bin/python bench/make_full_size_vae.py [--family sd1] [--out bench/cache/sd1-vae-random.safetensors]
"""

from __future__ import annotations

import argparse
from pathlib import Path

import torch
from artcloak.testing import full_size_vae_config, to_original_layout
from diffusers import AutoencoderKL
from safetensors.torch import save_file


def random_vae_path(family: str = "sd1") -> Path:
    """Where the benches keep the ``family``'s random full-size VAE (git ignores it)."""
    return Path(f"bench/cache/{family}-vae-random.safetensors")


def write_random_vae(family: str, out: Path, seed: int = 0) -> None:
    """Write the ``family``'s full-size VAE with weights drawn from ``seed`` to ``out`` (kept
    where it exists)."""
    if out.exists():
        print(f"exists: {out}")
        return
    torch.manual_seed(seed)
    config = {k: v for k, v in full_size_vae_config(family).items() if not k.startswith("_")}
    vae = AutoencoderKL(**config)
    tensors = {k: v.contiguous() for k, v in to_original_layout(vae.state_dict()).items()}
    out.parent.mkdir(parents=True, exist_ok=True)
    save_file(tensors, str(out))
    print(f"wrote {out} ({out.stat().st_size / 1e6:.0f} MB, {len(tensors)} tensors)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--family", default="sd1")
    parser.add_argument("--out", type=Path, default=None)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    write_random_vae(args.family, args.out or random_vae_path(args.family), args.seed)


if __name__ == "__main__":
    main()
