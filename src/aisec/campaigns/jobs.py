"""One campaign job, as a worker runs it: a plan into its own run folder, then into the evidence store.

A job's identity is its **key**: the sha256 of the model digest, the data digest, the check, its
parameters (every default written out, so two spellings of one request are one job), the seed, the
defence, the model's loading options and the aisec version. Its run id is ``job-`` and the first 40
hex digits of the key, so a job run twice — or on another machine — has the same run id, and
"finished" is a question the store answers (:data:`DONE`).

:func:`run_job` is what every backend calls (in this process, a spawned pool worker or a Ray task):
its argument and result are plain JSON-able dicts. The run folder is resumed when it holds a started
run (``aisec assess --resume``: finished checks come from their checkpoints, a robustness check from
its last finished attack), and the run goes into the store only once it has finished, so the store
never holds half a job.
"""

from __future__ import annotations

import hashlib
import json
import random
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from aisec.core.errors import AisecError
from aisec.core.plan import Plan
from aisec.core.progress import Progress

#: store statuses of a job that is not run again (a job over its time limit is a result: it did not finish in time)
DONE = ("complete", "timeout")


class JobTimeLimit(AisecError):
    """A job ran past its time limit (raised from its progress callback, so every check stops at its next step)."""


def job_key(plan: Plan, *, model_sha256: str, dataset_digest: str) -> str:
    """The sha256 that identifies a job (see the module docstring)."""
    from aisec.core.registry import get_check
    from aisec.core.version import __version__

    (check, raw), = plan.checks.items()
    info = get_check(check)
    fields = info.cls.Params.model_fields
    params = info.cls.Params(**({"seed": plan.seed, **raw} if "seed" in fields else raw)).model_dump(mode="json")
    model = plan.model.model_dump(mode="json", exclude={"path", "device"})
    doc = {"model_sha256": model_sha256, "dataset_digest": dataset_digest, "check": check, "params": params,
           "seed": plan.seed, "model": model, "data_options": plan.data.model_dump(mode="json", exclude={"source"}),
           "aisec": __version__}
    return hashlib.sha256(json.dumps(doc, sort_keys=True, separators=(",", ":"), default=str).encode()).hexdigest()


def job_id(key: str) -> str:
    return f"job-{key[:40]}"


def deadline(limit: float | None, *, clock: Callable[[], float] = time.monotonic) -> Progress:
    """A progress callback that raises :class:`JobTimeLimit` once ``limit`` seconds have passed."""
    t0 = clock()

    def progress(task: str, done: int, total: int) -> None:
        if limit is not None and clock() - t0 > limit:
            raise JobTimeLimit(f"time limit of {limit:g} s reached during '{task}' ({done}/{total})")

    return progress


def run_job(payload: dict[str, Any]) -> dict[str, Any]:
    """Run one job and store its run; returns its outcome (never raises for a failure of the job itself).

    ``payload``: ``job_id``, ``plan`` (a plan as JSON), ``out`` (its run folder), ``store`` (URL),
    ``key_dir``, ``time_limit`` (seconds or None) and ``threads`` (torch threads, or None to keep).

    Returns ``job_id``, ``status`` (``complete``, ``timeout`` or ``failed``), ``seconds``, ``records``
    (evidence records stored), ``resumed`` (it continued a killed run) and ``error``.
    """
    import numpy as np
    import torch

    from aisec.api import previous_run_id, run_plan
    from aisec.store import open_store

    rid = str(payload["job_id"])
    plan = Plan.model_validate(payload["plan"])
    out = Path(payload["out"])
    threads = payload.get("threads")
    before = torch.get_num_threads()
    if threads:
        torch.set_num_threads(int(threads))
    # every global random state a check may draw from starts from the seed, whichever jobs ran before in
    # this process; a resumed run then restores the state its checkpoint saved
    random.seed(plan.seed)
    np.random.seed(plan.seed % 2**32)
    torch.manual_seed(plan.seed)
    resumed = out.is_dir() and previous_run_id(out) == rid
    t0 = time.perf_counter()
    store = open_store(payload["store"], key_dir=payload.get("key_dir"))
    try:
        try:
            run = run_plan(plan, out=out, existing="resume" if resumed else "overwrite", run_id=rid,
                           progress=deadline(payload.get("time_limit")))
        except JobTimeLimit as exc:
            return _ended(store, rid, plan, out, "timeout", str(exc), t0, resumed)
        except Exception as exc:  # one job's failure is its outcome; the campaign goes on with the others
            return _ended(store, rid, plan, out, "failed", f"{type(exc).__name__}: {exc}", t0, resumed)
        added = store.save_run(run, source="campaign")
        status = "failed" if run.errors else "complete"
        return {"job_id": rid, "status": status, "seconds": time.perf_counter() - t0,
                "records": len(run.evidence), "added": len(added.added), "resumed": resumed,
                "error": "; ".join(run.errors) or None}
    finally:
        store.close()
        if threads:
            torch.set_num_threads(before)


def _ended(store: Any, rid: str, plan: Plan, out: Path, status: str, error: str, t0: float,
           resumed: bool) -> dict[str, Any]:
    store.begin_run(rid, plan, out_dir=out)
    store.finish_run(rid, status=status, error=error[:2000])
    return {"job_id": rid, "status": status, "seconds": time.perf_counter() - t0, "records": 0, "added": 0,
            "resumed": resumed, "error": error}
