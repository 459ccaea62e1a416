"""Training the world's models: the judge (cached on disk by its recipe) and, run as a script,
world 2's VAE (committed: see README.md here)."""

from __future__ import annotations

import sys
from pathlib import Path

if __name__ == "__main__" and not __package__:  # run as python bench/world/train.py
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
    __package__ = "world"  # noqa: A001

import argparse
import hashlib
import json
import logging
import math
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass

import torch
from torch.nn import functional as F

from .data import Dataset
from .models import StyleClassifier, WorldVae

log = logging.getLogger("world")
CACHE = (
    Path(__file__).resolve().parent.parent / "cache" / "world"
)  # bench/cache/world, from any cwd


@dataclass(frozen=True)
class ClassifierRecipe:
    seed: int
    steps: int = 600
    batch: int = 64
    width: int = 32
    lr: float = 3e-3


def cached(kind: str, recipe, data_key: str, build: Callable[[], tuple[torch.nn.Module, dict]]):
    """Load the model trained by ``recipe`` on ``data_key`` or train and save it."""
    key = hashlib.sha256(json.dumps([kind, asdict(recipe), data_key]).encode()).hexdigest()[:12]
    path = CACHE / f"{kind}-{key}.pt"
    if path.exists():
        saved = torch.load(path, weights_only=False)
        return saved["model"], saved["meta"] | {"cached": True}
    model, meta = build()
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_suffix(".tmp")
    torch.save({"model": model, "meta": meta}, temporary)
    temporary.replace(path)
    return model, meta | {"cached": False}


def _augment(images: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """Flips and small translations: what a style label must not depend on."""
    if torch.rand(1, generator=generator) < 0.5:
        images = images.flip(3)
    shift = torch.randint(-2, 3, (2,), generator=generator).tolist()
    return images.roll(shifts=shift, dims=(2, 3))


def _schedule(step: int, steps: int, lr: float) -> float:
    warm = min(1.0, (step + 1) / 50)
    return lr * warm * 0.5 * (1 + math.cos(math.pi * step / steps))


def train_classifier(data: Dataset, recipe: ClassifierRecipe, classes: int):
    torch.manual_seed(recipe.seed)
    generator = torch.Generator().manual_seed(recipe.seed)
    model = StyleClassifier(classes, recipe.width)
    optimiser = torch.optim.AdamW(model.parameters(), recipe.lr, weight_decay=1e-4)
    started = time.perf_counter()
    model.train()
    for step in range(recipe.steps):
        for group in optimiser.param_groups:
            group["lr"] = _schedule(step, recipe.steps, recipe.lr)
        index = torch.randint(0, len(data), (recipe.batch,), generator=generator)
        images = _augment(data.images[index], generator)
        loss = F.cross_entropy(model(images), data.labels[index])
        optimiser.zero_grad()
        loss.backward()
        optimiser.step()
    model.eval()
    return model, {"seconds": time.perf_counter() - started, "final_loss": float(loss.detach())}


@torch.no_grad()
def reconstruct(vae: WorldVae, images: torch.Tensor, chunk: int = 128) -> torch.Tensor:
    """The model's view: decode(encoder mean), in [0, 1]."""
    out = []
    for start in range(0, len(images), chunk):
        mean = vae.latent_mean(images[start : start + chunk])
        out.append(((vae.decode(mean).sample + 1) / 2).clamp(0, 1))
    return torch.cat(out)


@torch.no_grad()
def predict(classifier: StyleClassifier, images: torch.Tensor, chunk: int = 256) -> torch.Tensor:
    return torch.cat(
        [classifier(images[s : s + chunk]).argmax(1) for s in range(0, len(images), chunk)]
    )


def train_and_commit(
    name: str, threads: int, device: str = "cpu", stop_at: int | None = None
) -> Path:
    """Train the world-2 VAE ``name`` (with its snapshots) and commit it to the manifest.

    ``stop_at`` (one of the recipe's snapshot steps) trains only that far on the full run's
    schedule and commits the snapshots up to it: the shorter-trained variants, when the whole
    run does not fit the time at hand."""
    from .checkpoints import save_vae
    from .world2 import VARIANTS, train_vae2

    recipe = VARIANTS[name]
    if stop_at is not None and stop_at not in recipe.snapshots:
        raise SystemExit(f"train: --stop-at must be one of {name}'s snapshots {recipe.snapshots}")
    torch.set_num_threads(threads)
    command = f"python bench/world/train.py --variant {name} --threads {threads} --device {device}"
    command += f" --stop-at {stop_at}" if stop_at else ""
    record = {"command": command, "seed": recipe.seed, "torch": torch.__version__}

    def snapshot(step: int, vae) -> None:
        if step == stop_at:  # saved below, with the run's time and log
            return
        save_vae(f"{recipe.name}-step{step}", vae, recipe, record | {"steps_trained": step})

    vae, meta = train_vae2(recipe, on_snapshot=snapshot, device=device, stop_at=stop_at)
    if stop_at:
        return save_vae(f"{recipe.name}-step{stop_at}", vae, recipe, record | {
            "steps_trained": stop_at, "seconds": round(meta["seconds"]), "history": meta["history"]})  # fmt: skip
    return save_vae(recipe.name, vae, recipe, record | {"seconds": round(meta["seconds"]),
                                                        "history": meta["history"]})  # fmt: skip


def main() -> None:
    """Train world 2's VAE (or a fragility variant) and commit it with the manifest."""
    from .world2 import VARIANTS

    parser = argparse.ArgumentParser(description=main.__doc__)
    parser.add_argument("--variant", choices=sorted(VARIANTS), default="vae2")
    parser.add_argument("--threads", type=int, default=2, help="CPU threads")
    parser.add_argument("--device", default="cpu", help="cpu, or cuda where a GPU is lent")
    parser.add_argument("--stop-at", type=int, help="stop at this snapshot step (of the recipe's)")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    log.info("wrote %s", train_and_commit(args.variant, args.threads, args.device, args.stop_at))


if __name__ == "__main__":
    main()
