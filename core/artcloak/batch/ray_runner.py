"""Run a batch on a Ray cluster: inputs are read in CPU tasks, protected and written in a pool
of actors (one per GPU, or one per node with a share of its CPUs), each loading the encoders,
LPIPS and targets once.

Exactly once: an actor that dies is restarted and its calls are retried; outputs are written
atomically to fixed paths, so a retried chunk replaces rather than duplicates. Every node
must see SRC and DEST at the same paths (one machine, or a shared filesystem).

Ray is optional (``pip install 'artcloak[ray]'``) and imported only here, on use.
"""

from __future__ import annotations

import os
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from ..engine import Run
from ..errors import ArtcloakError
from ..settings import ModelSettings
from .outcome import ItemOutcome, failed
from .plan import Item
from .read import load_chunk

READ_CPUS = 0.25  # a read task's CPU share; actors leave room for it (else reading starves)
IN_FLIGHT = 2  # chunks queued per actor: the next one is read while this one is protected
# A Ray instance started here keeps idle reading processes alive: by default it keeps as many
# processes as CPUs, actors included, so on a small machine each read would start a new one.
LOCAL_CONFIG = {"num_workers_soft_limit": 8}
START_S = 900  # the longest wait for the workers to load their models
RESTARTS = 4  # times an actor is restarted (its calls retried) before its chunks fail


def import_ray() -> Any:
    try:
        import ray
    except ImportError:
        raise ArtcloakError("--ray needs Ray: pip install 'artcloak[ray]'.") from None
    return ray


@dataclass(frozen=True)
class PoolShape:
    workers: int
    gpus_per_worker: float
    cpus_per_worker: float

    @property
    def threads(self) -> int:
        return max(1, int(round(self.cpus_per_worker)))

    def describe(self) -> str:
        if self.gpus_per_worker:
            return f"{self.workers} worker(s), one GPU each"
        return f"{self.workers} worker(s), {self.cpus_per_worker:g} CPUs each"


def pool_shape(
    resources: dict, node_cpus: list[float], workers: int | None, cpus_per_worker: float | None
) -> PoolShape:
    """One worker per GPU; without GPUs one per node, each with its share of the CPUs (of the
    smallest node, so that every worker fits somewhere) less what the read tasks need."""
    gpus = int(resources.get("GPU", 0))
    cpus = float(resources.get("CPU", 1))
    smallest = min(node_cpus, default=cpus)
    if gpus:
        count = workers or gpus
        return PoolShape(count, 1.0, cpus_per_worker or max(READ_CPUS, min(4.0, cpus / count / 2)))
    count = workers or max(1, len(node_cpus))
    share = cpus_per_worker or max(READ_CPUS, min(cpus / count, smallest) - 2 * READ_CPUS)
    return PoolShape(count, 0.0, share)


class Protector:
    """The actor: one engine per worker process."""

    def __init__(self, index: int, models, run, run_key, batch_size, threads) -> None:
        import torch

        from ..memory import own_process
        from .run import ChunkProtector

        own_process()
        torch.set_num_threads(threads)
        self.error = ""
        try:
            self.protector = ChunkProtector(models, run, run_key, batch_size, f"worker {index}")
        except ArtcloakError as error:  # said once by the driver, not retried
            self.error = str(error)

    def info(self) -> dict:
        if self.error:
            return {"error": self.error}
        return {
            "pid": os.getpid(),
            "worker": self.protector.worker,
            "batch_size": self.protector.engine.batch_size,
            "resolution": self.protector.resolution,
        }

    def protect(self, loaded: list) -> list[ItemOutcome]:
        return self.protector.protect(loaded)


class RayRunner:
    """A pool of protector actors on a Ray cluster (started on ``start``)."""

    def __init__(
        self,
        address: str | None,
        models: ModelSettings,
        run: Run,
        run_key: dict,
        batch_size: int | None = None,
        workers: int | None = None,
        cpus_per_worker: float | None = None,
    ) -> None:
        """``run``: the batch's run (checked once, by the driver; each actor protects with it)."""
        self.ray = import_ray()
        self.address = address
        self.args = (models, run, run_key, batch_size)
        self.workers, self.cpus_per_worker = workers, cpus_per_worker
        self.started_ray = False
        self.actors: list = []
        self.infos: list[dict] = []
        self.shape: PoolShape | None = None
        self.load: Any = None

    def start(self) -> None:
        ray = self.ray
        if not ray.is_initialized():
            address = None if self.address in (None, "local") else self.address
            try:
                local = {"_system_config": LOCAL_CONFIG} if address is None else {}
                ray.init(address=address, include_dashboard=False, log_to_driver=False,
                         configure_logging=False, **local)  # fmt: skip
            except (ConnectionError, RuntimeError, ValueError) as error:
                message = str(error).splitlines()[0] if str(error) else type(error).__name__
                raise ArtcloakError(f"Cannot reach the Ray cluster {address}: {message}") from None
            self.started_ray = True
        node_cpus = [
            float(node.get("Resources", {}).get("CPU", 0))
            for node in ray.nodes()
            if node.get("Alive") and node.get("Resources", {}).get("CPU")
        ]
        shape = pool_shape(ray.cluster_resources(), node_cpus, self.workers, self.cpus_per_worker)
        self.shape = shape
        actor_class = ray.remote(Protector).options(
            num_cpus=shape.cpus_per_worker,
            num_gpus=shape.gpus_per_worker,
            max_restarts=RESTARTS,
            max_task_retries=RESTARTS,
            scheduling_strategy="SPREAD",
        )
        self.actors = [
            actor_class.remote(index, *self.args, shape.threads) for index in range(shape.workers)
        ]
        self.load = ray.remote(load_chunk).options(num_cpus=READ_CPUS, max_retries=RESTARTS)
        # Start the reading processes too (they import torch): the clock starts when all is up.
        warm_up = [self.load.remote([]) for _ in range(len(self.actors) * IN_FLIGHT)]
        try:
            self.infos = ray.get([actor.info.remote() for actor in self.actors], timeout=START_S)
            ray.get(warm_up, timeout=START_S)
        except ray.exceptions.GetTimeoutError:
            raise ArtcloakError(
                f"The Ray workers did not start within {START_S // 60} minutes: is there room on "
                f"the cluster for {shape.describe()}? See --workers and --cpus-per-worker."
            ) from None
        except ray.exceptions.RayError as error:
            raise ArtcloakError(f"The Ray workers could not start: {_first_line(error)}") from None
        for info in self.infos:
            if "error" in info:
                raise ArtcloakError(info["error"])

    @property
    def batch_size(self) -> int:
        return min(info["batch_size"] for info in self.infos)

    @property
    def resolution(self) -> int:
        return self.infos[0]["resolution"]

    def run(
        self, chunks: Sequence[Sequence[Item]], on_outcome: Callable[[ItemOutcome], None]
    ) -> None:
        """Protect every chunk, giving each free actor the next one; outcomes as they come."""
        ray, load = self.ray, self.load
        queue = deque(chunks)
        pending: dict[Any, tuple[Sequence[Item], int]] = {}

        def submit(index: int) -> None:
            if queue:
                chunk = queue.popleft()
                ref = self.actors[index].protect.remote(load.remote(list(chunk)))
                pending[ref] = (chunk, index)

        for _ in range(IN_FLIGHT):
            for index in range(len(self.actors)):
                submit(index)
        while pending:
            ready, _ = ray.wait(list(pending), num_returns=1)
            for ref in ready:
                chunk, index = pending.pop(ref)
                try:
                    outcomes = ray.get(ref)
                except ray.exceptions.RayError as error:
                    reason = f"The worker failed: {_first_line(error)}"
                    outcomes = [failed(item, reason, f"worker {index}") for item in chunk]
                for outcome in outcomes:
                    on_outcome(outcome)
                submit(index)

    def stop(self) -> None:
        for actor in self.actors:
            self.ray.kill(actor, no_restart=True)
        self.actors = []
        if self.started_ray:
            self.ray.shutdown()
            self.started_ray = False


def _first_line(error: BaseException) -> str:
    text = str(error).strip()
    return text.splitlines()[-1] if text else type(error).__name__
