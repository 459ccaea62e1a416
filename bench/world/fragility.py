"""What makes an encoder movable? Every committed VAE variant, its fidelity and its 8/255 ceiling.

Variants differ in one thing each from world 2's VAE: training length (the snapshots taken
while it trained), width, or latent channels (16, as SD 3 and FLUX have, against SD's 4).
The same judge (trained on clean images) reads every variant's reconstructions.
"""

from __future__ import annotations

import logging

import torch

from .ceiling import judge_attack, latent_attack
from .checkpoints import load_vae, read_manifest
from .efficacy import Probe, cases
from .metrics import psnr
from .train import predict, reconstruct

log = logging.getLogger("world")
EPS = 8 / 255


def variant_row(world, name: str, scale) -> dict:
    vae, entry = load_vae(name)
    recipe = entry["recipe"]
    with torch.no_grad():
        seen = reconstruct(vae, world.held_out.images)
    accuracy = predict(world.judge, seen) == world.held_out.labels
    probe = Probe(vae, world.judge, cases(scale.ceiling_per_style))
    return {
        "variant": name,
        "channels": recipe["shape"]["channels"],
        "latent_channels": recipe["shape"]["latent_channels"],
        "steps_trained": entry.get("steps_trained", recipe["steps"]),
        "parameters": sum(p.numel() for p in vae.parameters()),
        "held_out_psnr": float(psnr(seen, world.held_out.images).mean()),
        "judge_accuracy_on_reconstructions": float(accuracy.float().mean()),
        "latent_attack": probe.summary(latent_attack(probe, EPS, scale.fragility_steps, 1)),
        "judge_attack": probe.summary(judge_attack(probe, EPS, scale.fragility_judge_steps)),
    }


def fragility(world, scale) -> dict:
    names = sorted(read_manifest())
    rows = []
    for name in names:
        rows.append(variant_row(world, name, scale))
        log.info("fragility %s", rows[-1])
    return {
        "steps": scale.fragility_steps,
        "judge_steps": scale.fragility_judge_steps,
        "rows": rows,
    }
