"""artcloak batch in-process: planning, resume, batched = alone, the command's errors.

The Ray runs are in test_batch_ray.py; both use ``make_archive`` and ``outcomes_of``.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest
from artcloak.batch import make_plan, run_batch
from artcloak.batch.plan import SUMMARY_NAME, chunks, find_inputs
from artcloak.cli import main
from artcloak.engine.images import load_image
from artcloak.engine.protect import Engine, ImageJob, ImageResult
from artcloak.settings import ModelSettings, ProtectionSettings
from conftest import painting
from PIL import Image

SIZES = [(48, 40), (40, 48), (48, 48), (56, 40)]  # four working sizes at resolution 64
BAD = {
    "broken.png": b"\x89PNG\r\n\x1a\n not really",
    "empty.jpg": b"",
    "notes/readme.png": b"just text",
}


def make_archive(folder: Path, good: int = 17) -> tuple[list[str], list[str]]:
    """A folder tree of ``good`` small images (nested, mixed sizes, a JPEG) and bad files;
    returns the relative paths of the good and the bad inputs."""
    names = []
    for index in range(good):
        width, height = SIZES[index % len(SIZES)]
        sub = ("", "a", "a/b")[index % 3]
        suffix = ".jpg" if index == 5 else ".png"
        path = folder / sub / f"art{index:02d}{suffix}"
        path.parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(painting(width, height, seed=index)).save(path)
        names.append(path.relative_to(folder).as_posix())
    tiny = folder / "tiny.png"
    Image.fromarray(painting(20, 20)).save(tiny)
    for name, data in BAD.items():
        (folder / name).parent.mkdir(parents=True, exist_ok=True)
        (folder / name).write_bytes(data)
    return sorted(names), sorted([*BAD, "tiny.png"])


def outcomes_of(summary) -> dict[str, tuple[bool, str]]:
    return {o.relative: (o.ok, o.message) for o in summary.outcomes}


def files_under(folder: Path) -> list[str]:
    return sorted(p.relative_to(folder).as_posix() for p in folder.rglob("*") if p.is_file())


def expected_files(good: list[str]) -> list[str]:
    outputs = [str(Path(name).with_suffix(".png").as_posix()) for name in good]
    return sorted([*outputs, *(f"{o}.json" for o in outputs), SUMMARY_NAME])


def check_written(src: Path, dest: Path, good: list[str], settings: ProtectionSettings) -> None:
    """Exactly one output and report per good input, nothing else, each within budget."""
    assert files_under(dest) == expected_files(good)
    eps = settings.budget().eps * 255
    for name in good:
        output = dest / Path(name).with_suffix(".png")
        report = json.loads(Path(f"{output}.json").read_text())
        assert report["measured"]["within_budget"] is True
        assert report["batch"]["relative"] == name
        original = load_image(src / name).colour_samples().astype(int)
        written = load_image(output).colour_samples().astype(int)
        assert np.abs(written - original).max() <= eps


@pytest.fixture
def settings() -> ProtectionSettings:
    return ProtectionSettings(steps=2, resolution=64, lpips=0.5)


def test_plan_folder_glob_and_list(tmp_path):
    src = tmp_path / "src"
    good, bad = make_archive(src, good=6)
    root, sources = find_inputs(src)
    assert root == src and len(sources) == len(good) + len(bad)
    root, sources = find_inputs(Path(f"{src}/**/*.png"))
    assert root == src and len(sources) == 5 + 3  # good PNGs, tiny, broken, readme
    listing = tmp_path / "list.txt"
    listing.write_text("# two inputs\nsrc/a/art01.png\n\nsrc/a/b/art02.png\n")
    root, sources = find_inputs(listing)
    assert root == src / "a" and [p.name for p in sources] == ["art01.png", "art02.png"]


def test_plan_mirrors_buckets_and_refuses_dest_inside_src(tmp_path, tiny_model_settings):
    src = tmp_path / "src"
    make_archive(src, good=8)
    Image.fromarray(painting(48, 40)).save(src / "art00.bmp")  # same stem as art00.png
    plan = make_plan(src, tmp_path / "out", ProtectionSettings(), tiny_model_settings)
    outputs = {item.relative: item.output for item in plan.todo}
    assert outputs["a/art01.png"] == tmp_path / "out/a/art01.png"
    assert outputs["a/b/art05.jpg"] == tmp_path / "out/a/b/art05.png"  # lossy input -> PNG
    assert {outputs["art00.png"].name, outputs["art00.bmp"].name} == {"art00.png", "art00.bmp"}
    groups = chunks(plan.todo, 2, 64)
    assert all(len(chunk) <= 2 for chunk in groups)
    for chunk in groups:  # every chunk shares one working size (from the headers)
        arts = [item.source for item in chunk if item.source.name.startswith("art")]
        assert len({Image.open(path).size for path in arts}) <= 1
    with pytest.raises(Exception, match="inside SRC"):
        make_plan(src, src / "protected", ProtectionSettings(), tiny_model_settings)


def test_batched_image_is_as_protected_as_alone(engine, tiny_model_settings):
    """ImageResult three at a time or one at a time: latent shift toward the target within a few
    percent, budget held, for every image."""
    settings = ProtectionSettings(steps=3, resolution=64, lpips=0.5, eps_255=8)
    jobs = [ImageJob(f"art{i}", painting(64, 48, seed=i)) for i in range(3)]
    assert engine.batch_size == 1  # on the CPU
    batched = Engine(tiny_model_settings, batch_size=3, encoders=engine.encoders)
    together = batched.protect(jobs, settings)
    alone = engine.protect(jobs, settings)
    for batched, single in zip(together, alone, strict=True):
        assert isinstance(batched, ImageResult) and isinstance(single, ImageResult)
        closed_b = batched.latent[0].distance_closed
        closed_s = single.latent[0].distance_closed
        assert closed_b > 0 and abs(closed_b - closed_s) <= 0.03 * abs(closed_s) + 1e-4
        assert batched.measured.within_budget


def test_in_process_run_resume_and_settings_change(tmp_path, tiny_model_settings, settings):
    src, dest = tmp_path / "src", tmp_path / "dest"
    good, bad = make_archive(src, good=8)
    before = {p: p.read_bytes() for p in src.rglob("*") if p.is_file()}
    summary = run_batch(src, dest, settings, tiny_model_settings, batch_size=2)
    outcomes = outcomes_of(summary)
    assert sorted(k for k, (ok, _) in outcomes.items() if ok) == good
    assert sorted(k for k, (ok, _) in outcomes.items() if not ok) == bad
    assert all(message for ok, message in outcomes.values() if not ok)
    assert (summary.done, summary.skipped, len(summary.failures)) == (len(good), 0, len(bad))
    check_written(src, dest, good, settings)
    recorded = json.loads((dest / SUMMARY_NAME).read_text())
    assert recorded["done"] == len(good) and len(recorded["failures"]) == len(bad)
    assert {p: p.read_bytes() for p in src.rglob("*") if p.is_file()} == before  # untouched

    again = run_batch(src, dest, settings, tiny_model_settings, batch_size=2)
    assert (again.done, again.skipped) == (0, len(good))
    assert sorted(outcomes_of(again)) == bad  # failures are tried again

    touched = src / good[0]
    os.utime(touched, ns=(touched.stat().st_atime_ns, touched.stat().st_mtime_ns + 10**9))
    once = run_batch(src, dest, settings, tiny_model_settings, batch_size=2)
    assert [o.relative for o in once.outcomes if o.ok] == [good[0]]

    changed = ProtectionSettings(steps=2, resolution=64, lpips=0.5, seed=1)
    redone = run_batch(src, dest, changed, tiny_model_settings, batch_size=2)
    assert (redone.done, redone.skipped) == (len(good), 0)
    check_written(src, dest, good, changed)


def test_command_errors_are_one_line(tmp_path, capsys, cli_model_args):
    src = tmp_path / "src"
    make_archive(src, good=1)
    cases = [
        ([str(tmp_path / "missing"), str(tmp_path / "out")], "does not exist"),
        ([str(src), str(src / "out")], "inside SRC"),
        ([str(tmp_path / "empty*.png"), str(tmp_path / "out")], "No images found"),
    ]
    for args, expected in cases:
        with pytest.raises(SystemExit) as exit_info:
            main(["batch", *args, *cli_model_args])
        assert exit_info.value.code == 1
        err = capsys.readouterr().err
        assert expected in err and err.count("\n") == 1 and "Traceback" not in err


def test_outputs_that_cannot_be_written_are_refused_before_the_models_load(
    tmp_path, capsys, monkeypatch
):
    """Transparency cannot go into a JPEG: planned as refused, said once per input, and with
    nothing else to do no model loads (the missing encoder would be the error)."""
    from artcloak.engine import protect

    loads = []
    monkeypatch.setattr(protect, "load_encoders", lambda *a, **k: loads.append(a) or [])
    src, dest = tmp_path / "src", tmp_path / "dest"
    src.mkdir()
    alpha = np.full((40, 48), 128, np.uint8)
    for name in ("one.png", "two.png"):
        Image.fromarray(np.dstack([painting(48, 40), alpha])).save(src / name)
    plan = make_plan(src, dest, ProtectionSettings(), ModelSettings(), "jpeg")
    assert plan.todo == [] and plan.total == 2
    assert [refused.item.relative for refused in plan.refused] == ["one.png", "two.png"]
    assert make_plan(src, dest, ProtectionSettings(), ModelSettings(), "webp").refused == []
    args = ["batch", str(src), str(dest), "--format", "jpeg", "--device", "cpu",
            "--encoder", str(tmp_path / "no-such-vae.safetensors")]  # fmt: skip
    with pytest.raises(SystemExit) as exit_info:
        main([*args, "--json"])
    assert exit_info.value.code == 1
    events = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    errors = [event for event in events if event["event"] == "error"]
    assert [event["input"] for event in errors] == ["one.png", "two.png"]
    assert all("has transparency" in event["message"] for event in errors)
    assert events[-1]["event"] == "summary" and events[-1]["failed"] == 2
    assert loads == [] and not any(dest.glob("*.jpg"))


def test_command_json_events_and_exit_status(tmp_path, capsys, cli_model_args):
    src, dest = tmp_path / "src", tmp_path / "dest"
    Image.fromarray(painting(48, 40)).save(src.mkdir() or src / "one.png")
    (src / "bad.png").write_bytes(b"")
    args = ["batch", str(src), str(dest), *cli_model_args, "--steps", "1", "--lpips", "0.5"]
    with pytest.raises(SystemExit) as exit_info:
        main([*args, "--json"])
    assert exit_info.value.code == 1  # one input failed
    events = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    kinds = [event["event"] for event in events]
    assert kinds.count("result") == 1 and kinds.count("error") == 1
    assert events[-1]["event"] == "summary" and events[-1]["done"] == 1
    assert events[-1]["failed"] == 1 and "images_per_second" in events[-1]
    progress = [event for event in events if event["event"] == "progress"]
    assert [event["step"] for event in progress] == [1, 2] and progress[-1]["total"] == 2
    (src / "bad.png").unlink()
    with pytest.raises(SystemExit) as exit_info:
        main(args)
    assert exit_info.value.code == 0
    assert "0 protected, 1 skipped" in capsys.readouterr().out


def test_ray_missing_says_how_to_install(monkeypatch, tmp_path, tiny_model_settings, settings):
    import sys

    monkeypatch.setitem(sys.modules, "ray", None)
    src = tmp_path / "src"
    make_archive(src, good=1)
    with pytest.raises(Exception, match=r"pip install 'artcloak\[ray\]'"):
        run_batch(src, tmp_path / "dest", settings, tiny_model_settings, ray_address="local")


def test_ray_pool_leaves_room_for_reading():
    from artcloak.batch.ray_runner import READ_CPUS, pool_shape

    one_node = pool_shape({"CPU": 2.0}, [2.0], workers=2, cpus_per_worker=None)
    assert one_node.workers == 2 and 2 * one_node.cpus_per_worker + READ_CPUS <= 2
    two_nodes = pool_shape({"CPU": 2.0}, [1.0, 1.0], workers=None, cpus_per_worker=None)
    assert two_nodes.workers == 2 and two_nodes.cpus_per_worker + READ_CPUS <= 1
    uneven = pool_shape({"CPU": 18.0}, [2.0, 16.0], workers=None, cpus_per_worker=None)
    assert uneven.cpus_per_worker + READ_CPUS <= 2  # fits the small node too
    gpus = pool_shape({"CPU": 32.0, "GPU": 4.0}, [32.0], workers=None, cpus_per_worker=None)
    assert (gpus.workers, gpus.gpus_per_worker) == (4, 1.0)


@pytest.mark.parametrize("order", [("cat.jpg", "cat.png"), ("cat.png", "cat.jpg")])
def test_inputs_sharing_a_name_get_names_by_one_rule_whatever_the_order(tmp_path, order):
    """The README's promise: cat.jpg and cat.png become cat.png and cat-jpg.png."""
    from artcloak.batch.plan import output_paths

    sources = [tmp_path / name for name in order]
    items = output_paths(tmp_path, sources, tmp_path / "out", None)
    named = {item.source.name: item.output.name for item in items}
    assert named == {"cat.png": "cat.png", "cat.jpg": "cat-jpg.png"}
