"""The worker process of one web run: ``api.run_plan`` with the store recorder, progress to a queue and a file."""

from __future__ import annotations

import json
import time
import traceback
from pathlib import Path
from typing import Any

STATE_FILE = "state.json"
PROGRESS_FILE = "progress.jsonl"
PLAN_FILE = "request.yaml"
OUT = "out"
TERMINAL = frozenset({"complete", "failed", "cancelled", "interrupted"})


def write_state(run_dir: Path, **fields: Any) -> dict[str, Any]:
    """Merge ``fields`` into ``<run_dir>/state.json`` atomically; returns the new state."""
    path = run_dir / STATE_FILE
    state: dict[str, Any] = json.loads(path.read_text(encoding="utf-8")) if path.is_file() else {}
    state.update(fields)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(state, default=str), encoding="utf-8")
    tmp.replace(path)
    return state


def read_state(run_dir: Path) -> dict[str, Any]:
    path = run_dir / STATE_FILE
    out: dict[str, Any] = json.loads(path.read_text(encoding="utf-8")) if path.is_file() else {}
    return out


def run_in_worker(run_dir: str, run_id: str, store_url: str | None, queue: Any) -> None:
    """Entry point of the spawned process: run the plan in ``run_dir``, record evidence, write the final state."""
    from aisec.api import run_plan
    from aisec.core.plan import Plan
    from aisec.policy.gate import Gate

    folder = Path(run_dir)
    log = (folder / PROGRESS_FILE).open("a", encoding="utf-8")

    def progress(task: str, done: int, total: int) -> None:
        event = {"task": task, "done": done, "total": total, "time": time.time()}
        log.write(json.dumps(event) + "\n")
        log.flush()
        if queue is not None:
            queue.put((run_id, event))

    write_state(folder, status="running", started=time.time())
    try:
        plan = Plan.from_yaml(folder / PLAN_FILE)
        gate = Gate.open(store=store_url) if store_url else None
        out = folder / OUT
        if gate is not None and gate.store is not None:
            gate.store.begin_run(run_id, plan, out_dir=out)
        run = run_plan(plan, out=out, progress=progress,
                       on_evidence=gate.recorder(plan, out) if gate else None, run_id=run_id)
        outcome = gate.finish(run) if gate else None
        verdict = outcome.policy.model_dump(mode="json") if outcome and outcome.policy else None
        passed = getattr(run.verdict, "passed", None) if getattr(run, "verdict", None) is not None else None
        write_state(folder, status="complete", finished=time.time(), errors=list(run.errors),
                    verdict=verdict, passed=passed)
    except BaseException as exc:
        write_state(folder, status="failed", finished=time.time(), error=f"{type(exc).__name__}: {exc}",
                    traceback=traceback.format_exc()[-4000:])
        if store_url:
            import contextlib

            from aisec.store import EvidenceNotFound, open_store

            with contextlib.suppress(EvidenceNotFound, Exception):
                open_store(store_url).finish_run(run_id, status="failed", error=str(exc)[:500])
    finally:
        log.close()
        if queue is not None:
            queue.put((run_id, {"status": read_state(folder).get("status")}))
