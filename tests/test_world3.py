"""World 3 of the efficacy bench: real pretrained encoders (TAEF2, TAESana) from ../shared.

The quick bench goes end to end where the weights and paintings are present (this project's
machines and CI); elsewhere it is skipped, saying what is missing. The refusal of missing
assets runs everywhere."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "bench"))

from world3.assets import MissingAssets, locate  # noqa: E402


def _assets_or_skip():
    try:
        return locate()
    except MissingAssets as error:
        pytest.skip(f"world 3's real weights and paintings are absent: {error}")


def test_quick_world3_bench_runs_end_to_end(tmp_path):
    """The whole world-3 path at quick scale on the real TAEF2: goals stated, plain PGD beside
    artcloak, the attack moves the real latent, transfer and survival measured, a montage."""
    assets = _assets_or_skip()
    out = tmp_path / "quick.md"
    shutil.copytree(
        ROOT / "bench", tmp_path / "bench", ignore=shutil.ignore_patterns("cache", "out")
    )
    # A guard against a hang, not a speed goal: on a 2-core AVX2 host sharing its CPUs the quick
    # bench outran 900 s.
    done = subprocess.run(
        [sys.executable, "bench/efficacy.py", "--quick", "--out", str(out),
         "--weights", str(assets.weights), "--paintings", str(assets.paintings)],
        cwd=tmp_path, capture_output=True, text=True, timeout=2400,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    report = out.read_text()
    assert "## Goals (issue 28)" in report and "share of the ceiling: " in report
    for section in (
        "The ceiling per budget",
        "plain PGD",
        "Transfer",
        "Survival",
        "decoder shows",
        "--adaptive",
        "An ensemble",
        "Spot check at 256 px",
        "Mimicry in TAEF2",
    ):
        assert section in report, section
    assert "mimicry: the artist's style in" in report
    figures = json.loads(out.with_suffix(".json").read_text())
    ceiling = next(r for r in figures["ceiling"]["rows"] if r["eps_255"] == 8)
    assert 0.05 < ceiling["closed"] < 1.0  # a real encoder moves
    for row in figures["presets"]["rows"]:
        for method in ("artcloak", "plain_pgd"):
            assert -1.0 <= row[method]["closed"] <= 1.0 and row[method]["passes"] > 0
        assert row["artcloak"]["passes"] == row["plain_pgd"]["passes"]
    transfer = figures["presets"]["transfer"]
    assert set(transfer) == {"TAEF2 (attacked)", "TAESana", "world 2 VAE"}
    assert set(figures["survival"]["closed"]["JPEG q75"]) == {
        "artcloak", "artcloak --robust", "plain_pgd"}  # fmt: skip
    assert (out.parent / "plots" / figures["montage"]["file"]).stat().st_size > 0
    _check_variants(figures)


def _check_variants(figures: dict) -> None:
    """The ensemble moves world 2's latent more than TAEF2 alone does (it is attacked), plain
    PGD beside it at the same passes; the spot check covers both sizes; mimicry judged every
    sample of every set."""
    rows = figures["ensemble"]["rows"]
    alone, both = rows["artcloak, TAEF2 alone"], rows["artcloak, TAEF2 + world 2 VAE"]
    assert both["closed"]["world 2 VAE"] > alone["closed"]["world 2 VAE"]
    # A pass per encoder; images stop on their own, so the mean is rounded to whole PGD steps.
    assert abs(both["passes"] - rows["plain PGD, TAEF2 + world 2 VAE"]["passes"]) <= 1
    assert rows["plain PGD, TAEF2 + world 2 VAE"]["passes"] % 2 == 0
    assert rows["plain PGD, TAEF2 alone"]["passes"] == alone["passes"] < both["passes"]
    assert set(figures["spot check"]["sizes"]) == {"128", "256"}
    assert figures["adaptive"]["adaptive"]["psnr_db"] > 0
    mimicry = figures["mimicry"]
    assert set(mimicry["sets"]) == {"clean", "artcloak", "plain PGD"}
    for shares in mimicry["sets"].values():
        assert abs(sum(shares["histogram"].values()) - 1) < 1e-4
    assert mimicry["closed"]["clean"] == 0 and mimicry["closed"]["artcloak"] > 0.05


def test_world3_stages_are_one_registry_run_by_name_in_order():
    from world3.run import STAGE_NAMES, STAGES, stages_named

    assert STAGE_NAMES == ("ceiling", "presets", "survival", "adaptive", "ensemble",
                           "spot check", "mimicry", "montage")  # fmt: skip
    assert stages_named(()) == STAGES
    assert [s.name for s in stages_named(("survival", "ceiling"))] == ["survival", "ceiling"]
    with pytest.raises(KeyError, match="shade"):
        stages_named(("ceiling", "shade"))
    assert all(stage.measures and callable(stage.run) for stage in STAGES)


def test_the_committed_world3_report_is_what_its_figures_write(tmp_path):
    """Every section of the committed report comes from its JSON (the marked section from the
    mimicry-objectives.json beside it), through the table rows' dataclasses."""
    from world3.report import write_report

    reports = ROOT / "bench/reports"
    shutil.copy(reports / "mimicry-objectives.json", tmp_path)
    written = tmp_path / "efficacy.md"
    write_report(json.loads((reports / "efficacy.json").read_text()), written)
    assert written.read_text() == (reports / "efficacy.md").read_text()


def test_the_flat_box_is_interpolated_at_the_adaptive_psnr():
    from world3.variants import at_psnr

    flat = [(37.0, 0.2), (32.0, 0.3), (27.0, 0.4)]
    assert at_psnr(flat, 34.5) == pytest.approx(0.25)
    assert at_psnr(flat, 32.0) == pytest.approx(0.3)
    assert at_psnr(flat, 38.0) is None and at_psnr(flat[:1], 37.0) is None


def test_missing_weights_are_named_in_one_line(tmp_path):
    done = subprocess.run(
        [sys.executable, str(ROOT / "bench/efficacy.py"), "--quick", "--out",
         str(tmp_path / "q.md"), "--weights", str(tmp_path / "nowhere")],
        cwd=tmp_path, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert done.returncode != 0 and "Traceback" not in done.stderr
    assert "world 3 needs" in done.stderr and "taef2/encoder.safetensors" in done.stderr
    assert "madebyollin/taesd" in done.stderr


def test_an_altered_painting_is_refused(tmp_path):
    assets = _assets_or_skip()
    paintings = tmp_path / "paintings"
    shutil.copytree(assets.paintings, paintings)
    (paintings / "mondrian.jpg").write_bytes(b"not the painting")
    with pytest.raises(MissingAssets, match="mondrian.jpg does not match its SHA-256"):
        locate(assets.weights, paintings)


def test_pgd_one_image_at_a_time_matches_the_batched_attack():
    """World 3 attacks image by image (faster on a CPU); each image's steps must be those of
    world 2's batched sign-PGD on the same objective, with one probe or an ensemble of two."""
    import torch
    from world.pgd import sign_pgd
    from world3.pgd import per_image_pgd
    from world3.world import Probe

    generator = torch.Generator().manual_seed(0)
    convs = [torch.nn.Conv2d(3, 4, 4, stride=4) for _ in range(2)]
    for conv in convs:
        conv.requires_grad_(False)
    sources = torch.rand(3, 3, 16, 16, generator=generator)
    targets = torch.rand(3, 3, 16, 16, generator=generator)
    probes = tuple(Probe(conv, sources, targets) for conv in convs)

    def batched_loss(x: torch.Tensor) -> torch.Tensor:
        return sum(p.latent_distance(x) / p.start for p in probes) / len(probes)

    for chosen, loss in ((probes[:1], probes[0].latent_distance), (probes, batched_loss)):
        alone = per_image_pgd(chosen, sources, 8 / 255, 5)
        batched = sign_pgd(loss, sources, 8 / 255, 5, start=0.5)
        assert (alone - batched).abs().max() <= 1 / 255 + 1e-6
        assert (alone == batched).float().mean() > 0.99
        assert (
            alone - sources
        ).abs().max() <= 8.5 / 255 + 1e-6  # and the 8-bit rounding of float sources
        assert (probes[0].closed(alone) > 0).all()


def test_pass_cost_bench_prints_a_row_per_size_and_layout():
    """Eager passes per layout and batch, then torch.compile's paired with eager."""
    assets = _assets_or_skip()
    done = subprocess.run(
        [sys.executable, str(ROOT / "bench" / "pass_cost.py"), "--sizes", "64", "--batch", "2",
         "--repeats", "1", "--encoder", str(assets.weight("taef2/encoder.safetensors"))],
        capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    rows = [line for line in done.stdout.splitlines() if line.startswith("| 64 |")]
    assert [row.split("|")[2].strip() for row in rows[:2]] == ["channels-last", "default"]
    assert all(float(cell.split()[0]) > 0 for row in rows[:2] for cell in row.split("|")[3:5])
    (compiled,) = rows[2:]  # torch.compile against eager: figures, or why it failed
    if "torch.compile failed" not in compiled:
        cells = [cell.strip() for cell in compiled.split("|")[2:6]]
        assert all(float(cell.split()[0]) > 0 for cell in cells)
        for compiling in cells[:2]:  # "12.4 s (1457)": the passes that win the compiling back
            payoff = compiling.split("(", 1)[1].rstrip(")")
            assert payoff == "never: not faster" or int(payoff) > 0


def _tiny_step_rules(report: Path, assets, passes: int) -> Path:
    """A step_rules.py run at 64 px with two paintings and 4-pass ceilings: its report."""
    done = subprocess.run(
        [sys.executable, str(ROOT / "bench" / "step_rules.py"), "--passes", str(passes),
         "--ceiling-passes", "4", "--paintings-count", "2", "--size", "64", "--report",
         str(report), "--weights", str(assets.weights), "--paintings", str(assets.paintings)],
        capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    return report


@pytest.fixture(scope="module")
def two_pass_ceilings(tmp_path_factory) -> Path:
    """The JSON of a tiny step_rules.py run at 2 passes, shared by the tests that read its
    ceilings."""
    folder = tmp_path_factory.mktemp("two-pass")
    return _tiny_step_rules(folder / "passes.md", _assets_or_skip(), passes=2).with_suffix(".json")


def test_step_rules_bench_reports_each_images_share_of_its_ceiling(tmp_path):
    """The passes bench on the real TAEF2 at a tiny scale: a row per loop and budget, each
    image's closure a share of its own ceiling (the best of the long runs), no row spending
    more passes than asked for."""
    report = _tiny_step_rules(tmp_path / "passes.md", _assets_or_skip(), passes=3)
    figures = json.loads(report.with_suffix(".json").read_text())
    rows = figures["rows"]
    assert [row["passes"] for row in rows] == [3, 3, 3] and len({r["variant"] for r in rows}) == 3
    assert all(row["passes_spent"] <= 3 for row in rows)
    shares = [s for row in rows for per_set in row["shares"].values() for s in per_set]
    assert len(shares) == 3 * (6 + 2 + 2) and all(0 < share < 2 for share in shares)
    assert all(c > 0 for per_set in figures["ceiling"].values() for c in per_set)
    assert "| artcloak (start toward the target's detail) | 3 |" in report.read_text()


def test_step_rules_ceiling_can_build_on_an_earlier_runs(tmp_path, two_pass_ceilings):
    """``--prior-ceilings`` takes an earlier run's ceilings as runs already made: each image's
    ceiling is at least the earlier one, only the starts named are run, the report says so; an
    earlier run on other artworks is refused in one line."""
    assets = _assets_or_skip()
    earlier = two_pass_ceilings
    report = tmp_path / "passes.md"
    command = [sys.executable, str(ROOT / "bench" / "step_rules.py"), "--passes", "2",
               "--ceiling-passes", "4", "--size", "64", "--ceiling-starts", "detail",
               "--prior-ceilings", str(earlier), "--report", str(report), "--weights",
               str(assets.weights), "--paintings", str(assets.paintings)]  # fmt: skip
    done = subprocess.run(
        [*command, "--paintings-count", "2"], capture_output=True, text=True, timeout=600
    )
    assert done.returncode == 0, done.stderr[-3000:]
    figures = json.loads(report.with_suffix(".json").read_text())
    before = json.loads(earlier.read_text())
    assert figures["ceiling_starts"] == ["detail"] and before["ceiling_starts"] == [
        "random", "pixels", "detail"
    ]  # fmt: skip
    for name, ceilings in figures["ceiling"].items():
        assert all(now >= then for now, then in zip(ceilings, before["ceiling"][name], strict=True))
    assert (
        f"a run of 4 passes (toward its detail; no stop on a plateau) and the ceilings of an earlier run, `{earlier}`"
        in report.read_text()
    )
    other = subprocess.run(
        [*command, "--paintings-count", "3"], capture_output=True, text=True, timeout=600
    )
    assert other.returncode == 1 and other.stderr.count("\n") == 1
    assert "not 3: give the --size and --paintings-count" in other.stderr


def test_a_reports_command_reads_back_as_the_words_given():
    """The command a bench writes in its report splits back into its arguments in a shell, a
    name with an apostrophe in double quotes."""
    import shlex

    from typed import bench_command, quoted, typed

    words = ["--only", "start toward the target's pixels (artcloak's before)", "it's $HOME",
             "plain", "two words", ""]  # fmt: skip
    assert shlex.split(typed(words)) == words
    assert quoted(words[1]) == "\"start toward the target's pixels (artcloak's before)\""
    assert quoted("plain") == "plain"
    assert bench_command("x.py", []) == "`.venv/bin/python bench/x.py`"
    assert bench_command("x.py", words) == f"`.venv/bin/python bench/x.py {typed(words)}`"


def test_step_rules_held_out_artworks_are_others_than_the_rule_was_chosen_on():
    """``--held-out`` measures the step rule on artworks it was not chosen on: none of its
    sources is among the default sets' sources, and every set keeps its kind of target."""
    from step_rules import case_sets

    assets = _assets_or_skip()
    chosen_on = case_sets(assets, 32, 4)
    held_out = case_sets(assets, 32, 4, held_out=True)
    assert [s.name for s in held_out] == [s.name for s in chosen_on]
    seen = {name for s in chosen_on for name in s.names}
    assert seen.isdisjoint(name for s in held_out for name in s.names)
    assert [len(s.sources) for s in held_out] == [6, 5, 5]


def test_step_rules_bench_measures_world_2s_vae_too(tmp_path):
    """``--encoder world2`` runs the same bench on world 2's committed from-scratch VAE and
    says so in its report."""
    assets = _assets_or_skip()
    report = tmp_path / "passes-world2.md"
    done = subprocess.run(
        [sys.executable, str(ROOT / "bench" / "step_rules.py"), "--encoder", "world2", "--passes",
         "2", "--ceiling-passes", "3", "--paintings-count", "2", "--size", "32", "--report",
         str(report), "--weights", str(assets.weights), "--paintings", str(assets.paintings)],
        capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    text = report.read_text()
    assert text.startswith("# Passes to the ceiling: world 2's VAE")
    assert "world 2's VAE at 32 px" in text and "no stop on a plateau" in text
    rows = json.loads(report.with_suffix(".json").read_text())["rows"]
    assert [row["passes"] for row in rows] == [2, 2, 2]


def test_step_rule_trials_run_every_rule_against_the_measured_ceilings(tmp_path, two_pass_ceilings):
    """Each rule tried runs the loop on the real TAEF2 and is reported against the ceilings of
    a step_rules.py run, artcloak's own rule first; ceilings for other artworks are refused."""
    from step_rule_trials import BASELINE, TRIALS

    assets = _assets_or_skip()
    ceilings = two_pass_ceilings
    report = tmp_path / "trials.md"
    command = [sys.executable, str(ROOT / "bench" / "step_rule_trials.py"), "--passes", "3",
               "--ceilings", str(ceilings), "--report", str(report), "--weights",
               str(assets.weights), "--paintings", str(assets.paintings), "--size", "64"]  # fmt: skip
    done = subprocess.run(
        [*command, "--paintings-count", "2"], capture_output=True, text=True, timeout=600
    )
    assert done.returncode == 0, done.stderr[-3000:]
    rows = [line.split(" | ") for line in report.read_text().splitlines() if line.startswith("| ")]
    assert [row[0].removeprefix("| ") for row in rows[1:]] == [trial.name for trial in TRIALS]
    assert rows[1][0] == f"| {BASELINE}"
    assert all(0 < float(cell.rstrip("%|")) < 200 for row in rows[1:] for cell in row[1:4])
    other = subprocess.run(
        [*command, "--paintings-count", "3"], capture_output=True, text=True, timeout=600
    )
    assert other.returncode == 1 and "not 3: give the --size and --paintings-count" in other.stderr


def test_step_rule_trials_baseline_is_the_engines_own_rule():
    """The trials' baseline is the loop's default rule, and each rule tried runs (with no real
    weights: on random gradients), moving no pixel by more than the box's width per step."""
    import torch
    from artcloak.engine.optimize import SignStep
    from step_rule_trials import BASELINE, TRIALS

    assert {t.name: t.make_rule for t in TRIALS}[BASELINE] is SignStep
    generator = torch.Generator().manual_seed(3)
    grads = [torch.randn(2, 3, 8, 8, generator=generator) for _ in range(10)]

    def residual():  # a latent residual, another each step
        return torch.randn(2, 4, 2, 2, generator=generator)

    for trial in TRIALS:
        rule, delta = trial.rule(residual), torch.zeros(2, 3, 8, 8)
        for step, grad in enumerate(grads):
            loss = torch.tensor([1.0, 1.0]) / (step + 1)
            stepped = rule(delta, grad, loss, step, len(grads), 0.1)
            assert stepped.shape == delta.shape and torch.isfinite(stepped).all(), trial.name
            assert (stepped - delta).abs().max() <= 2 * 0.1 + 1e-6, trial.name
            delta = stepped.clamp(-0.1, 0.1)


def test_secant_model_finds_the_lowest_multiple_of_a_step_on_a_linear_residual():
    """Where the residual is linear along a step, the secant model's best multiple is the
    exact minimiser of its norm."""
    import torch
    from residual_rules import best_multiple

    before = torch.tensor([[2.0, 1.0], [1.0, 0.0]]).view(2, 2, 1, 1)
    after = torch.tensor([[-2.0, 1.0], [0.0, 0.0]]).view(2, 2, 1, 1)
    assert best_multiple(before, after).tolist() == pytest.approx([0.5, 1.0])


def _interior_problem(rule_for):
    """Two images whose target latents are a small encoder's at a perturbation inside the
    box, optimised by the engine's loop through the latent tap with the rule ``rule_for``
    makes of the batch's residual: each image's latent distance after 10 steps as a share of
    the original's, and the tap."""
    import torch
    from artcloak.engine.optimize import Batch, optimise
    from artcloak.settings import Budget, Effort, Precision
    from residual_rules import LatentTap, Residual

    generator = torch.Generator().manual_seed(5)
    encoder = torch.nn.Sequential(
        torch.nn.Conv2d(3, 8, 4, stride=4), torch.nn.Tanh(), torch.nn.Conv2d(8, 4, 2, stride=2)
    )
    for parameter in encoder.parameters():
        parameter.data = torch.randn(parameter.shape, generator=generator) / 3
    encoder.requires_grad_(False)
    eps = 8 / 255
    sources = torch.rand(2, 3, 32, 32, generator=generator) * 0.8 + 0.1
    hidden = (torch.rand(2, 3, 32, 32, generator=generator) * 2 - 1) * 0.6 * eps
    tap = LatentTap(encoder)
    goal = tap(sources + hidden)
    batch = Batch(
        base=sources, targets=[goal], free=torch.ones_like(sources[:, :1]),
        grey=torch.zeros(2, dtype=torch.bool), rows=torch.eye(32).expand(2, 1, -1, -1),
        cols=torch.eye(32).expand(2, 1, -1, -1), seeds=[0, 1],
    )  # fmt: skip
    rule = rule_for(Residual(tap, goal), batch)
    effort = Effort(steps=10, patience=None)
    budget = Budget(lpips=1.0, eps=eps)
    outcome = optimise(batch, [tap], None, budget, effort, Precision.FP32, rule)  # as the benches
    before = (encoder(sources) - goal).flatten(1).norm(dim=1)
    after = (encoder(batch.view(outcome.delta)) - goal).flatten(1).norm(dim=1)
    return after / before, encoder, goal


def test_residual_rules_read_the_residual_at_their_steps_point():
    """What the latent tap gives a rule is the residual of the pass its gradient came from:
    the encoder's latent at the rule's ``delta`` minus the target latents."""
    import torch
    from artcloak.engine.optimize import SignStep

    seen = []

    class Spy(SignStep):
        def __call__(self, delta, grad, loss, step, total, eps):
            seen.append((delta.clone(), self.residual(), self.batch.view(delta)))
            return super().__call__(delta, grad, loss, step, total, eps)

    def spy(residual, batch):
        rule = Spy()
        rule.residual, rule.batch = residual, batch
        return rule

    _, encoder, goal = _interior_problem(spy)
    assert len(seen) == 10
    for _, residual, view in seen:
        assert torch.allclose(residual, encoder(view) - goal, atol=1e-6)


def test_residual_rules_close_most_of_an_interior_targets_distance():
    """On a target inside the box, each rule that reads the residual closes more than half of
    the distance in 10 steps (artcloak's rule: about three quarters)."""
    from step_rule_trials import TRIALS, ResidualTrial

    residual_trials = [trial for trial in TRIALS if isinstance(trial, ResidualTrial)]
    assert len(residual_trials) == 5
    for trial in residual_trials:
        shares, _, _ = _interior_problem(lambda residual, batch, t=trial: t.rule(residual))
        assert (shares < 0.5).all(), (trial.name, shares.tolist())


def test_along_steps_measures_the_loss_along_the_loops_own_steps(tmp_path):
    """The along-steps bench on the real TAEF2 at a tiny scale: a row per step and multiple;
    at a multiple of 1 the secant model and the measure agree (both are the step's end), and
    part of the first step already lowers the loss."""
    assets = _assets_or_skip()
    report = tmp_path / "along.md"
    done = subprocess.run(
        [sys.executable, str(ROOT / "bench" / "along_steps.py"), "--passes", "4", "--steps", "1",
         "4", "--size", "64", "--paintings-count", "2", "--report", str(report), "--weights",
         str(assets.weights), "--paintings", str(assets.paintings)],
        capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    lines = report.read_text().splitlines()
    rows = [line.strip("| ").split(" | ") for line in lines if line[2:3].isdigit()]
    cells = {(row[0], row[1]): (float(row[2]), float(row[3])) for row in rows}
    assert len(cells) == 10
    for step in ("1", "4"):
        predicted, measured = cells[(step, "1")]
        assert predicted == measured < 1
    assert cells[("1", "0.5")][1] < 1
    refused = subprocess.run(
        [sys.executable, str(ROOT / "bench" / "along_steps.py"), "--passes", "4", "--steps", "5"],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert refused.returncode == 1 and "--steps must lie in 1..4" in refused.stderr
