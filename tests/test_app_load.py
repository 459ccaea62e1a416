"""artcloak app under load, offline on the tiny model: 20 uploads from four page sessions at
once. Every job finishes or is refused with a reason, the worker takes the sessions in turn,
nothing of one job reaches another, memory stays flat, and closing (Ctrl+C) leaves nothing."""

from __future__ import annotations

import sys
import threading
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
from artcloak.app.jobs import DONE, QUEUED, JobRunner
from artcloak.app.limits import Limits
from artcloak.errors import ArtcloakError
from PIL import Image
from test_app import rgba_png, wait

SESSIONS = ("ada", "bea", "cy", "greedy")
PER_SESSION = 5  # the page's limit of waiting jobs per session, below
GREEDY_TRIES = 8  # the last session tries more: the rest are refused
RSS_GROWTH_LIMIT_MB = 64  # over the 16 jobs after the first round


def resident_mb() -> float:
    """This process's resident memory (Linux)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise AssertionError("no VmRSS")


def submit_at_once(runner, settings, uploads: dict[str, list[Path]]) -> tuple[dict, dict]:
    """Each session submits its uploads (one job each) from its own thread, all at once."""
    accepted = {owner: [] for owner in uploads}
    refused = {owner: [] for owner in uploads}
    barrier = threading.Barrier(len(uploads))

    def session(owner: str) -> None:
        barrier.wait()
        for upload in uploads[owner]:
            try:
                accepted[owner].append(runner.submit([upload], settings, ".png", owner=owner))
            except ArtcloakError as error:
                refused[owner].append(str(error))

    threads = [threading.Thread(target=session, args=(owner,)) for owner in uploads]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    return accepted, refused


@pytest.mark.skipif(sys.platform != "linux", reason="reads resident memory from /proc")
def test_twenty_uploads_from_four_sessions(engine, fast_settings, tmp_path):
    limits = Limits(max_waiting_per_session=PER_SESSION)
    runner = JobRunner(engine, limits=limits, root=tmp_path / "app", resolution=64, keep_jobs=30)
    try:
        # a long job runs while the sessions submit, so the queue holds them all at once
        blocker = runner.submit([rgba_png(tmp_path / "first.png")],
                                replace(fast_settings, steps=5000), ".png", owner="first")  # fmt: skip
        while blocker.images[0].step < 1:
            time.sleep(0.02)
        uploads = {
            owner: [rgba_png(tmp_path / f"{owner}-{n}.png", seed=10 * index + n)
                    for n in range(GREEDY_TRIES if owner == "greedy" else PER_SESSION)]
            for index, owner in enumerate(SESSIONS)
        }  # fmt: skip
        accepted, refused = submit_at_once(runner, fast_settings, uploads)
        jobs = [job for owner in SESSIONS for job in accepted[owner]]
        assert len(jobs) == 20 and all(job.state == QUEUED for job in jobs)
        assert {owner: len(refused[owner]) for owner in SESSIONS} == {
            "ada": 0, "bea": 0, "cy": 0, "greedy": GREEDY_TRIES - PER_SESSION,
        }  # fmt: skip
        assert all("5 jobs waiting" in message for message in refused["greedy"])
        # the page shows each job its place: a session's n-th job waits behind the others'
        for owner in SESSIONS:
            places = [runner.position(job) for job in accepted[owner]]
            assert [(place - 1) // len(SESSIONS) for place in places] == list(range(PER_SESSION))

        runner.cancel(blocker.id)
        for owner in SESSIONS:  # the first round (memory is measured from here, once warm)
            wait(accepted[owner][0], runner, 60)
        warm = resident_mb()
        for job in jobs:
            wait(job, runner, 120)
        grown = resident_mb() - warm
        print(f"\nresident memory after the first round {warm:.0f} MB, grown {grown:.1f} MB")
        assert grown < RSS_GROWTH_LIMIT_MB

        assert all(job.state == DONE for job in jobs), [job.message for job in jobs]
        started = [job.owner for job in sorted(jobs, key=lambda job: job.started)]
        for round_start in range(0, len(started), len(SESSIONS)):  # in turn, session by session
            assert sorted(started[round_start : round_start + len(SESSIONS)]) == sorted(SESSIONS)
        for owner in SESSIONS:
            for job, upload in zip(accepted[owner], uploads[owner], strict=False):
                assert_only_its_own(job, upload, fast_settings)
        assert not any((runner.root / "work").iterdir())  # every job's temporary copies went

        last = runner.submit([uploads["ada"][0]], replace(fast_settings, steps=5000), ".png")
        while last.images[0].step < 1:
            time.sleep(0.02)
    finally:
        runner.close()  # what Ctrl+C does (app/command.py)
    assert not runner.root.exists() and not runner._thread.is_alive()


def assert_only_its_own(job, upload: Path, settings) -> None:
    """The job's results are its own upload's, protected: named after it, near it only."""
    (image,) = job.images
    output = image.result.output
    assert output.parent == job.results and output.name == f"{upload.stem}-cloaked.png"
    written = np.asarray(Image.open(output), dtype=np.int64)
    original = np.asarray(Image.open(upload), dtype=np.int64)
    assert np.abs(written - original).max() <= round(settings.budget().eps * 255)
    names = {path.name for path in job.results.iterdir()}
    assert names <= {output.name, output.name + ".json", "artcloak-protected.zip", "previews"}


HOSTILE_NAMES = [
    "..png",  # a name of dots
    "a\\..\\..\\b.png",  # Windows separators, legal in a Linux file name
    "\x1b[31mred.png",  # a terminal escape
    "art\u202egnp.exe.png",  # a right-to-left override
    "-rf .png",  # an option-like name
    "x" * 240 + ".png",  # near the file system's limit
]


@pytest.fixture
def runner(engine, tmp_path):
    runner = JobRunner(engine, root=tmp_path / "app", resolution=64)
    yield runner
    runner.close()


def test_uploads_with_hostile_names_stay_in_their_job(runner, fast_settings, tmp_path):
    """Whatever an upload is called, its copy and its output are inside the job's own
    folders, under a plain name, and the original upload is only read."""
    uploads = []
    for index, name in enumerate(HOSTILE_NAMES):
        folder = tmp_path / "uploads" / str(index)
        folder.mkdir(parents=True)
        upload = folder / name
        rgba_png(folder / "art.png", seed=index).rename(upload)  # a PNG, whatever its name
        uploads.append(upload)
    before = {upload: upload.read_bytes() for upload in uploads}
    job = runner.submit(uploads, fast_settings, ".png", owner="someone")
    wait(job, runner, 120)
    assert job.state == DONE, job.message
    outputs = [image.result.output for image in job.images]
    for output in outputs:
        assert output.parent == job.results, output
        assert output.name.isprintable() and "\u202e" not in output.name, output.name
        assert not output.name.startswith(("-", ".")) and "\\" not in output.name
    assert len(set(outputs)) == len(uploads)
    assert all(upload.read_bytes() == data for upload, data in before.items())
    inside = {path.resolve() for path in runner.root.rglob("*")}
    assert all(str(path).startswith(str(runner.root.resolve())) for path in inside)
