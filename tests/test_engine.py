"""The engine on in-memory images: budget, direction, determinism, masks, batches, cancel."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest
import torch
from artcloak.engine import budget
from artcloak.engine.budget import quantise
from artcloak.engine.protect import Engine, Failed, ImageJob, ImageResult
from artcloak.engine.resizing import RoundTrip, resize, working_size
from artcloak.errors import Cancelled, InputImageError, SettingsError, TargetError
from artcloak.progress import Listener
from artcloak.settings import (
    Budget,
    Intensity,
    ModelSettings,
    Precision,
    ProtectionSettings,
    Target,
)
from artcloak.testing import save_tiny_models
from conftest import painting


def job(seed: int = 0, width: int = 96, height: int = 72, **kwargs) -> ImageJob:
    return ImageJob(name=f"image{seed}", colour=painting(width, height, seed), **kwargs)


def protect_one(engine: Engine, image: ImageJob, settings: ProtectionSettings) -> ImageResult:
    (result,) = engine.protect([image], settings)
    assert isinstance(result, ImageResult), getattr(result, "message", "")
    return result


def test_budget_holds_on_the_quantised_samples(engine, fast_settings):
    result = protect_one(engine, job(), fast_settings)
    original = job().colour.astype(int)
    budget = fast_settings.budget()
    assert np.abs(result.colour.astype(int) - original).max() <= round(budget.eps * 255)
    assert result.measured.lpips <= budget.lpips
    assert result.measured.within_budget
    assert result.colour.dtype == np.uint8 and result.colour.shape == original.shape


def test_latent_moves_toward_the_target_and_loss_falls(engine):
    settings = ProtectionSettings(steps=12, resolution=64, lpips=0.5, eps_255=16)
    result = protect_one(engine, job(), settings)
    assert result.losses[-1] < result.losses[0]
    assert result.latent[0].distance_closed > 0.02


def test_same_seed_gives_the_same_samples(engine, fast_settings):
    first = protect_one(engine, job(), fast_settings).colour
    second = protect_one(engine, job(), fast_settings).colour
    other_seed = protect_one(engine, job(), replace(fast_settings, seed=1)).colour
    assert np.array_equal(first, second)
    assert not np.array_equal(first, other_seed)


def test_kept_pixels_are_bit_exact(engine, fast_settings):
    free = np.ones((72, 96), dtype=bool)
    free[10:40, 20:70] = False
    image = job(free=free)
    result = protect_one(engine, image, fast_settings)
    assert np.array_equal(result.colour[~free], image.colour[~free])
    assert not np.array_equal(result.colour[free], image.colour[free])


def test_greyscale_stays_greyscale(engine, fast_settings):
    grey = painting()[..., :1].repeat(3, axis=2)
    result = protect_one(engine, ImageJob("grey", grey, grey=True), fast_settings)
    assert np.array_equal(result.colour[..., 0], result.colour[..., 1])
    assert np.array_equal(result.colour[..., 0], result.colour[..., 2])
    assert not np.array_equal(result.colour, grey)


def test_sixteen_bit_samples_keep_their_precision(engine, fast_settings):
    colour = painting().astype(np.uint16) * 257 + 3  # values 8 bits cannot hold
    result = protect_one(engine, ImageJob("deep", colour, max_value=65535), fast_settings)
    assert result.colour.dtype == np.uint16
    change = np.abs(result.colour.astype(int) - colour.astype(int))
    assert change.max() <= int(fast_settings.budget().eps * 65535)
    assert np.any(change % 257 != 0)  # not just 8-bit steps


def test_lpips_over_budget_is_scaled_back_until_it_holds(engine):
    settings = ProtectionSettings(steps=4, resolution=64, lpips=0.0005, eps_255=32)
    result = protect_one(engine, job(), settings)
    assert result.measured.perturbation_kept < 1
    assert result.measured.lpips <= 0.0005


def test_quantise_enforces_a_fractional_eps_exactly():
    original = np.full((4, 4, 3), 100, dtype=np.uint8)
    perturbation = np.full((4, 4, 3), 0.03, dtype=np.float32)  # 7.65/255, rounds to 8
    written = quantise(original, perturbation, eps=7.5 / 255, max_value=255)
    assert int(written.max()) - 100 == 7


@pytest.mark.parametrize(("dtype", "max_value"), [(np.uint8, 255), (np.uint16, 65535)])
def test_quantise_and_the_sample_figures_match_integer_arithmetic(dtype, max_value):
    rng = np.random.default_rng(3)
    original = rng.integers(0, max_value + 1, (32, 24, 3)).astype(dtype)
    original[0, 0], original[0, 1] = 0, max_value  # clipped at both ends
    perturbation = rng.normal(0, 0.05, original.shape).astype(np.float32)
    limit = 8 * max_value // 255
    steps = np.clip(np.rint(perturbation * max_value).astype(np.int64), -limit, limit)
    expected = np.clip(original.astype(np.int64) + steps, 0, max_value)
    written = quantise(original, perturbation, eps=8 / 255, max_value=max_value)
    assert written.dtype == dtype
    np.testing.assert_array_equal(written, expected)
    unlike = rng.integers(0, max_value + 1, original.shape).astype(dtype)  # far from the budget
    difference = unlike.astype(np.int64) - original.astype(np.int64)
    linf, mse = budget._sample_differences(original, unlike, max_value)
    assert linf == np.abs(difference).max() / max_value
    assert mse == pytest.approx(np.mean((difference / max_value) ** 2), rel=1e-6)


def test_a_batch_protects_like_single_images(tiny_model_settings, fast_settings):
    jobs = [job(0), job(1), job(2)]
    batched = Engine(tiny_model_settings, batch_size=3).protect(jobs, fast_settings)
    alone = Engine(tiny_model_settings, batch_size=1).protect(jobs, fast_settings)
    for together, single in zip(batched, alone, strict=True):
        closed_together = together.latent[0].distance_closed
        closed_alone = single.latent[0].distance_closed
        assert closed_together == pytest.approx(closed_alone, abs=0.03)
        assert together.measured.within_budget


def test_images_of_different_sizes_are_grouped_and_keep_their_order(engine, fast_settings):
    jobs = [job(0, 96, 72), job(1, 64, 128), job(2, 96, 72)]
    results = engine.protect(jobs, fast_settings)
    assert [r.colour.shape[:2] for r in results] == [(72, 96), (128, 64), (72, 96)]


def test_an_unknown_style_is_refused_before_any_work(engine, fast_settings):
    settings = replace(fast_settings, target=Target(style="no-such-style"))
    with pytest.raises(TargetError, match="Unknown style 'no-such-style'"):
        engine.protect([job()], settings)


def test_cancel_stops_the_loop(engine, fast_settings):
    calls = []

    def cancel_after_two() -> bool:
        calls.append(1)
        return len(calls) > 2

    with pytest.raises(Cancelled):
        engine.protect([job()], fast_settings, Listener(should_cancel=cancel_after_two))


def test_progress_reports_every_step(engine, fast_settings):
    events = []
    engine.protect([job()], fast_settings, Listener(on_event=events.append))
    steps = [e.step for e in events if e.stage == "optimise"]
    assert steps == list(range(0, fast_settings.effort().steps + 1))


@pytest.mark.parametrize(
    "change, message",
    [
        ({"eps_255": 0.0}, "'eps_255' must be in \\(0, 64\\]"),
        ({"eps_255": 65}, "eps_255"),
        ({"lpips": 0.0}, "'lpips' must be in"),
        ({"steps": 0}, "'steps' must be in \\[1, 10000\\]"),
        ({"steps": "10"}, "'steps' must be a number"),
        ({"resolution": 10}, "resolution"),
    ],
)
def test_settings_are_checked_with_specific_messages(change, message):
    with pytest.raises(SettingsError, match=message):
        replace(ProtectionSettings(), **change).check()


def test_presets_order_the_budget():
    budgets = [ProtectionSettings(intensity=i).budget() for i in Intensity]
    assert budgets[0].eps < budgets[1].eps < budgets[2].eps
    assert ProtectionSettings(eps_255=2).budget() == Budget(lpips=0.05, eps=2 / 255)


def test_working_size_keeps_aspect_and_multiples_of_eight():
    assert working_size(640, 480, 512) == (640, 480)
    assert working_size(4096, 2048, 512) == (1024, 512)
    assert working_size(300, 200, 512) == (304, 200)
    w, h = working_size(10000, 500, 512)
    assert w <= 4 * 512 and w % 8 == 0 and h % 8 == 0


def test_round_trip_matches_resizing_the_full_image():
    delta = np.random.default_rng(0).standard_normal((3, 40, 48)).astype(np.float32)
    import torch

    tensor = torch.from_numpy(delta)
    trip = RoundTrip.between((120, 150), (40, 48))
    up = resize(tensor.unsqueeze(0), (120, 150))
    expected = resize(up, (40, 48))[0]
    assert torch.allclose(trip(tensor), expected, atol=1e-5)


def test_an_ensemble_moves_every_encoder_toward_its_target(tiny_models, tmp_path, fast_settings):
    other = save_tiny_models(tmp_path / "other", seed=1)["diffusers_folder"]
    models = ModelSettings(
        encoders=(str(tiny_models["diffusers_folder"]), str(other)),
        device="cpu",
        precision=Precision.FP32,
        lpips_random_backbone=True,
    )
    settings = replace(fast_settings, steps=10, eps_255=16)
    result = protect_one(Engine(models), job(), settings)
    assert [shift.encoder for shift in result.latent] == [str(p) for p in models.encoders]
    assert all(shift.distance_closed > 0 for shift in result.latent)


def test_in_memory_target_images_are_used(engine, fast_settings):
    target_pixels = painting(seed=5)[::-1].astype(np.float32) / 255
    settings = replace(fast_settings, steps=10, target=Target(images=(target_pixels,)))
    result = protect_one(engine, job(), settings)
    assert result.latent[0].distance_closed > 0


def test_a_target_that_is_the_image_itself_is_refused(engine, fast_settings):
    """Nothing to move toward: one clear failure, not a closure of minus billions of percent."""
    itself = painting(64, 64).astype(np.float32) / 255  # at the working size: the same latent
    settings = replace(fast_settings, target=Target(images=(itself,)))
    (result,) = engine.protect([job(width=64, height=64)], settings)
    assert isinstance(result, Failed) and "looks like the image itself" in result.message
    (moved,) = engine.latent_figures(painting(64, 64), painting(64, 64, seed=1), 255, settings)
    assert moved.distance_closed is None and moved.relative_shift > 0


def test_progress_reports_the_budget_used(engine, fast_settings):
    events = []
    engine.protect([job()], fast_settings, Listener(on_event=events.append))
    used = [e.budget_used for e in events if e.stage == "optimise" and e.step > 0]
    assert all(value is not None and value >= 0 for value in used)


def test_lpips_of_large_images_is_measured_downscaled_and_says_so(engine, monkeypatch):
    import artcloak.engine.budget as budget

    monkeypatch.setattr(budget, "MAX_LPIPS_PIXELS", 48 * 36)
    original = painting()
    protected = original.copy()
    protected[::3] += 2
    figures = budget.measure(engine.lpips, original, protected, 255)
    assert figures.lpips_size == (48, 36)
    reported = figures.figures(ProtectionSettings().budget()).as_dict()
    assert reported["lpips_measured_at"] == [48, 36]
    assert figures.linf == 2 / 255  # L-inf stays exact at full resolution


def test_images_in_one_batch_can_have_their_own_targets(tiny_model_settings, fast_settings):
    stripes, marble = Target(style="stripes"), Target(style="marble")
    jobs = [replace(job(0), target=stripes), replace(job(1), target=marble)]
    settings = replace(fast_settings, steps=8, eps_255=16)
    together = Engine(tiny_model_settings, batch_size=2).protect(jobs, settings)
    alone = [protect_one(Engine(tiny_model_settings), j, settings) for j in jobs]
    for batched, single in zip(together, alone, strict=True):
        assert batched.latent[0].distance_closed > 0.05
        assert batched.latent[0].distance_closed == pytest.approx(
            single.latent[0].distance_closed, abs=0.03
        )
    # each was measured against its own target, not the shared default
    shared = protect_one(Engine(tiny_model_settings), job(0), settings)
    assert together[0].latent[0].distance_closed != shared.latent[0].distance_closed


def test_in_memory_target_images_in_8_bit_units_are_refused_before_any_model_loads():
    """A host handing 0-255 samples as a target would pull toward a white blur: refused."""
    from artcloak.engine.targets import check_target
    from artcloak.settings import Mode

    eight_bit = np.full((8, 8, 3), 200, dtype=np.uint8)
    with pytest.raises(TargetError, match=r"floats in \[0, 1\].*divide 8-bit samples by 255"):
        check_target(Target(images=(eight_bit,)), Mode.CLOAK)
    with pytest.raises(TargetError, match=r"floats in \[0, 1\]"):
        check_target(Target(images=(eight_bit.astype(np.float32),)), Mode.CLOAK)
    check_target(Target(images=(eight_bit.astype(np.float32) / 255,)), Mode.CLOAK)


def test_a_chain_with_the_original_keeps_one_budget(tiny_models, tmp_path, fast_settings):
    """A second engine (another encoder) protecting an already protected image with the
    original given: it starts from the first perturbation, the budget holds against the
    original, and both encoders' latents have moved toward the target. Without the original,
    the budget is measured against the incoming image and the chain can exceed it."""
    first_engine = Engine(ModelSettings(encoders=(str(tiny_models["diffusers_folder"]),),
                                        device="cpu", lpips_random_backbone=True))  # fmt: skip
    other = save_tiny_models(tmp_path / "other", seed=1)["diffusers_folder"]
    second_engine = Engine(
        ModelSettings(encoders=(str(other),), device="cpu", lpips_random_backbone=True)
    )
    settings = replace(fast_settings, steps=10, eps_255=8)
    original = job().colour
    first = protect_one(first_engine, job(), settings)
    chained = protect_one(
        second_engine,
        ImageJob(name="chained", colour=first.colour, original=original),
        replace(settings, seed=1),
    )
    budget = settings.budget()
    change = np.abs(chained.colour.astype(int) - original.astype(int)).max()
    assert change <= round(budget.eps * 255)
    assert chained.measured.within_budget and chained.measured.linf_255 == pytest.approx(change)
    assert chained.latent[0].distance_closed > 0  # measured from the original
    kept = first_engine.latent_figures(original, chained.colour, 255, settings)
    assert kept[0].distance_closed > 0  # the first encoder's closure survives the chain

    unchained = protect_one(
        second_engine, ImageJob(name="unchained", colour=first.colour), replace(settings, seed=1)
    )
    assert np.abs(unchained.colour.astype(int) - original.astype(int)).max() > budget.eps * 255

    with pytest.raises(InputImageError, match="original"):
        second_engine.protect([ImageJob(name="x", colour=first.colour, original=original[:8])],
                              settings)  # fmt: skip


def test_the_engine_loads_decoders_only_when_asked(tiny_model_settings, fast_settings):
    """Protecting needs the encoders alone (a full VAE's decoder is about 0.2 GB); the app's
    engine (``decoders=True``) shows what the model sees."""
    from artcloak.engine.verify import model_view
    from artcloak.errors import ModelLoadError

    rgb = painting(64, 48).astype(np.float32) / 255
    protecting = Engine(tiny_model_settings)
    assert not any(encoder.has_decoder for encoder in protecting.encoders)
    with pytest.raises(ModelLoadError, match=r"Engine\(\.\.\., decoders=True\)"):
        model_view(protecting, rgb, fast_settings)
    showing = Engine(tiny_model_settings, decoders=True)
    assert all(encoder.has_decoder for encoder in showing.encoders)
    seen = model_view(showing, rgb, fast_settings)
    assert seen.ndim == 3 and seen.shape[2] == 3 and 0 <= seen.min() <= seen.max() <= 1


def test_each_view_is_encoded_once_per_protection(tiny_model_settings, fast_settings, monkeypatch):
    engine = Engine(tiny_model_settings)  # its own: the session engine remembers views
    encoder = engine.encoders[0]
    seen: list[torch.Tensor] = []
    forward = type(encoder).forward

    def recording(self, images):
        if not torch.is_grad_enabled():
            seen.append(images.detach().clone())
        return forward(self, images)

    monkeypatch.setattr(type(encoder), "forward", recording)
    result = protect_one(engine, job(), fast_settings)
    # the target, the original (the loss's unit and the report's "before") and the result
    assert len(seen) == 3
    assert not any(torch.equal(a, b) for i, a in enumerate(seen) for b in seen[i + 1 :])
    again = engine.latent_figures(job().colour, result.colour, 255, fast_settings)
    assert len(seen) == 3 and again == result.latent


def test_the_original_is_made_into_the_models_view_once(engine, fast_settings, monkeypatch):
    image = job(4)
    made = []
    to_tensor = engine._tensor

    def counted(samples, max_value):
        if samples.shape[:2] == image.colour.shape[:2]:
            made.append(samples is image.colour)
        return to_tensor(samples, max_value)

    monkeypatch.setattr(engine, "_tensor", counted)
    result = protect_one(engine, image, fast_settings)
    assert made == [True, False]  # the original for the loop, the protected samples for the report
    monkeypatch.undo()
    again = engine.latent_figures(image.colour, result.colour, 255, fast_settings)
    assert [shift.as_dict() for shift in again] == [shift.as_dict() for shift in result.latent]
