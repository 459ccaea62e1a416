"""Nothing lost under faults: a full disk, a writer or worker killed outright, a batch killed
and resumed. Each test fails if an original changes, if a partial file is left under an output's
name, or if a temporary file outlives the next run."""

from __future__ import annotations

import contextlib
import errno
import hashlib
import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import processes
import pytest
from artcloak.atomic import atomic_write, temporaries
from artcloak.cli import main
from conftest import painting
from PIL import Image

pytestmark = pytest.mark.skipif(os.name != "posix", reason="signals and fork: POSIX only")


def digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def hidden_temporaries(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if p.name.endswith(".tmp"))


def wait_for(condition, timeout: float = 120.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError("timed out")
        time.sleep(0.05)


WRITER = textwrap.dedent(
    """
    import sys, time
    from pathlib import Path
    from artcloak.atomic import atomic_write

    def stall(f):
        f.write(b"half of a picture")
        f.flush()
        time.sleep(600)

    atomic_write(Path(sys.argv[1]), stall)
    """
)


def start_stalled_writer(target: Path) -> subprocess.Popen:
    """A process in the middle of writing ``target``, its temporary file on disk."""
    writer = subprocess.Popen([sys.executable, "-c", WRITER, str(target)])
    wait_for(lambda: any(match["pid"] == str(writer.pid)
                         for _, match in temporaries(target.parent, {target.name})))  # fmt: skip
    return writer


def test_a_killed_writers_temporary_is_reclaimed_a_live_ones_kept(tmp_path):
    target = tmp_path / "art-cloaked.png"
    killed = start_stalled_writer(target)
    killed.send_signal(signal.SIGKILL)
    killed.wait()
    assert not target.exists() and len(hidden_temporaries(tmp_path)) == 1
    alive = start_stalled_writer(target)
    try:
        atomic_write(target, lambda f: f.write(b"the whole picture"))
        assert target.read_bytes() == b"the whole picture"
        left = hidden_temporaries(tmp_path)  # only the live writer's
        assert len(left) == 1 and f"-{alive.pid}." in left[0]
    finally:
        alive.kill()
        alive.wait()


def test_a_full_disk_fails_the_cli_run_in_one_line_leaving_nothing(
    rgb_png, cli_model_args, capsys, monkeypatch
):
    before = digest(rgb_png)

    def full_disk(src: str, dst: str) -> None:
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(os, "replace", full_disk)
    with pytest.raises(SystemExit) as exit_info:
        main(["cloak", str(rgb_png), *cli_model_args, "--steps", "2"])
    assert exit_info.value.code == 1
    err = capsys.readouterr().err
    failures = [line for line in err.splitlines() if line.startswith("failed")]
    assert len(failures) == 1 and "disk is full" in failures[0] and "Traceback" not in err
    assert sorted(p.name for p in rgb_png.parent.iterdir()) == ["art.png"]
    assert digest(rgb_png) == before


@contextlib.contextmanager
def small_filesystem(folder: Path, kilobytes: int, read_only: bool = False):
    """A real tmpfs of ``kilobytes`` at ``folder`` (root only), read-only if asked."""
    if os.geteuid() != 0:
        pytest.skip("mounting a small filesystem needs root")
    folder.mkdir()
    options = f"size={kilobytes}k" + (",ro" if read_only else "")
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(folder)],
                             capture_output=True, text=True)  # fmt: skip
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {mounted.stderr.strip()}")
    try:
        yield folder
    finally:
        subprocess.run(["umount", "-l", str(folder)], capture_output=True)


def fill(folder: Path) -> None:
    """Write into ``folder`` until its filesystem is full."""
    with contextlib.suppress(OSError), open(folder / "filler", "wb") as filler:
        while True:
            filler.write(b"\0" * 4096)
            filler.flush()


@pytest.mark.parametrize("fault", ["full", "read-only"])
def test_a_real_full_or_read_only_disk_fails_in_one_line_leaving_nothing(
    rgb_png, cli_model_args, capsys, tmp_path, fault
):
    """The same promise on a real filesystem: a 256 KB tmpfs filled up, or mounted read-only."""
    before = digest(rgb_png)
    with small_filesystem(tmp_path / "disk", 256, read_only=fault == "read-only") as disk:
        if fault == "full":
            fill(disk)
        with pytest.raises(SystemExit) as exit_info:
            main(["cloak", str(rgb_png), *cli_model_args, "--steps", "2",
                  "--output", str(disk / "art-cloaked.png")])  # fmt: skip
        left = sorted(p.name for p in disk.iterdir())
    assert exit_info.value.code == 1
    err = capsys.readouterr().err
    failures = [line for line in err.splitlines() if line.startswith("failed")]
    expected = "disk is full" if fault == "full" else "cannot be written to (a read-only disk"
    assert len(failures) == 1 and expected in failures[0] and "Traceback" not in err, err
    if fault == "read-only":  # known before any work: no estimate, no step was shown
        assert "steps (estimated" not in err, err
    assert left == (["filler"] if fault == "full" else [])  # no output, no temporary
    assert digest(rgb_png) == before


def test_a_worker_killed_mid_protection_leaves_the_original_and_no_output(rgb_png, tiny_models):
    from test_worker import request_for, start_worker

    before = digest(rgb_png)
    output = rgb_png.with_name("out.png")
    worker = start_worker()
    worker.stdin.write(request_for(rgb_png, output, tiny_models, steps=400).to_json())
    worker.stdin.close()
    for line in worker.stdout:  # the first step: models loaded, protection under way
        if json.loads(line).get("event") == "progress":
            break
    worker.send_signal(signal.SIGKILL)
    worker.wait()
    assert sorted(p.name for p in rgb_png.parent.iterdir()) == ["art.png"]
    assert digest(rgb_png) == before


HOST = textwrap.dedent(
    """
    import sys
    from artcloak import client, protocol

    source, output, encoder = sys.argv[1:4]
    settings = {"encoders": [encoder], "device": "cpu", "steps": 5000, "resolution": 64,
                "lpips_random_backbone": True}
    request = protocol.WorkerRequest(source, output, settings=settings)
    client.run_worker(sys.executable, request, lambda event: print("step", flush=True), host="test")
    """
)


@pytest.mark.skipif(sys.platform != "linux", reason="finds the worker through /proc and pgrep")
def test_a_plugin_host_killed_mid_run_leaves_no_worker_and_no_output(rgb_png, tiny_models):
    """A host that dies (GIMP closes a plug-in whose progress was cancelled; Krita crashes)
    takes its worker down: the orphan stops at its next step, before writing anything."""
    before = digest(rgb_png)
    output = rgb_png.with_name("out.png")
    host = subprocess.Popen([sys.executable, "-c", HOST, str(rgb_png), str(output),
                             str(tiny_models["diffusers_folder"])],
                            stdout=subprocess.PIPE, text=True, start_new_session=True)  # fmt: skip
    assert host.stdout.readline().strip() == "step"  # the worker is protecting
    workers = processes.children(host.pid)
    assert workers, "no worker process under the host"
    host.send_signal(signal.SIGKILL)
    host.wait()
    wait_for(lambda: not any(processes.alive(pid) for pid in workers), timeout=60)
    assert sorted(p.name for p in rgb_png.parent.iterdir()) == ["art.png"]
    assert digest(rgb_png) == before


def test_a_batch_killed_then_resumed_finishes_each_input_exactly_once(tmp_path, cli_model_args):
    src, dest = tmp_path / "src", tmp_path / "dest"
    src.mkdir()
    for index in range(4):
        Image.fromarray(painting(64, 48, seed=index)).save(src / f"{index}.png")
    originals = {path.name: digest(path) for path in src.iterdir()}
    command = [sys.executable, "-m", "artcloak", "batch", str(src), str(dest), *cli_model_args,
               "--steps", "3", "--json"]  # fmt: skip
    first = subprocess.Popen(command, stdout=subprocess.PIPE, text=True)
    for line in first.stdout:  # one input done, the next under way
        if json.loads(line).get("event") == "result":
            break
    first.send_signal(signal.SIGKILL)
    first.wait()
    done_before = {p.name for p in dest.glob("*.png")}
    assert 1 <= len(done_before) < 4
    again = subprocess.run(command, capture_output=True, text=True, timeout=600)
    assert again.returncode == 0, again.stderr
    summary = [json.loads(line) for line in again.stdout.splitlines()][-1]
    assert summary["event"] == "summary"
    assert summary["skipped"] == len(done_before) and summary["done"] == 4 - len(done_before)
    assert sorted(p.name for p in dest.glob("*.png")) == sorted(originals)
    assert all((dest / f"{name}.json").is_file() for name in originals)
    assert hidden_temporaries(dest) == []
    assert {path.name: digest(path) for path in src.iterdir()} == originals


@pytest.mark.parametrize(
    "changes, expected",
    [
        ({"style": "x" * 100_000_000}, "'style' is 100000000 characters long"),  # a 100 MB line
        ({"style": "y" * 300}, "y" * 300),  # longer than a file name may be: not a style
        ({"mode": "shade", "anchors": ["a.png"] * 2000}, "'anchors' has 2000 items"),
        ({"input": "/" + "z" * 5000}, "'input' is 5001 characters long"),
    ],
    ids=["huge-style", "overlong-name", "many-anchors", "huge-path"],
)
def test_hostile_worker_requests_get_one_short_error(rgb_png, tiny_models, changes, expected):
    """Absurd sizes are refused in one short line before any model loads: no traceback, no
    message that carries the whole value, nothing written."""
    from test_worker import request_for

    before = digest(rgb_png)
    request = request_for(rgb_png, rgb_png.with_name("out.png"), tiny_models)
    code, events, err = run_wire({**request.to_wire(), **changes})
    assert code == 1 and [e["event"] for e in events] == ["error"], err
    assert expected in events[0]["message"] and len(events[0]["message"]) < 1000
    assert "Traceback" not in err
    assert sorted(p.name for p in rgb_png.parent.iterdir()) == ["art.png"]
    assert digest(rgb_png) == before


def test_the_original_cannot_be_the_output_by_another_path(rgb_png, tiny_models):
    from test_worker import request_for

    before = digest(rgb_png)
    (rgb_png.parent / "sub").mkdir()
    link = rgb_png.parent / "link.png"
    link.symlink_to(rgb_png)
    for output in (rgb_png.parent / "sub" / ".." / "art.png", link):
        wire = {**request_for(rgb_png, output, tiny_models).to_wire(), "overwrite": True}
        code, events, err = run_wire(wire)
        assert code == 1 and events[-1]["event"] == "error", (output, events)
        assert "Traceback" not in err
        assert digest(rgb_png) == before and link.is_symlink()


def run_wire(wire: dict) -> tuple[int, list[dict], str]:
    """``artcloak worker`` on one request as the plugins send it: (exit status, events, stderr)."""
    worker = subprocess.run(
        [sys.executable, "-m", "artcloak", "worker", "-"],
        input=json.dumps(wire), capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    return (
        worker.returncode,
        [json.loads(line) for line in worker.stdout.splitlines()],
        worker.stderr,
    )
