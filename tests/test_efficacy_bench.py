"""The efficacy bench's world 2: committed checkpoints are checked, training runs, and the
quick bench goes end to end on the committed VAE (bench/efficacy.py --quick)."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "bench"))

from world import checkpoints, world2  # noqa: E402
from world.gallery import STYLES, render  # noqa: E402


@pytest.fixture
def checkpoint_folder(tmp_path, monkeypatch) -> Path:
    monkeypatch.setattr(checkpoints, "CHECKPOINTS", tmp_path)
    monkeypatch.setattr(checkpoints, "MANIFEST", tmp_path / "manifest.json")
    return tmp_path


TINY = world2.Vae2Recipe(name="tiny", compositions=2, steps=3, batch=2, perceptual_steps=2,
                         snapshots=(2,))  # fmt: skip


def test_gallery_renders_every_style_at_128_deterministically():
    for style in STYLES:
        first, again = render(7, style), render(7, style)
        assert first.shape == (128, 128, 3) and first.dtype.name == "float32"
        assert first.min() >= 0.0 and first.max() <= 1.0
        assert (first == again).all()
    assert (render(7, "cel") != render(8, "cel")).any()


def test_training_writes_snapshots_and_a_loadable_checkpoint(checkpoint_folder):
    saved = []
    vae, meta = world2.train_vae2(TINY, on_snapshot=lambda step, v: saved.append(step))
    assert saved == [2] and meta["history"][-1]["step"] == 3
    checkpoints.save_vae("tiny", vae, TINY, {"command": "test", "seconds": 0})
    loaded, entry = checkpoints.load_vae("tiny", TINY)
    assert entry["recipe_key"] == TINY.key()
    x = torch.rand(1, 3, 64, 64)
    with torch.no_grad():
        assert torch.allclose(loaded.latent_mean(x), vae.latent_mean(x), atol=2e-2)


def test_an_altered_checkpoint_is_refused_with_the_retrain_command(checkpoint_folder):
    vae = world2.WorldVae(TINY.shape)
    path = checkpoints.save_vae("tiny", vae, TINY, {"command": "test"})
    path.write_bytes(path.read_bytes()[:-8] + b"12345678")
    with pytest.raises(checkpoints.CheckpointError, match="SHA-256.*train.py"):
        checkpoints.load_vae("tiny")


def test_a_checkpoint_from_another_recipe_is_refused(checkpoint_folder):
    checkpoints.save_vae("tiny", world2.WorldVae(TINY.shape), TINY, {"command": "test"})
    other = world2.Vae2Recipe(name="tiny", compositions=3, steps=3, shape=TINY.shape)
    with pytest.raises(checkpoints.CheckpointError, match="another recipe"):
        checkpoints.load_vae("tiny", other)


def test_the_committed_vae_matches_the_code_recipe_and_records_its_training():
    recipe = world2.VARIANTS["vae2"]
    _, entry = checkpoints.load_vae(recipe.name, recipe)  # raises if altered or stale
    assert entry["command"].startswith("python bench/world/train.py")
    assert entry["history"][-1]["step"] == recipe.steps and entry["seconds"] > 0


def test_quick_bench_runs_end_to_end(tmp_path):
    """The whole bench path at quick scale, on the committed VAE: a report with the
    ceiling's share line, plain PGD beside artcloak, and the goals stated."""
    out = tmp_path / "quick.md"
    bench = tmp_path / "bench"
    shutil.copytree(ROOT / "bench", bench, ignore=shutil.ignore_patterns("cache", "out"))
    # Guards against a hang, not speed goals: on a 2-core AVX2 host sharing its CPUs the quick
    # bench outran 600 s.
    done = subprocess.run(
        [sys.executable, "bench/efficacy.py", "--world", "2", "--quick", "--out", str(out)],
        cwd=tmp_path, capture_output=True, text=True, timeout=2400,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    report = out.read_text()
    assert "share of the ceiling: " in report
    assert "plain PGD" in report and "## Goals (issue 17)" in report
    for section in (
        "ceiling per budget",
        "Objectives",
        "Fragility",
        "Survival",
        "Mimicry",
        "Shade",
    ):
        assert section in report, section
    figures = json.loads(out.with_suffix(".json").read_text())
    default = next(r for r in figures["ceiling"]["rows"] if r["eps_255"] == 8)
    for method in ("artcloak", "plain_pgd", "latent_attack", "judge_attack"):
        closed = default[method]["latent_distance_closed"]
        assert -1.0 <= closed <= 1.0 and 0.0 <= default[method]["success"] <= 1.0
    assert default["latent_attack"]["latent_distance_closed"] > 0  # the attack moves the latent

    rerun = subprocess.run(
        [sys.executable, "bench/efficacy.py", "--world", "2", "--quick", "--out", str(out),
         "--only", "adaptive", "--update"], cwd=tmp_path, capture_output=True, text=True, timeout=2400,
    )  # fmt: skip
    assert rerun.returncode == 0, rerun.stderr[-3000:]
    updated = json.loads(out.with_suffix(".json").read_text())
    assert updated["ceiling"] == figures["ceiling"]  # the other stages keep their figures
    assert [run["stages"] for run in updated["reruns"]] == [["adaptive"]]
    report = out.read_text()
    assert "Stages rerun later" in report and "--only adaptive --update" in report
    assert "Survival" in report and "share of the ceiling: " in report


def test_update_without_an_earlier_run_is_refused(tmp_path):
    done = subprocess.run(
        [sys.executable, str(ROOT / "bench/efficacy.py"), "--world", "2", "--quick", "--out",
         str(tmp_path / "none.md"), "--only", "adaptive", "--update"],
        cwd=tmp_path, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert done.returncode != 0
    assert "needs an earlier run" in done.stderr and "Traceback" not in done.stderr


def test_generators_start_from_their_seed_whatever_ran_before():
    from world.generator import GUIDANCE, sample, seeded_flow

    first = seeded_flow(labels=3, width=8, seed=5)
    torch.rand(100)  # another stage drawing from the global generator
    again = seeded_flow(labels=3, width=8, seed=5)
    other = seeded_flow(labels=3, width=8, seed=6)
    for name, weight in first.state_dict().items():
        assert torch.equal(weight, again.state_dict()[name])
    assert not torch.equal(first.inp.weight, other.inp.weight)
    guided = sample(first, 0, 2, seed=1, shape=(4, 4, 4), steps=3)
    unguided = sample(first, 0, 2, seed=1, shape=(4, 4, 4), steps=3, guidance=1)
    assert GUIDANCE != 1 and not torch.allclose(guided, unguided)


def test_mimicry_figures_pool_every_generator_and_list_each():
    from world.experiments import mimicry_shares
    from world.report import mimicry_section

    artist, target = 0, 2
    first = torch.tensor([artist, artist, artist, target])  # 75% the artist's style
    second = torch.tensor([artist, target, target, 1])  # 25%
    shares = mimicry_shares([first, second], artist, target)
    assert shares["artist_style_share"] == pytest.approx(0.5)
    assert shares["target_style_share"] == pytest.approx(3 / 8)
    assert shares["artist_style_share_per_generator"] == [0.75, 0.25]
    assert sum(shares["histogram"].values()) == pytest.approx(1)
    figures = {"artist_style": STYLES[artist], "target_style": STYLES[target],
               "fine_tune_images": 4, "generators": 2, "clean": shares, "cloaked": shares}  # fmt: skip
    section = mimicry_section(figures)
    assert "all 2 generators' samples pooled" in section
    assert "| cloaked | 50% | 75%, 25% | 38% |" in section


def test_world2_stages_are_one_registry_that_runs_and_reports_them_by_name():
    from world.stages import STAGE_NAMES, STAGES, stages_named

    assert len(set(STAGE_NAMES)) == len(STAGES) and STAGE_NAMES[0] == "presets"
    assert [s.name for s in stages_named(["survival", "presets"])] == ["survival", "presets"]
    assert stages_named(None) == STAGES
    with pytest.raises(KeyError, match="spot check"):
        stages_named(["survival", "spot check"])
    assert all(stage.measures and callable(stage.run) for stage in STAGES)


def test_the_committed_world2_report_is_what_its_figures_write(tmp_path):
    """Every section of the committed report comes from its JSON through the stage registry."""
    from world.report import write_report
    from world.stages import STAGES

    committed = ROOT / "bench/reports/efficacy-world2.md"
    figures = json.loads(committed.with_suffix(".json").read_text())
    written = tmp_path / "efficacy-world2.md"
    write_report(figures, written, figures["command"], figures["seconds"], STAGES)
    assert written.read_text() == committed.read_text()


def test_sign_pgd_takes_the_first_steps_of_a_longer_schedule():
    """speed.py times the reference loop's first steps of its 500-step schedule with the
    benches' one sign-PGD: the step size decays over ``schedule_steps``, not ``steps``."""
    from world.pgd import sign_pgd

    images = torch.full((1, 3, 4, 4), 0.5)
    weights = torch.randn(1, 3, 4, 4, generator=torch.Generator().manual_seed(3))
    eps, start = 64 / 255, 0.1

    def moved(schedule: int) -> torch.Tensor:
        found = sign_pgd(lambda x: (x * weights).flatten(1).sum(1), images, eps, 3, start=start,
                         schedule_steps=schedule)  # fmt: skip
        return (images - found) * weights.sign()  # how far each pixel went downhill

    def expected(schedule: int) -> float:
        return sum(eps * (start + (0.01 - start) * k / (schedule - 1)) for k in range(3))

    for schedule in (3, 500):
        assert torch.allclose(moved(schedule), torch.tensor(expected(schedule)), atol=1 / 255)
    assert expected(500) - expected(3) > 4 / 255  # the two schedules are told apart
