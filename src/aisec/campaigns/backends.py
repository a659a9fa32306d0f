"""Where campaign jobs run: in this process, a local process pool, or a Ray cluster.

Every backend calls the same :func:`aisec.campaigns.jobs.run_job` with the same JSON-able payload and
yields its outcome as each job ends (in the order jobs end, not the order given); the worker writes
the job's run into the evidence store itself, so results stream into one store whichever backend ran
them. No scheduler of our own: :class:`concurrent.futures.ProcessPoolExecutor` (``spawn``, so a worker
never inherits the parent's torch threads or locks) and Ray's tasks do the scheduling.
"""

from __future__ import annotations

import multiprocessing
import os
from collections.abc import Iterator, Sequence
from concurrent.futures import Future, ProcessPoolExecutor, as_completed
from concurrent.futures.process import BrokenProcessPool
from typing import Any, Protocol

from aisec.campaigns.jobs import run_job
from aisec.core.errors import ConfigError


class Backend(Protocol):
    """Runs job payloads and yields their outcomes as they end."""

    name: str

    def run(self, payloads: Sequence[dict[str, Any]]) -> Iterator[dict[str, Any]]: ...


class InProcess:
    """One job after another in this process (``--workers 1``)."""

    name = "in-process"

    def run(self, payloads: Sequence[dict[str, Any]]) -> Iterator[dict[str, Any]]:
        for p in payloads:
            yield run_job(p)


class LocalPool:
    """A pool of ``workers`` spawned processes (default: one per core)."""

    name = "local"

    def __init__(self, workers: int | None = None) -> None:
        self.workers = workers or os.cpu_count() or 1
        if self.workers < 1:
            raise ConfigError(f"--workers must be at least 1, got {self.workers}")

    def run(self, payloads: Sequence[dict[str, Any]]) -> Iterator[dict[str, Any]]:
        if not payloads:
            return
        ctx = multiprocessing.get_context("spawn")
        with ProcessPoolExecutor(max_workers=min(self.workers, len(payloads)), mp_context=ctx) as pool:
            futures: dict[Future[dict[str, Any]], dict[str, Any]] = {pool.submit(run_job, p): p for p in payloads}
            for f in as_completed(futures):
                try:
                    yield f.result()
                except BrokenProcessPool as exc:  # a worker died (killed, out of memory): its job failed
                    yield _died(futures[f], exc)


class RayBackend:
    """Ray tasks, one CPU each (and one GPU each when ``gpus_per_job`` is 1), on the cluster at ``address``.

    ``address``: ``auto`` (the cluster this machine belongs to, ``ray start --head``), ``ray://host:port``
    or ``host:port``; ``local`` (or None) starts a private in-process Ray with ``init_kwargs`` (e.g.
    ``num_cpus=2``). A Ray this backend started is shut down when the jobs end; one that was already
    running is left as it was.
    """

    name = "ray"

    def __init__(self, address: str | None = "local", *, gpus_per_job: float = 0.0,
                 init_kwargs: dict[str, Any] | None = None) -> None:
        self.address = None if address in (None, "", "local") else address
        self.gpus_per_job = gpus_per_job
        self.init_kwargs = {"include_dashboard": False, "log_to_driver": False, **(init_kwargs or {})}

    def run(self, payloads: Sequence[dict[str, Any]]) -> Iterator[dict[str, Any]]:
        try:
            import ray
        except ImportError as exc:
            raise ConfigError("--ray needs Ray: pip install 'aisec[ray]' (ray==2.60.0)") from exc
        started = not ray.is_initialized()
        if started:
            env = {k: v for k, v in os.environ.items() if k.startswith("AISEC_") or k == "PYTHONPATH"}
            kwargs = dict(self.init_kwargs)
            if env:
                kwargs.setdefault("runtime_env", {"env_vars": env})
            try:
                ray.init(address=self.address, **kwargs)
            except (ConnectionError, RuntimeError, ValueError) as exc:
                raise ConfigError(f"cannot start or reach Ray at {self.address or 'a local instance'}: {exc}") from exc
        try:
            task = ray.remote(num_cpus=1, num_gpus=self.gpus_per_job, max_retries=0)(run_job)
            pending = {task.remote(p): p for p in payloads}
            while pending:
                done, _ = ray.wait(list(pending), num_returns=1)
                ref = done[0]
                payload = pending.pop(ref)
                try:
                    yield ray.get(ref)
                except ray.exceptions.RayError as exc:  # the task's worker died: its job failed
                    yield _died(payload, exc)
        finally:
            if started:
                ray.shutdown()


def _died(payload: dict[str, Any], exc: BaseException) -> dict[str, Any]:
    return {"job_id": payload["job_id"], "status": "failed", "seconds": 0.0, "records": 0, "added": 0,
            "resumed": False, "died": True, "error": f"worker died: {type(exc).__name__}: {str(exc)[:300]}"}


def make_backend(workers: int | None = None, ray: str | None = None, *, gpus_per_job: float = 0.0) -> Backend:
    """The backend the CLI's ``--workers`` and ``--ray`` ask for (Ray wins when given)."""
    if ray:
        return RayBackend(ray, gpus_per_job=gpus_per_job)
    if workers == 1:
        return InProcess()
    return LocalPool(workers)
