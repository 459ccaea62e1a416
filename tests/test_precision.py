"""The encoder passes' arithmetic: what ``auto`` picks per device, and bf16 passes protecting."""

from __future__ import annotations

from dataclasses import replace

import pytest
import torch
from artcloak.engine import optimize
from artcloak.engine.optimize import autocast_dtype
from artcloak.engine.protect import Engine, ImageJob, ImageResult
from artcloak.settings import Precision
from conftest import painting

CPU = torch.device("cpu")


@pytest.mark.parametrize(("tiles", "expected"), [(True, torch.bfloat16), (False, None)])
def test_auto_on_a_cpu_is_bf16_only_with_bf16_tiles(monkeypatch, tiles, expected):
    monkeypatch.setattr(optimize, "cpu_has_bf16_tiles", lambda: tiles)
    assert autocast_dtype(Precision.AUTO, CPU) is expected


@pytest.mark.parametrize("tiles", [True, False])
def test_an_explicit_precision_is_kept_on_any_cpu(monkeypatch, tiles):
    monkeypatch.setattr(optimize, "cpu_has_bf16_tiles", lambda: tiles)
    assert autocast_dtype(Precision.FP32, CPU) is None
    assert autocast_dtype(Precision.BF16, CPU) is torch.bfloat16


def test_the_report_names_autos_choice(monkeypatch, tiny_model_settings):
    engine = Engine(tiny_model_settings)
    monkeypatch.setattr(optimize, "cpu_has_bf16_tiles", lambda: True)
    assert engine.describe()["precision"] == "bf16"
    monkeypatch.setattr(optimize, "cpu_has_bf16_tiles", lambda: False)
    assert engine.describe()["precision"] == "fp32"


def test_bf16_passes_keep_the_budget_and_close_distance(tiny_model_settings, fast_settings):
    models = replace(tiny_model_settings, precision=Precision.BF16)
    settings = replace(fast_settings, steps=10, eps_255=16)
    (result,) = Engine(models).protect([ImageJob(name="art", colour=painting())], settings)
    assert isinstance(result, ImageResult), getattr(result, "message", "")
    assert result.measured.within_budget
    assert all(shift.distance_closed > 0 for shift in result.latent)
