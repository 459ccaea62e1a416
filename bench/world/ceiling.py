"""How far any pixel attack gets in this world at each L-inf budget, and artcloak's share of it.

Two white-box attacks that no protection tool has: PGD on the encoder's latent distance to the
target (artcloak's objective, with random restarts, the best per image kept), and PGD on the
judge's own verdict through encoder, decoder and judge. Beside them, at the preset budgets,
artcloak's engine and plain sign-PGD on the same objective with as many encoder passes as
artcloak used. Share of the ceiling: artcloak's latent distance closed over the latent
attack's, on the same images; every distance is measured on the written 8-bit images.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import torch
from artcloak.settings import Intensity, ProtectionSettings

from .efficacy import Probe, cases, cloak, encoder_passes, make_engine, to_tensor
from .pgd import sign_pgd

log = logging.getLogger("world")
PRESET_AT = {4: Intensity.LOW, 8: Intensity.DEFAULT, 16: Intensity.HIGH}


@dataclass(frozen=True)
class Attack:
    """What one attack's images did (``Probe.summary``): the latent distance closed toward the
    target, the share the judge reads as the target style, the share it no longer reads as the
    source style; at the preset budgets, artcloak's and plain PGD's share of the ceiling."""

    latent_distance_closed: float
    success: float
    source_style_lost: float
    share_of_ceiling: float | None = None


@dataclass(frozen=True)
class CeilingRow:
    """One budget: the latent attack (the ceiling) and the judge attack; at the preset
    budgets, artcloak's preset and plain PGD with as many encoder passes (``passes``)."""

    eps_255: int
    latent_steps: int
    restarts: int
    latent_attack: Attack
    judge_attack: Attack
    artcloak: Attack | None = None
    plain_pgd: Attack | None = None
    passes: int | None = None

    @classmethod
    def from_json(cls, row: dict) -> CeilingRow:
        def preset(name: str) -> Attack | None:
            return Attack(**row[name]) if name in row else None

        return cls(row["eps_255"], row["latent_steps"], row["restarts"],
                   Attack(**row["latent_attack"]), Attack(**row["judge_attack"]),
                   preset("artcloak"), preset("plain_pgd"), row.get("passes"))  # fmt: skip


def ceiling_rows(ceiling: dict) -> list[CeilingRow]:
    return [CeilingRow.from_json(row) for row in ceiling["rows"]]


def latent_attack(probe: Probe, eps: float, steps: int, restarts: int) -> torch.Tensor:
    """The best of ``restarts`` runs per image: the first from the original, then random."""
    best, best_distance = None, None
    for restart in range(restarts):
        generator = torch.Generator().manual_seed(restart) if restart else None
        found = sign_pgd(probe.latent_distance, probe.sources, eps, steps, start=0.5,
                         random_start=generator)  # fmt: skip
        with torch.no_grad():
            distance = probe.latent_distance(found)
        if best is None:
            best, best_distance = found, distance
        else:
            better = distance < best_distance
            best = torch.where(better[:, None, None, None], found, best)
            best_distance = torch.minimum(distance, best_distance)
    return best


def judge_attack(probe: Probe, eps: float, steps: int) -> torch.Tensor:
    return sign_pgd(probe.judge_loss, probe.sources, eps, steps, start=0.5)


def artcloak_and_baseline(world, probe: Probe, intensity: Intensity) -> dict:
    """artcloak's preset, then plain sign-PGD with the same number of encoder passes."""
    engine = make_engine(world.vae)
    cloaked = cloak(engine, probe.cases, ProtectionSettings(intensity=intensity))
    protected = to_tensor(cloaked.protected)
    passes = encoder_passes(cloaked)
    eps = ProtectionSettings(intensity=intensity).budget().eps
    baseline = sign_pgd(probe.latent_distance, probe.sources, eps, passes)
    return {
        "passes": passes,
        "artcloak": probe.summary(protected),
        "plain_pgd": probe.summary(baseline),
        "seconds_per_image": cloaked.seconds / len(probe.cases),
    }


def ceiling(world, scale) -> dict:
    probe = Probe(world.vae, world.judge, cases(scale.ceiling_per_style))
    rows = []
    for eps_255 in scale.budgets:
        eps = eps_255 / 255
        headline = eps_255 == 8
        restarts = scale.restarts if headline else 1
        steps = scale.latent_steps if headline else scale.other_latent_steps
        row = {
            "eps_255": eps_255,
            "latent_steps": steps,
            "restarts": restarts,
            "latent_attack": probe.summary(latent_attack(probe, eps, steps, restarts)),
            "judge_attack": probe.summary(judge_attack(probe, eps, scale.judge_steps)),
        }
        if eps_255 in PRESET_AT:
            row |= artcloak_and_baseline(world, probe, PRESET_AT[eps_255])
            ceiling_closed = row["latent_attack"]["latent_distance_closed"]
            for name in ("artcloak", "plain_pgd"):
                row[name]["share_of_ceiling"] = row[name]["latent_distance_closed"] / ceiling_closed
        rows.append(row)
        log.info("ceiling %s", row)
    return {"images": len(probe.cases), "judge_steps": scale.judge_steps, "rows": rows}
