"""Committed world models: fp16 safetensors files, checked against the manifest's SHA-256.

``manifest.json`` beside the files records, per model, the file's hash, the recipe that
trained it, the command, the seed, the wall time and the training log. The bench refuses a
file whose hash or recipe does not match (and says to run ``--retrain``).
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import asdict
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file

from .models import VaeShape, WorldVae
from .world2 import CHECKPOINTS, Vae2Recipe

MANIFEST = CHECKPOINTS / "manifest.json"


class CheckpointError(RuntimeError):
    """A committed model is missing, altered, or from another recipe."""


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def read_manifest() -> dict:
    return json.loads(MANIFEST.read_text()) if MANIFEST.exists() else {}


def save_vae(name: str, vae: WorldVae, recipe: Vae2Recipe, record: dict) -> Path:
    """Write ``name``.safetensors (fp16) atomically and record it in the manifest."""
    CHECKPOINTS.mkdir(parents=True, exist_ok=True)
    path = CHECKPOINTS / f"{name}.safetensors"
    temporary = path.with_suffix(".tmp")
    tensors = {
        k: v.detach().cpu().to(torch.float16).contiguous() for k, v in vae.state_dict().items()
    }
    save_file(tensors, str(temporary), metadata={"recipe": json.dumps(asdict(recipe))})
    os.chmod(temporary, 0o644)
    os.replace(temporary, path)
    manifest = read_manifest()
    manifest[name] = {"file": path.name, "sha256": sha256(path), "recipe": asdict(recipe),
                      "recipe_key": recipe.key(), **record}  # fmt: skip
    MANIFEST.write_text(json.dumps(manifest, indent=2) + "\n")
    return path


def load_vae(name: str, recipe: Vae2Recipe | None = None) -> tuple[WorldVae, dict]:
    """The committed VAE ``name`` in fp32, after checking its hash (and recipe, if given)."""
    entry = read_manifest().get(name)
    if entry is None:
        raise CheckpointError(f"no {name} in {MANIFEST}: run python bench/world/train.py")
    path = CHECKPOINTS / entry["file"]
    if not path.exists():
        raise CheckpointError(f"{path} is missing (git lfs? a partial checkout?)")
    if sha256(path) != entry["sha256"]:
        raise CheckpointError(f"{path} does not match its SHA-256 in {MANIFEST}: "
                              "run python bench/world/train.py to retrain it")  # fmt: skip
    if recipe is not None and entry["recipe_key"] != recipe.key():
        raise CheckpointError(f"{path} was trained by another recipe than the code's: "
                              "run python bench/world/train.py to retrain it")  # fmt: skip
    saved = entry["recipe"]["shape"]
    shape = VaeShape(tuple(saved["channels"]), saved["latent_channels"], saved["blocks"])
    vae = WorldVae(shape)
    vae.load_state_dict({k: v.float() for k, v in load_file(str(path)).items()})
    return for_attacks(vae), entry


def for_attacks(model: torch.nn.Module) -> torch.nn.Module:
    """``model`` in eval mode with channels-last weights: the same arithmetic, and the bench's
    attacks (gradients through the encoder, decoder and judge) run faster on CPU (the full
    bench's ceiling stage: 1026 s instead of 1234 s)."""
    return model.eval().to(memory_format=torch.channels_last)
