"""The world's datasets: images, style labels and the composition seed of each.

Training and held-out compositions come from disjoint seed ranges, so no held-out content
was ever seen in training.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

HELD_OUT_SEED = 1_000_000


@dataclass
class Dataset:
    images: torch.Tensor  # (N, 3, S, S) float in [0, 1]
    labels: torch.Tensor  # (N,) style index
    seeds: torch.Tensor  # (N,) composition seed

    def __len__(self) -> int:
        return len(self.labels)

    def subset(self, mask: torch.Tensor) -> Dataset:
        return Dataset(self.images[mask], self.labels[mask], self.seeds[mask])
