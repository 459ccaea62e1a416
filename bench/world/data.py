"""Datasets of the miniature world: every composition rendered in every style.

Training and held-out compositions come from disjoint seed ranges, so no held-out content
was ever seen in training.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from .art import SIZE, STYLES, compose, render

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


def make_dataset(
    compositions: int, held_out: bool = False, size: int = SIZE, styles=STYLES
) -> Dataset:
    """``compositions`` contents, each rendered in each style."""
    first = HELD_OUT_SEED if held_out else 0
    images, labels, seeds = [], [], []
    for seed in range(first, first + compositions):
        composition = compose(seed, size)
        for label, style in enumerate(styles):
            images.append(render(composition, style))
            labels.append(STYLES.index(style) if style in STYLES else label)
            seeds.append(seed)
    stacked = torch.from_numpy(np.stack(images)).permute(0, 3, 1, 2).contiguous()
    return Dataset(stacked, torch.tensor(labels), torch.tensor(seeds))
