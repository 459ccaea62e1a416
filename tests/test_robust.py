"""Robust optimisation (random scraper transforms) and the adaptive, contrast-masked budget."""

from __future__ import annotations

import io
from dataclasses import replace

import numpy as np
import torch
from artcloak.engine.masking import FLOOR, budget_shares
from artcloak.engine.protect import ImageJob
from artcloak.engine.robust import down_up, gaussian_blur, jpeg_like, random_transform
from conftest import painting
from PIL import Image


def _tensor(samples: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(samples.astype(np.float32) / 255).permute(2, 0, 1)[None]


def _real_jpeg(samples: np.ndarray, quality: int) -> torch.Tensor:
    buffer = io.BytesIO()
    Image.fromarray(samples).save(buffer, "JPEG", quality=quality)
    buffer.seek(0)
    return _tensor(np.asarray(Image.open(buffer)))


def test_the_jpeg_approximation_is_closer_to_real_jpeg_than_the_image_is():
    rng = np.random.default_rng(0)
    samples = np.clip(painting(64, 48).astype(int) + rng.integers(-30, 30, (48, 64, 3)), 0, 255)
    samples = samples.astype(np.uint8)
    image = _tensor(samples)
    for quality in (60, 90):
        real = _real_jpeg(samples, quality)
        approx = jpeg_like(image, quality)
        assert approx.shape == image.shape
        assert (approx - real).abs().mean() < 0.6 * (image - real).abs().mean()


def test_every_transform_keeps_shape_range_and_passes_gradients():
    image = _tensor(painting(40, 24)).requires_grad_(True)
    for transform in (
        lambda x: jpeg_like(x, 75),
        lambda x: down_up(x, 0.5),
        lambda x: gaussian_blur(x, 1.0),
    ):
        out = transform(image)
        assert out.shape == image.shape
        assert float(out.detach().min()) >= 0 and float(out.detach().max()) <= 1
        (grad,) = torch.autograd.grad(out.sum(), image)
        assert grad.abs().sum() > 0


def test_random_transforms_repeat_for_a_seed_and_vary_over_steps():
    names = [random_transform(3, step)[0] for step in range(30)]
    assert names == [random_transform(3, step)[0] for step in range(30)]
    assert len({name.split()[0] for name in names}) >= 4
    assert names != [random_transform(4, step)[0] for step in range(30)]


def test_robust_protection_holds_the_budget_and_differs_from_standard(engine, fast_settings):
    job = ImageJob("art", painting())
    standard = engine.protect([job], fast_settings)[0]
    robust = engine.protect([job], replace(fast_settings, robust=True))[0]
    assert robust.measured.within_budget
    assert not np.array_equal(standard.colour, robust.colour)


def test_budget_shares_are_low_on_flat_colour_and_full_in_texture():
    flat = np.full((32, 64, 3), 120, np.uint8)
    flat[:, 32:] = np.random.default_rng(0).integers(0, 255, (32, 32, 3))
    shares = budget_shares(_tensor(flat))[0, 0]
    assert torch.allclose(shares[:, :20], torch.tensor(FLOOR))
    assert torch.allclose(shares[:, 40:], torch.tensor(1.0))


def test_the_adaptive_budget_changes_flat_areas_less(engine, fast_settings):
    samples = np.full((64, 64, 3), 128, np.uint8)
    samples[:, 32:] = np.random.default_rng(1).integers(0, 255, (64, 32, 3))
    settings = replace(fast_settings, eps_255=8, steps=4)
    uniform = engine.protect([ImageJob("a", samples)], settings)[0]
    adaptive = engine.protect([ImageJob("a", samples)], replace(settings, adaptive=True))[0]

    def flat_change(result):
        return np.abs(result.colour.astype(int) - samples)[:, :24].max()

    assert adaptive.measured.within_budget
    assert flat_change(adaptive) <= np.ceil(FLOOR * 8) + 1 < flat_change(uniform)


def test_the_cli_options_reach_the_report(rgb_png, cli_model_args, capsys):
    import json

    from artcloak.cli import main

    try:
        main(["cloak", str(rgb_png), "--steps", "2", "--robust", "--adaptive", *cli_model_args])
    except SystemExit as exit_:
        assert not exit_.code, capsys.readouterr().err
    report = json.loads((rgb_png.parent / "art-cloaked.png.json").read_text())
    assert report["settings"]["robust"] is True
    assert report["settings"]["adaptive"] is True
