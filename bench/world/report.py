"""The efficacy bench's markdown report and plots."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from .ceiling import Attack, CeilingRow, ceiling_rows  # noqa: E402
from .mimicry_sets import CLEAN, CLOAKED, MIMICRY_SETS  # noqa: E402
from .survival import JPEG_Q75, NO_TRANSFORM, survival_rows  # noqa: E402

if TYPE_CHECKING:
    from .stages import Stage


def _pct(value: float) -> str:
    return f"{100 * value:.0f}%"


def _table(header: list[str], rows: list[list]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)


def world_section(world: dict) -> str:
    seconds = world["training_seconds"]
    rows = [
        [
            s,
            _pct(f["clean_accuracy"]),
            _pct(f["reconstruction_accuracy"]),
            f"{f['reconstruction_psnr']:.1f}",
        ]
        for s, f in world["per_style"].items()
    ]
    rows.append(["**all**", _pct(world["clean_accuracy"]), _pct(world["reconstruction_accuracy"]),
                 f"{world['reconstruction_psnr']:.1f}"])  # fmt: skip
    return "\n".join([
        "## 1. The world (world 2)",
        f"Held-out images: {world['held_out_images']} (128x128, compositions never seen in training). "
        f"VAE: {world['vae_parameters'] / 1e6:.2f} M parameters, 8x downsampling, 4 latent channels, "
        f"committed as `bench/world/checkpoints/vae2.safetensors` (SHA-256 `{world['vae_sha256'][:16]}...`, "
        f"checked on load), trained by `{world['vae_command']}` in {seconds['vae'] / 60:.0f} min; "
        f"judge classifier trained in {seconds['judge classifier']:.0f} s.",
        "",
        _table(["style", "judge accuracy, clean", "judge accuracy, VAE reconstruction", "reconstruction PSNR (dB)"], rows),
    ])  # fmt: skip


def _lpips_cell(r: dict) -> str:
    return f"{r['lpips_mean']:.4f}" if "lpips_mean" in r else "-"


def presets_section(rows: dict) -> str:
    body = [
        [name, r["images"], r.get("passes") or "-", _pct(r["success"]), _pct(r["still_source_style"]),
         _pct(r["latent_distance_closed"]), f"{r['linf_255_max']:.0f}/255",
         f"{r['psnr_db']:.1f}", f"{r['ssim']:.3f}", _lpips_cell(r), f"{r['seconds_per_image']:.2f}"]
        for name, r in rows.items()
    ]  # fmt: skip
    return "\n".join([
        "## 2. Cloak efficacy: artcloak's presets beside plain PGD",
        "Success: the judge labels the VAE reconstruction of the protected image as the target style "
        "(texture target: as any style but the original). Plain PGD: sign-gradient PGD on the same "
        "latent objective with as many encoder passes as artcloak used, without its perceptual limit.",
        "",
        _table(["intensity, target: method", "images", "encoder passes", "success", "still original style",
                "latent distance closed", "L-inf (max)", "PSNR dB", "SSIM", "LPIPS*", "s/image"], body),
        "",
        "*LPIPS with a randomly initialised AlexNet backbone (`lpips.LPIPS(pnet_rand=True)`): the "
        "ImageNet weights cannot be downloaded here, so this LPIPS is not perceptual; L-inf, PSNR and SSIM are.",
    ])  # fmt: skip


def _default_row(c: dict) -> CeilingRow | None:
    return next((r for r in ceiling_rows(c) if r.eps_255 == 8 and r.artcloak is not None), None)


def _preset_cells(attack: Attack | None) -> list[str]:
    if attack is None:
        return ["-"] * 3
    return [
        _pct(attack.latent_distance_closed),
        _pct(attack.share_of_ceiling),
        _pct(attack.success),
    ]


def ceiling_section(c: dict) -> str:
    body = [[f"{r.eps_255}/255", f"{r.latent_steps} x {r.restarts}",
             _pct(r.latent_attack.latent_distance_closed), _pct(r.latent_attack.success),
             _pct(r.judge_attack.success), *_preset_cells(r.artcloak), *_preset_cells(r.plain_pgd),
             "-" if r.passes is None else r.passes]
            for r in ceiling_rows(c)]  # fmt: skip
    default = _default_row(c)
    headline = (
        f"**share of the ceiling: {100 * default.artcloak.share_of_ceiling:.1f}%** (default preset, "
        f"8/255; goal >= 95%: {'met' if default.artcloak.share_of_ceiling >= 0.95 else 'not met'}). "
        f"Plain PGD with the same passes: {100 * default.plain_pgd.share_of_ceiling:.1f}%."
        if default
        else "(no default-preset row in this run)"
    )
    return "\n".join([
        "## 3. The ceiling per budget, and artcloak's share of it",
        f"White-box sign-gradient attacks on the same {c['images']} held-out images and style targets, "
        "without any perceptual limit: on the encoder's latent distance to the target (artcloak's "
        "objective; steps x restarts, the best per image kept), and on the judge's verdict through encoder, "
        f"decoder and judge ({c['judge_steps']} steps; no protection can see the judge). At the preset budgets "
        "(low 4, default 8, high 16), artcloak's preset and plain PGD with as many encoder passes. "
        "Share of the ceiling: latent distance closed over the latent attack's.",
        "",
        headline,
        "",
        _table(["L-inf budget", "latent attack steps x restarts", "closed (latent attack)", "success (latent attack)",
                "success (judge attack)", "closed (artcloak)", "share of ceiling (artcloak)", "success (artcloak)",
                "closed (plain PGD)", "share of ceiling (plain PGD)", "success (plain PGD)",
                "encoder passes (artcloak = PGD)"], body),
    ])  # fmt: skip


def objectives_section(o: dict, ceiling: dict | None) -> str:
    top = None
    if ceiling:
        at_8 = next(r for r in ceiling_rows(ceiling) if r.eps_255 == 8)
        top = at_8.latent_attack.latent_distance_closed
    body = [[name, _pct(r["latent_distance_closed"]), _pct(r["latent_distance_closed"] / top) if top else "-",
             _pct(r["success"]), _pct(r["success_sampled_view"]), _pct(r["source_style_lost"])]
            for name, r in o["rows"].items()]  # fmt: skip
    return "\n".join([
        "## 4. Objectives at equal budget and passes",
        f"One loop (plain sign-PGD, 8/255, {o['steps']} steps from the original) on the ceiling's "
        f"{o['images']} images; only the loss differs. Closed: the latent distance to the target style "
        "closed. Success: the judge reads the target style in decode(mean); sampled view: in decode(a "
        "sampled latent). Source lost: the judge no longer reads the original style (decode(mean)).",
        "",
        _table(["objective", "latent distance closed", "share of the 8/255 ceiling", "success",
                "success, sampled view", "source style lost"], body),
    ])  # fmt: skip


def fragility_section(f: dict) -> str:
    body = [[r["variant"], "/".join(str(c) for c in r["channels"]), r["latent_channels"], r["steps_trained"],
             f"{r['parameters'] / 1e6:.2f} M", f"{r['held_out_psnr']:.1f}", _pct(r["judge_accuracy_on_reconstructions"]),
             _pct(r["latent_attack"]["latent_distance_closed"]), _pct(r["latent_attack"]["success"]),
             _pct(r["judge_attack"]["success"])]
            for r in f["rows"]]  # fmt: skip
    return "\n".join([
        "## 5. Fragility: what makes an encoder movable",
        f"Every committed VAE variant. Ceiling at 8/255: the latent attack ({f['steps']} steps) and the attack "
        f"on the judge through that variant's VAE ({f['judge_steps']} steps), on the ceiling's images.",
        "",
        _table(["variant", "channels", "latent channels", "steps trained", "parameters", "held-out PSNR dB",
                "judge accuracy on reconstructions", "closed (latent attack)", "success (latent attack)",
                "success (judge attack)"], body),
    ])  # fmt: skip


def survival_section(survival: dict) -> str:
    body = [[name, _pct(r.clean_still_recognised), _pct(r.standard), _pct(r.robust),
             _pct(r.plain_pgd)] for name, r in survival_rows(survival).items()]  # fmt: skip
    vis = survival["visibility"]
    return "\n".join([
        "## 6. Survival, without and with robust optimisation (default intensity)",
        "Success after the image is transformed before the model sees it. The first column is the "
        "judge's accuracy on the reconstruction of the transformed *unprotected* image (how much of the "
        "style the transform itself leaves). Plain PGD: as many passes as the standard run.",
        "",
        _table(["transform", "clean still recognised", "success, standard", "success, robust",
                "success, plain PGD"], body),
        "",
        "Visibility of the runs: "
        + "; ".join(f"{n}: PSNR {v['psnr_db']:.1f} dB, SSIM {v['ssim']:.3f}, L-inf {v['linf_255_max']:.0f}/255"
                    for n, v in vis.items()),
    ])  # fmt: skip


def adaptive_section(rows: dict) -> str:
    body = [[name, r["images"], _pct(r["success"]), f"{r['psnr_db']:.1f}", f"{r['ssim']:.3f}",
             f"{r['linf_255_max']:.0f}/255"] for name, r in rows.items()]  # fmt: skip
    return "\n".join(
        [
            "## 7. Visibility on flat colour (cel and watercolour sources)",
            _table(["budget", "images", "success", "PSNR dB", "SSIM", "L-inf (max)"], body),
        ]
    )


def mimicry_section(m: dict) -> str:
    generators = m.get("generators", 1)
    body = [[name, _pct(m[name]["artist_style_share"]), _per_generator(m[name]),
             _pct(m[name]["target_style_share"])] for name in _mimicry_sets_in(m)]  # fmt: skip
    pooled = f"all {generators} generators' samples pooled" if generators > 1 else "one generator"
    return "\n".join([
        "## 8. Mimicry proxy",
        f"A latent flow-matching generator pre-trained on all six styles, fine-tuned on "
        f"{m['fine_tune_images']} {m['artist_style']} images under a new label; the artist cloaks toward "
        f"{m['target_style']} with artcloak's default preset (8/255) or high (16/255); plain PGD at "
        f"the same budget and encoder passes.{_guided(m)} Share of the new label's samples the judge "
        f"assigns to each style ({pooled}; one generator's figure moves with its seed, so each seed's "
        "own is listed too):",
        "",
        _table(["fine-tuned on", f"{m['artist_style']} (artist)", "per generator seed",
                f"{m['target_style']} (target)"], body),
    ])  # fmt: skip


def _mimicry_sets_in(figures: dict) -> list[str]:
    """The labels of the training sets a mimicry run's figures hold (a quick run or an old
    one may lack some), in the experiment's order."""
    return [s.label for s in MIMICRY_SETS if s.label in figures]


def _per_generator(run: dict) -> str:
    shares = run.get("artist_style_share_per_generator")
    return ", ".join(_pct(share) for share in shares) if shares else "-"


def _guided(figures: dict) -> str:
    """How the generator samples (runs before 2026-12-03 sampled without guidance)."""
    guidance = figures.get("guidance")
    if guidance is None:
        return ""
    steps = figures.get("sample_steps", 40)
    return f" Samples: {steps} Euler steps with classifier-free guidance {guidance:g}, as mimics sample."


def shade_section(s: dict) -> str:
    body = [[r["poisoned"], _pct(r["share_of_concept_set"]), _pct(r["samples_as_other"]),
             _pct(r["samples_as_concept"])] for r in s["rows"]]  # fmt: skip
    return "\n".join([
        "## 9. Shade proxy",
        f"A class-conditional latent generator trained on all styles; {s['clean_images']} images of "
        f"'{s['concept']}', some replaced by {s['concept']} images shaded toward '{s['other']}'."
        f"{_guided(s)}",
        "",
        _table(["poisoned images", "share of the concept's set", f"samples as {s['other']}",
                f"samples as {s['concept']}"], body),
    ])  # fmt: skip


def plots(figures: dict, folder: Path) -> list[str]:
    folder.mkdir(parents=True, exist_ok=True)
    names = []
    ceiling = figures.get("ceiling")
    if ceiling:
        fig, ax = plt.subplots(figsize=(5.5, 3.4))
        rows = ceiling_rows(ceiling)
        budgets = [r.eps_255 for r in rows]
        ax.plot(budgets, [100 * r.latent_attack.latent_distance_closed for r in rows], "o-",
                label="latent attack (ceiling)")  # fmt: skip
        for label, presets in (
            ("artcloak preset", [(r.eps_255, r.artcloak) for r in rows]),
            ("plain PGD, same passes", [(r.eps_255, r.plain_pgd) for r in rows]),
        ):
            points = [
                (eps_255, 100 * a.latent_distance_closed) for eps_255, a in presets if a is not None
            ]
            ax.plot(*zip(*points, strict=True), "s--", label=label)
        ax.set_xscale("log", base=2)
        ax.set_xlabel("L-inf budget (/255)")
        ax.set_ylabel("latent distance closed (%)")
        ax.legend(fontsize=8)
        fig.tight_layout()
        fig.savefig(folder / "ceiling.png", dpi=110)
        names.append("ceiling.png")
        plt.close(fig)
    survival = figures.get("survival")
    if survival:
        rows = survival_rows(survival)
        series = {
            "standard": [100 * r.standard for r in rows.values()],
            "robust": [100 * r.robust for r in rows.values()],
            "plain_pgd": [100 * r.plain_pgd for r in rows.values()],
        }
        names.append(_paired_bars(folder / "survival.png", list(rows), series,
                                  "cloak success (%)", (7, 3.5), rotate=True))  # fmt: skip
    mim = figures.get("mimicry")
    if mim:
        styles = list(mim[CLEAN.label]["histogram"])
        series = {f"fine-tuned on {name}": [100 * mim[name]["histogram"][s] for s in styles]
                  for name in _mimicry_sets_in(mim)}  # fmt: skip
        names.append(_paired_bars(folder / "mimicry.png", styles, series,
                                  "share of samples (%)", (6, 3.2)))  # fmt: skip
    return names


def _paired_bars(
    path: Path,
    labels: list[str],
    series: dict[str, list[float]],
    ylabel: str,
    size: tuple[float, float],
    rotate: bool = False,
) -> str:
    """One bar per series at each label; saved to ``path``; returns its file name."""
    fig, ax = plt.subplots(figsize=size)
    x = range(len(labels))
    width = 0.8 / len(series)
    for k, (name, values) in enumerate(series.items()):
        offset = (k - (len(series) - 1) / 2) * width
        ax.bar([i + offset for i in x], values, width, label=name)
    if rotate:
        ax.set_xticks(list(x), labels, rotation=40, ha="right", fontsize=8)
    else:
        ax.set_xticks(list(x), labels, fontsize=8)
    ax.set_ylabel(ylabel)
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path.name


def goals_section(figures: dict) -> str:
    """Each goal of issue 17, met or not, from this run's figures."""
    lines = ["## Goals (issue 17), from this run"]
    world = figures["world"]
    lines.append(_goal(f"world 2's VAE >= 27 dB held-out PSNR: {world['reconstruction_psnr']:.1f} dB",
                       world["reconstruction_psnr"] >= 27))  # fmt: skip
    judge_ok = min(world["clean_accuracy"], world["reconstruction_accuracy"]) >= 0.95
    lines.append(_goal(f"judge >= 95% on clean ({_pct(world['clean_accuracy'])}) and on reconstructions "
                       f"({_pct(world['reconstruction_accuracy'])})", judge_ok))  # fmt: skip
    default = _default_row(figures["ceiling"]) if "ceiling" in figures else None
    if default:
        share = default.artcloak.share_of_ceiling
        lines.append(
            _goal(f"share of the ceiling at 8/255 >= 95%: {100 * share:.1f}%", share >= 0.95)
        )
        ceiling = default.judge_attack.success
        success = default.artcloak.success
        lines.append(_goal(f"default preset success >= 50% of the judge-attack ceiling at 8/255: "
                           f"{_pct(success)} of {_pct(ceiling)}", ceiling > 0 and success >= 0.5 * ceiling))  # fmt: skip
    if "survival" in figures:
        rows = survival_rows(figures["survival"])
        clean, jpeg = rows[NO_TRANSFORM].robust, rows[JPEG_Q75].robust
        lines.append(_goal(f"with --robust, success after JPEG q75 >= half of clean success: {_pct(jpeg)} "
                           f"after, {_pct(clean)} clean", clean > 0 and jpeg >= 0.5 * clean))  # fmt: skip
    if "mimicry" in figures:
        m = figures["mimicry"]
        cloaked = m[CLOAKED.label]["artist_style_share"]
        clean = m[CLEAN.label]["artist_style_share"]
        lines.append(_goal(f"mimicry: the artist's style in <= 30% of samples after fine-tuning on cloaked "
                           f"images ({_pct(cloaked)}), >= 80% on clean ({_pct(clean)}); "
                           f"{m.get('generators', 1)} generator(s)",
                           cloaked <= 0.3 and clean >= 0.8))  # fmt: skip
    return "\n".join(lines)


def _goal(text: str, met: bool) -> str:
    return f"- {'**met**' if met else '**not met**'}: {text}"


def reruns_lines(reruns: list[dict]) -> list[str]:
    """Which stages' figures come from a later run than the rest of the report."""
    if not reruns:
        return []
    lines = [
        "",
        "Stages rerun later (their sections hold that run's figures; the rest are from the run above):",
    ]
    for run in reruns:
        lines.append(f"- {', '.join(run['stages'])}: `{run['command']}` on {run['date']}, "
                     f"{run['seconds'] / 60:.1f} min on {run['machine']}.")  # fmt: skip
    return lines


def write_report(
    figures: dict, path: Path, command: str, seconds: float, stages: Sequence[Stage]
) -> None:
    """The report of a run's ``figures``: its header and goals, the world, and the section
    of each of ``stages`` the figures hold."""
    sections = [
        "# artcloak efficacy bench: a miniature world",
        f"Command: `{command}`  \nScale: {figures['scale']}; seeds fixed in the code; run time "
        f"{seconds / 60:.1f} min on {figures['machine']}.",
        *reruns_lines(figures.get("reruns", [])),
        "",
        goals_section(figures),
        world_section(figures["world"]),
    ]
    sections += [stage.section(figures) for stage in stages if stage.name in figures]
    images = plots(figures, path.parent / "plots")
    sections.append("## Plots\n" + "\n".join(f"![{n}](plots/{n})" for n in images))
    path.write_text("\n\n".join(sections) + "\n")
