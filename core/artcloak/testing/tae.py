"""Random tiny autoencoders (TAESD ... TAEF2, TAESana) in the published file layout, for tests."""

from __future__ import annotations

from pathlib import Path

import torch
from safetensors.torch import save_file

from artcloak.engine.encoders.tae import TAE_FAMILIES, build_decoder, build_encoder

# Keys that make the builders add TAEF2's pools (the lowest-resolution blocks).
_POOLS = {
    "encoder": {f"{i}.pool.0.weight" for i in (11, 12, 13)},
    "decoder": {f"{i}.pool.0.weight" for i in (3, 4, 5)},
}


def tae_modules(family: str, seed: int = 0) -> tuple[torch.nn.Module, torch.nn.Module | None]:
    """A random encoder (and decoder, for 8x families) of ``family``."""
    torch.manual_seed(seed)
    spec = TAE_FAMILIES[family]
    pools = family == "taef2"
    encoder = build_encoder(spec, _POOLS["encoder"] if pools else set()).eval()
    decoder = None
    if spec.downscale == 8:
        decoder = build_decoder(spec, _POOLS["decoder"] if pools else set()).eval()
    return encoder, decoder


def save_tae(
    folder: Path, family: str, *, decoder: bool = True, stem: str = "", seed: int = 0
) -> tuple[Path, torch.nn.Module, torch.nn.Module | None]:
    """``folder/{stem}encoder.safetensors`` (and its decoder beside it); returns the modules."""
    folder.mkdir(parents=True, exist_ok=True)
    enc, dec = tae_modules(family, seed)
    path = folder / f"{stem}encoder.safetensors"
    save_file(enc.state_dict(), str(path))
    if decoder and dec is not None:
        save_file(dec.state_dict(), str(folder / f"{stem}decoder.safetensors"))
    return path, enc, dec
