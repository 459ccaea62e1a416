"""``--style auto``: pick the catalogue style farthest from the artwork, by measurement.

Glaze picks a target style sufficiently different from the artist's own, measured in a
feature space. artcloak measures in the protecting encoders' latent space, on style
statistics: per latent channel, the mean and standard deviation over the picture (the
statistics that AdaIN style transfer moves). They do not depend on layout or size, so a
style picture can be compared with any artwork. Distances are normalised per encoder (by
their mean over the candidates) and summed, as the protection's losses are.

Per batch (one artist, one consistent target), the artwork side is the mean statistics of
all the batch's images.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch

Encode = Callable[[object], list[torch.Tensor]]  # image -> one latent (C x h x w) per encoder


@dataclass(frozen=True)
class Choice:
    """The style picked and the measured distances of all candidates (larger is farther)."""

    name: str
    distances: dict[str, float]

    def describe(self) -> dict:
        return {
            "chosen_by": "auto: the candidate farthest from the artwork in the encoders' latent "
            "style statistics",
            "distances": {name: round(value, 4) for name, value in self.distances.items()},
        }


def style_statistics(latent: torch.Tensor) -> torch.Tensor:
    """Per channel mean and standard deviation of a C x h x w latent -> 2C vector."""
    flat = latent.float().flatten(1)
    return torch.cat([flat.mean(1), flat.std(1, unbiased=False)])


def batch_statistics(latents_per_image: Sequence[list[torch.Tensor]]) -> list[torch.Tensor]:
    """Per encoder, the mean style statistics over a batch of images."""
    encoders = len(latents_per_image[0])
    return [
        torch.stack([style_statistics(latents[i]) for latents in latents_per_image]).mean(0)
        for i in range(encoders)
    ]


def choose_farthest(
    artwork: list[torch.Tensor], candidates: dict[str, list[torch.Tensor]]
) -> Choice:
    """The candidate whose statistics are farthest from the artwork's (ties: first listed).

    ``artwork``: per encoder, the artwork's (or batch's) statistics; ``candidates``: per
    name, per encoder, the latent of the candidate's picture.
    """
    if not candidates:
        raise ValueError("no candidates to choose from")
    raw = {
        name: [float((style_statistics(latent) - stats).norm()) for latent, stats in
               zip(latents, artwork, strict=True)]
        for name, latents in candidates.items()
    }  # fmt: skip
    encoders = len(artwork)
    scale = [
        max(sum(values[i] for values in raw.values()) / len(raw), 1e-12) for i in range(encoders)
    ]
    distances = {
        name: sum(value / scale[i] for i, value in enumerate(values)) / encoders
        for name, values in raw.items()
    }
    best = max(distances, key=lambda name: (distances[name], -list(distances).index(name)))
    return Choice(best, distances)
