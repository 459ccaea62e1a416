"""artcloak batch on Ray: a local instance (a worker killed mid-run) and a 2-node cluster on
this machine (the same per-file outcomes as in-process). Offline, tiny models."""

from __future__ import annotations

import os
import signal

import pytest
from artcloak.batch import run_batch
from artcloak.batch.ray_runner import LOCAL_CONFIG
from artcloak.settings import ProtectionSettings
from test_batch import check_written, make_archive, outcomes_of

ray = pytest.importorskip("ray", reason="Ray is an optional extra: pip install 'artcloak[ray]'")


@pytest.fixture
def settings() -> ProtectionSettings:
    return ProtectionSettings(steps=2, resolution=64, lpips=0.5)


@pytest.fixture
def local_ray():
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, _system_config=LOCAL_CONFIG)
    yield
    ray.shutdown()


@pytest.fixture
def two_nodes():
    from ray.cluster_utils import Cluster

    cluster = Cluster(
        initialize_head=True,
        head_node_args={
            "num_cpus": 1,
            "include_dashboard": False,
            "_system_config": LOCAL_CONFIG,
        },
    )
    cluster.add_node(num_cpus=1)
    ray.init(address=cluster.address, log_to_driver=False)
    yield cluster
    ray.shutdown()
    cluster.shutdown()


def test_killed_worker_still_gives_one_output_per_input(
    tmp_path, local_ray, tiny_model_settings, settings
):
    src, dest = tmp_path / "src", tmp_path / "dest"
    good, bad = make_archive(src, good=16)
    killed: list[int] = []
    runners: list = []

    def kill_after_first(plan):
        def observe(outcome) -> None:
            if not killed:  # mid-run: the first result is in, most work is queued or running
                pid = runners[0].infos[0]["pid"]
                os.kill(pid, signal.SIGKILL)
                killed.append(pid)

        return observe

    summary = run_batch(src, dest, settings, tiny_model_settings, ray_address="auto",
                        workers=2, progress=kill_after_first, on_ready=runners.append)  # fmt: skip
    assert killed
    outcomes = outcomes_of(summary)
    assert len(summary.outcomes) == len(outcomes) == len(good) + len(bad)  # each input once
    assert sorted(name for name, (ok, _) in outcomes.items() if ok) == good
    assert sorted(name for name, (ok, _) in outcomes.items() if not ok) == bad
    assert (summary.done, len(summary.failures), summary.skipped) == (len(good), len(bad), 0)
    check_written(src, dest, good, settings)  # no duplicate, partial or temporary file
    assert sum(summary.per_worker().values()) == len(good)

    again = run_batch(src, dest, settings, tiny_model_settings, ray_address="auto")
    assert (again.done, again.skipped) == (0, len(good))
    check_written(src, dest, good, settings)


def test_two_node_cluster_matches_in_process(tmp_path, two_nodes, tiny_model_settings, settings):
    src = tmp_path / "src"
    good, bad = make_archive(src, good=16)
    local = run_batch(src, tmp_path / "local", settings, tiny_model_settings)
    on_ray = run_batch(src, tmp_path / "ray", settings, tiny_model_settings, ray_address="auto")
    assert outcomes_of(on_ray) == outcomes_of(local)
    assert len(on_ray.per_worker()) == 2  # both nodes' workers protected images
    check_written(src, tmp_path / "ray", good, settings)
    for name in good:
        output = name.rsplit(".", 1)[0] + ".png"
        written = (tmp_path / "ray" / output).read_bytes()
        assert written == (tmp_path / "local" / output).read_bytes()

    changed = ProtectionSettings(steps=2, resolution=64, lpips=0.5, seed=1)
    redone = run_batch(src, tmp_path / "ray", changed, tiny_model_settings, ray_address="auto")
    assert (redone.done, redone.skipped, len(redone.failures)) == (len(good), 0, len(bad))
    check_written(src, tmp_path / "ray", good, changed)
