"""How the loop spends encoder passes: early stop on a plateau, LPIPS only as needed."""

from __future__ import annotations

from dataclasses import replace

import pytest
import torch
from artcloak.engine.optimize import lpips_due, plateaued
from artcloak.engine.protect import Engine, ImageJob, ImageResult
from artcloak.progress import Listener
from artcloak.settings import Effort, ProtectionSettings
from conftest import painting


def run(engine: Engine, settings: ProtectionSettings) -> tuple[ImageResult, list]:
    events: list = []
    job = ImageJob(name="art", colour=painting(64, 64, 3))
    (result,) = engine.protect([job], settings, Listener(on_event=events.append))
    assert isinstance(result, ImageResult), getattr(result, "message", "")
    return result, [e for e in events if e.stage == "optimise"]


def test_a_flat_loss_is_a_plateau_and_a_falling_one_is_not():
    assert plateaued([1.0] * 12, patience=6)
    assert not plateaued([1.0 - 0.01 * i for i in range(12)], patience=6)
    assert not plateaued([1.0] * 11, patience=6)  # too early to tell
    assert not plateaued([1.0] * 50, patience=None)


def test_lpips_is_evaluated_every_few_steps_and_every_step_near_its_bound():
    effort = Effort(steps=20, lpips_every=4)
    assert [lpips_due(s, effort, 0.1) for s in range(9)] == [False, False, False, False, True,
                                                             False, False, False, True]  # fmt: skip
    assert all(lpips_due(s, effort, 0.9) for s in range(1, 5))
    assert lpips_due(1, effort, None) is False
    assert lpips_due(0, effort, 0.9) is False  # the first pass, timed for the estimate


@pytest.fixture
def long_settings(fast_settings) -> ProtectionSettings:
    return replace(fast_settings, steps=150, eps_255=2)


def test_the_loop_stops_early_once_the_latent_loss_stops_falling(engine, long_settings):
    result, events = run(engine, long_settings)
    steps = result.encoder_passes  # one pass a step, the first at the start
    assert 12 <= steps < 150
    assert events[-1].step == events[-1].total == steps
    assert result.losses[-1] <= result.losses[0]


def test_without_patience_every_step_runs(engine, long_settings, monkeypatch):
    monkeypatch.setattr(ProtectionSettings, "effort", lambda self: Effort(steps=40, patience=None))
    result, events = run(engine, long_settings)
    assert result.encoder_passes == 40
    assert [e.step for e in events] == list(range(41))


def test_a_robust_loop_runs_every_step(engine, long_settings):
    """A loss seen through random transforms looks flat to the plateau rule: not used."""
    result, events = run(engine, replace(long_settings, steps=40, robust=True))
    assert result.encoder_passes == 40
    assert {e.total for e in events} == {40}


def test_an_early_stop_ends_with_a_short_cool_down(engine, long_settings):
    _, events = run(engine, long_settings)
    totals = [e.total for e in events]
    cut = next(i for i, t in enumerate(totals) if t != totals[0])
    assert totals[-1] == events[cut].step + long_settings.effort().cool_down


def test_the_time_left_is_estimated_before_step_one_and_measured_after(engine, fast_settings):
    _, events = run(engine, fast_settings)
    assert events[0].step == 0 and events[0].seconds_left > 0  # from the first pass, timed
    assert all(e.seconds_left is not None and e.seconds_left >= 0 for e in events)
    assert events[-1].seconds_left == 0


def test_sign_step_keeps_momentum_and_starts_fresh_each_run():
    """With momentum a small reversed gradient does not reverse the step (plain sign steps
    follow it at once), and step 0 forgets the previous run's gradients."""
    from artcloak.engine.optimize import SignStep

    zero = torch.zeros(1, 1, 1, 2)
    down, turned = torch.tensor([[[[1.0, 1.0]]]]), torch.tensor([[[[-0.1, 1.9]]]])
    momentum, plain = SignStep(decay=0.5, start=0.5), SignStep(decay=0.0, start=0.5)
    loss = torch.ones(1)
    for rule in (momentum, plain):
        assert (rule(zero, down, loss, 0, 10, 1.0) < 0).all()
    assert (momentum(zero, turned, loss, 1, 10, 1.0) < 0).all()  # pixel 0 still along the first
    assert plain(zero, turned, loss, 1, 10, 1.0)[..., 0] > 0
    assert momentum(zero, turned, loss, 0, 10, 1.0)[..., 0] > 0  # a new run


def test_sign_step_cuts_the_steps_of_an_image_whose_loss_rose():
    """Two images, the same gradient: the one whose loss rose after its first step takes
    steps ``cut`` times as large from then on; the other keeps the schedule."""
    from artcloak.engine.optimize import SignStep

    zero, down = torch.zeros(2, 1, 1, 1), torch.ones(2, 1, 1, 1)
    rule = SignStep(decay=0.0, start=0.5, end=0.5, cut=0.5)
    rule(zero, down, torch.tensor([1.0, 1.0]), 0, 4, 1.0)
    second = rule(zero, down, torch.tensor([0.8, 1.2]), 1, 4, 1.0)
    assert torch.allclose(second.flatten(), torch.tensor([-0.5, -0.25]))
    third = rule(zero, down, torch.tensor([0.7, 1.1]), 2, 4, 1.0)  # the cut stays
    assert torch.allclose(third.flatten(), torch.tensor([-0.5, -0.25]))


def test_the_start_moves_toward_the_given_pixels_within_the_budget():
    """Where the given pixels (``toward``) are brighter the start is brighter, by at most eps, and the
    mask, greyscale tie and [0, 1] still hold (``start_delta`` projects it)."""
    from artcloak.engine.optimize import Batch, start_delta

    base = torch.full((2, 3, 8, 8), 0.5)
    base[1] = 0.99
    toward = torch.zeros_like(base)
    toward[:, :, :4] = 1.0  # the top half brighter than the image, the bottom darker
    free = torch.ones(2, 1, 8, 8)
    free[:, :, :, :2] = 0
    eye = torch.eye(8).expand(2, 1, 8, 8)
    batch = Batch(base=base, targets=[], free=free, grey=torch.tensor([False, True]), rows=eye,
                  cols=eye, seeds=[0, 1], toward=toward)  # fmt: skip
    eps = 8 / 255
    delta = start_delta(batch, eps)
    assert delta.abs().max() <= eps + 1e-6 and (delta[:, :, :, :2] == 0).all()
    top, bottom = delta[0, :, :4, 2:], delta[0, :, 4:, 2:]
    assert torch.allclose(top, torch.full_like(top, eps))
    assert torch.allclose(bottom, torch.full_like(bottom, -eps))
    assert ((base + delta) <= 1).all() and (delta[1] == delta[1, :1]).all()
    random_only = start_delta(replace(batch, toward=None), eps)
    assert random_only[0].abs().max() <= 0.5 * eps + 1e-6  # the random start alone is smaller


def test_the_engine_starts_each_image_toward_its_own_targets_detail(
    engine, fast_settings, monkeypatch
):
    """The start moves toward the texture's detail: the image plus a difference with no
    colour of its own (its mean about 0), not the texture's pixels."""
    import artcloak.engine.optimize as optimize_module

    seen = []
    real = optimize_module.start_delta
    monkeypatch.setattr(optimize_module, "start_delta",
                        lambda batch, eps: seen.append(batch) or real(batch, eps))  # fmt: skip
    run(engine, fast_settings)
    (batch,) = seen
    detail = batch.toward - batch.base
    assert batch.toward.shape == (1, 3, 64, 64) and float(detail.std()) > 0.01
    assert detail.mean(dim=(2, 3)).abs().max() < 0.01


def test_target_detail_keeps_the_targets_texture_and_drops_its_colours():
    """The detail start's pixels: a target that differs from the original by a flat colour has
    no detail (the original itself); one that differs by a fine checkerboard keeps it whole
    away from the edges, where the box blur averages it out."""
    from artcloak.engine.optimize import target_detail

    sources = torch.full((1, 3, 40, 40), 0.5)
    flat = sources + 0.2
    assert torch.allclose(target_detail(sources, flat), sources, atol=1e-6)
    rows, cols = torch.meshgrid(torch.arange(40), torch.arange(40), indexing="ij")
    checks = ((rows + cols) % 2 * 2 - 1).float() * 0.1
    textured = sources + checks
    detail = target_detail(sources, textured) - sources
    inner = (slice(None), slice(None), slice(9, -9), slice(9, -9))
    assert (detail[inner] - checks[9:-9, 9:-9]).abs().max() < 0.1 / 17 + 1e-6


def test_the_warm_up_shows_each_encoder_half_its_working_size():
    """Before the timed first pass each encoder runs forward and backward once at half its
    working size (a whole number of latent pixels), and the loop's inputs are left as they were."""
    from artcloak.engine.optimize import Batch, Objective
    from artcloak.settings import Budget

    class Recording(torch.nn.Conv2d):
        def __init__(self, downscale: int) -> None:
            super().__init__(3, 4, downscale, stride=downscale)
            self.downscale, self.sizes = downscale, []

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            self.sizes.append(tuple(x.shape[-2:]))
            return super().forward(x)

    base = torch.rand(2, 3, 40, 24)
    eye_rows, eye_cols = torch.eye(40).expand(2, 1, 40, 40), torch.eye(24).expand(2, 1, 24, 24)
    encoders = [Recording(8), Recording(32)]
    targets = [torch.zeros(2, 4, 5, 3), torch.zeros(2, 4, 2, 1)]
    batch = Batch(base=base, targets=targets, free=torch.ones(2, 1, 40, 24),
                  grey=torch.zeros(2, dtype=torch.bool), rows=eye_rows, cols=eye_cols,
                  seeds=[0, 1])  # fmt: skip
    objective = Objective(batch, encoders, None, Budget(lpips=0.1, eps=0.03), Effort(steps=1), None)
    delta = torch.full_like(base, 0.01)
    objective.warm_up(delta)
    assert encoders[0].sizes == [(16, 8)] and encoders[1].sizes == [(32, 32)]
    assert torch.equal(delta, torch.full_like(base, 0.01)) and not delta.requires_grad
    assert all(p.grad is None for encoder in encoders for p in encoder.parameters())
