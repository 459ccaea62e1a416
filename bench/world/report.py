"""The efficacy bench's markdown report and plots."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402


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
        "## 1. The world",
        f"Held-out images: {world['held_out_images']}. VAE: {world['vae_parameters'] / 1e6:.2f} M parameters, "
        "8x downsampling, 4 latent channels. Training seconds: "
        + ", ".join(f"{k} {v:.0f}" for k, v in seconds.items())
        + (" (loaded from the cache; the seconds are those of the run that trained it)." if world["cached"] else "."),
        "",
        _table(["style", "judge accuracy, clean", "judge accuracy, VAE reconstruction", "reconstruction PSNR (dB)"], rows),
    ])  # fmt: skip


def presets_section(rows: dict) -> str:
    body = [
        [name, r["images"], _pct(r["success"]), _pct(r["still_source_style"]),
         _pct(r["latent_distance_closed"]) if "latent_distance_closed" in r else "-",
         f"{r['linf_255_max']:.0f}/255",
         f"{r['psnr_db']:.1f}", f"{r['ssim']:.3f}", f"{r['lpips_mean']:.4f}", f"{r['seconds_per_image']:.2f}"]
        for name, r in rows.items()
    ]  # fmt: skip
    return "\n".join([
        "## 2. Cloak efficacy (artcloak's engine, default render quality)",
        "Success: the judge labels the VAE reconstruction of the protected image as the target style "
        "(texture target: as any style but the original).",
        "",
        _table(["intensity, target", "images", "success", "still original style", "latent distance closed",
                "L-inf (max)", "PSNR dB",
                "SSIM", "LPIPS*", "s/image"], body),
        "",
        "*LPIPS with a randomly initialised AlexNet backbone (`lpips.LPIPS(pnet_rand=True)`): the "
        "ImageNet weights cannot be downloaded here, so this LPIPS is not perceptual; L-inf, PSNR and SSIM are.",
    ])  # fmt: skip


def ceiling_section(c: dict) -> str:
    body = [[f"{r['eps_255']}/255", _pct(r["latent_distance_closed"]), _pct(r["success_latent_attack"]),
             _pct(r["success_judge_attack"])] for r in c["rows"]]  # fmt: skip
    return "\n".join([
        "## 2b. The attack ceiling of this world",
        f"White-box sign-gradient attacks ({c['steps']} steps, the same {c['images']} images and style "
        "targets as section 2), without any perceptual constraint: on the encoder's latent distance "
        "to the target (artcloak's objective), and on the judge's verdict through encoder, decoder and "
        "judge (which no protection can see). Success as in section 2.",
        "",
        _table(["L-inf budget", "latent distance closed (latent attack)", "success (latent attack)",
                "success (attack on the judge through the VAE)"], body),
    ])  # fmt: skip


def survival_section(survival: dict) -> str:
    table = survival["table"]
    body = [[name, _pct(r["clean_still_recognised"]), _pct(r["standard"]), _pct(r["robust"])]
            for name, r in table.items()]  # fmt: skip
    vis = survival["visibility"]
    return "\n".join([
        "## 3-4. Survival, without and with robust optimisation (default intensity)",
        "Success after the image is transformed before the model sees it. The first column is the "
        "judge's accuracy on the reconstruction of the transformed *unprotected* image (how much of the "
        "style the transform itself leaves).",
        "",
        _table(["transform", "clean still recognised", "success, standard", "success, robust"], body),
        "",
        "Visibility of the two runs: "
        + "; ".join(f"{n}: PSNR {v['psnr_db']:.1f} dB, SSIM {v['ssim']:.3f}, L-inf {v['linf_255_max']:.0f}/255"
                    for n, v in vis.items()),
    ])  # fmt: skip


def adaptive_section(rows: dict) -> str:
    body = [[name, r["images"], _pct(r["success"]), f"{r['psnr_db']:.1f}", f"{r['ssim']:.3f}",
             f"{r['linf_255_max']:.0f}/255"] for name, r in rows.items()]  # fmt: skip
    return "\n".join(
        [
            "## 5. Visibility on flat colour (cel and watercolour sources)",
            _table(["budget", "images", "success", "PSNR dB", "SSIM", "L-inf (max)"], body),
        ]
    )


def mimicry_section(m: dict) -> str:
    body = [[name, _pct(m[name]["artist_style_share"]), _pct(m[name]["target_style_share"])]
            for name in ("clean", "cloaked")]  # fmt: skip
    return "\n".join([
        "## 6. Mimicry proxy",
        f"A latent flow-matching generator pre-trained on all six styles, fine-tuned on "
        f"{m['fine_tune_images']} {m['artist_style']} images under a new label; the artist cloaks toward "
        f"{m['target_style']}. Share of the new label's samples the judge assigns to each style:",
        "",
        _table(["fine-tuned on", f"{m['artist_style']} (artist)", f"{m['target_style']} (target)"], body),
    ])  # fmt: skip


def shade_section(s: dict) -> str:
    body = [[r["poisoned"], _pct(r["share_of_concept_set"]), _pct(r["samples_as_other"]),
             _pct(r["samples_as_concept"])] for r in s["rows"]]  # fmt: skip
    return "\n".join([
        "## 7. Shade proxy",
        f"A class-conditional latent generator trained on all styles; {s['clean_images']} images of "
        f"'{s['concept']}', some replaced by {s['concept']} images shaded toward '{s['other']}'.",
        "",
        _table(["poisoned images", "share of the concept's set", f"samples as {s['other']}",
                f"samples as {s['concept']}"], body),
    ])  # fmt: skip


def plots(figures: dict, folder: Path) -> list[str]:
    folder.mkdir(parents=True, exist_ok=True)
    names = []
    presets = figures.get("presets", {})
    if presets:
        fig, ax = plt.subplots(figsize=(5, 3.2))
        style_rows = {k: v for k, v in presets.items() if "style target" in k}
        ax.plot(
            [v["linf_255_max"] for v in style_rows.values()],
            [100 * v["success"] for v in style_rows.values()],
            "o-",
        )
        for k, v in style_rows.items():
            ax.annotate(k.split(",")[0], (v["linf_255_max"], 100 * v["success"]))
        ax.set_xlabel("L-inf budget (/255)")
        ax.set_ylabel("cloak success (%)")
        ax.set_ylim(0, 105)
        fig.tight_layout()
        fig.savefig(folder / "success-vs-budget.png", dpi=110)
        names.append("success-vs-budget.png")
        plt.close(fig)
    survival = figures.get("survival")
    if survival:
        table = survival["table"]
        series = {run: [100 * r[run] for r in table.values()] for run in ("standard", "robust")}
        names.append(_paired_bars(folder / "survival.png", list(table), series,
                                  "cloak success (%)", (7, 3.5), rotate=True))  # fmt: skip
    mim = figures.get("mimicry")
    if mim:
        styles = list(mim["clean"]["histogram"])
        series = {f"fine-tuned on {name}": [100 * mim[name]["histogram"][s] for s in styles]
                  for name in ("clean", "cloaked")}  # fmt: skip
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
    """Two bars per label, one per series; saved to ``path``; returns its file name."""
    fig, ax = plt.subplots(figsize=size)
    x = range(len(labels))
    for offset, (name, values) in zip((-0.2, 0.2), series.items(), strict=True):
        ax.bar([i + offset for i in x], values, 0.4, label=name)
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


def write_report(figures: dict, path: Path, command: str, seconds: float) -> None:
    sections = [
        "# artcloak efficacy bench: a miniature world",
        f"Command: `{command}`  \nScale: {figures['scale']}; seeds fixed in the code; run time "
        f"{seconds / 60:.1f} min on {figures['machine']}.",
        "",
        world_section(figures["world"]),
    ]
    if "presets" in figures:
        sections.append(presets_section(figures["presets"]))
    if "ceiling" in figures:
        sections.append(ceiling_section(figures["ceiling"]))
    if "survival" in figures:
        sections.append(survival_section(figures["survival"]))
    if "adaptive" in figures:
        sections.append(adaptive_section(figures["adaptive"]))
    if "mimicry" in figures:
        sections.append(mimicry_section(figures["mimicry"]))
    if "shade" in figures:
        sections.append(shade_section(figures["shade"]))
    images = plots(figures, path.parent / "plots")
    sections.append("## Plots\n" + "\n".join(f"![{n}](plots/{n})" for n in images))
    path.write_text("\n\n".join(sections) + "\n")
