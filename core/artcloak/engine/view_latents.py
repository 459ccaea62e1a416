"""The latents of the views an engine has encoded lately, so that one view is encoded once;
how a view's latent moved.

A protection encodes its original up to four times: to choose an automatic target, as the
loss's unit, for the report's "before", and again for a JPEG's figures as written. On a CPU a
full-size SD VAE forward at 512 px takes about 9 s. The views are keyed by their content: the
same pixels at the same size give the same latents, whoever asks.
"""

from __future__ import annotations

import hashlib
from collections import OrderedDict
from collections.abc import Callable

import torch

from ..results import LatentShift
from .optimize import SAME_LATENT

KEPT = 8  # views remembered per engine: a batch's originals, and their protected versions


class ViewLatents:
    """Per view (a (3, h, w) or (1, 3, h, w) tensor), its latents, one per encoder: the most
    recent ``KEPT`` views."""

    def __init__(self, kept: int = KEPT) -> None:
        self.kept = kept
        self._latents: OrderedDict[tuple, list[torch.Tensor]] = OrderedDict()

    def get(
        self, view: torch.Tensor, encode: Callable[[torch.Tensor], list[torch.Tensor]]
    ) -> list[torch.Tensor]:
        """The view's latents, from ``encode(view)`` the first time it is seen."""
        key = view_key(view)
        if key in self._latents:
            self._latents.move_to_end(key)
            return self._latents[key]
        latents = encode(view)
        self._latents[key] = latents
        if len(self._latents) > self.kept:
            self._latents.popitem(last=False)
        return latents


def view_key(view: torch.Tensor) -> tuple:
    """The view's shape, dtype and a digest of its values."""
    values = view.detach().cpu().contiguous()
    raw = values.flatten().view(torch.uint8).numpy()  # any dtype's bytes
    digest = hashlib.blake2b(raw.tobytes(), digest_size=16).hexdigest()
    return tuple(values.shape), str(values.dtype), digest


def latent_shift(
    encoder: str, before: torch.Tensor, after: torch.Tensor, target: torch.Tensor | None
) -> LatentShift:
    """How the latent moved: relative shift, and toward a target if there is one."""
    shift = float((after - before).norm() / before.norm().clamp_min(1e-12))
    closed = None
    start = None if target is None else float((before - target).norm())
    if start is not None and start > SAME_LATENT * float(target.norm()):  # else: no distance
        closed = round(1 - float((after - target).norm()) / start, 6)
    return LatentShift(encoder, round(shift, 6), closed)
