"""RunManager: queues web runs, starts each in a spawned worker process, cancels, re-runs, recovers after restart.

A run's state lives in its folder ``<work_dir>/runs/<id>/`` (``request.yaml``, ``state.json``,
``progress.jsonl``, ``out/`` = the report folder) and its evidence in the store, so a new server on the same
work folder knows every run: one that was ``running`` is ``interrupted``, ``queued`` ones are queued again.
"""

from __future__ import annotations

import contextlib
import json
import multiprocessing as mp
import threading
import time
import uuid
from multiprocessing.process import BaseProcess
from pathlib import Path
from typing import Any

from aisec.core.errors import AisecError
from aisec.core.plan import Plan
from aisec.web.settings import ServeSettings
from aisec.web.worker import PLAN_FILE, PROGRESS_FILE, TERMINAL, read_state, run_in_worker, write_state


class RunNotFound(AisecError):
    """No run with that id in this server's work folder."""


class RunManager:
    """Runs plans in at most ``settings.max_workers`` worker processes (multiprocessing "spawn")."""

    def __init__(self, settings: ServeSettings) -> None:
        self.settings = settings
        self.ctx = mp.get_context("spawn")
        self.queue: Any = self.ctx.Queue()
        self.procs: dict[str, BaseProcess] = {}
        self.pending: list[str] = []
        self.latest: dict[str, dict[str, Any]] = {}
        self.lock = threading.Lock()
        self.stopped = threading.Event()
        settings.runs_dir.mkdir(parents=True, exist_ok=True)
        self._recover()
        self._threads = [threading.Thread(target=self._listen, daemon=True),
                         threading.Thread(target=self._dispatch, daemon=True)]
        for t in self._threads:
            t.start()

    # -- state ---------------------------------------------------------------------------------

    def folder(self, run_id: str) -> Path:
        try:
            uuid.UUID(run_id)
        except ValueError:
            raise RunNotFound(f"no run '{run_id}' (run ids are UUIDs; list them at /api/v1/runs)") from None
        d = self.settings.runs_dir / run_id
        if not (d / PLAN_FILE).is_file():
            raise RunNotFound(f"no run '{run_id}' on this server (list them at /api/v1/runs)")
        return d

    def state(self, run_id: str) -> dict[str, Any]:
        return read_state(self.folder(run_id))

    def ids(self) -> list[str]:
        found = [d for d in self.settings.runs_dir.iterdir() if (d / PLAN_FILE).is_file()]
        return [d.name for d in sorted(found, key=lambda d: read_state(d).get("created", 0))]

    def progress(self, run_id: str) -> list[dict[str, Any]]:
        path = self.folder(run_id) / PROGRESS_FILE
        if not path.is_file():
            return []
        return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]

    def _recover(self) -> None:
        for d in sorted(self.settings.runs_dir.iterdir()):
            st = read_state(d)
            if st.get("status") == "running":
                write_state(d, status="interrupted", error="the server stopped while this run was running; re-run it")
            elif st.get("status") == "queued":
                self.pending.append(d.name)

    # -- actions -------------------------------------------------------------------------------

    def submit(self, plan: Plan, *, rerun_of: str | None = None) -> str:
        run_id = str(uuid.uuid4())
        d = self.settings.runs_dir / run_id
        d.mkdir(parents=True)
        (d / PLAN_FILE).write_text(plan.to_yaml(), encoding="utf-8")
        write_state(d, status="queued", created=time.time(), rerun_of=rerun_of)
        with self.lock:
            self.pending.append(run_id)
        return run_id

    def cancel(self, run_id: str) -> dict[str, Any]:
        d = self.folder(run_id)
        with self.lock:
            if run_id in self.pending:
                self.pending.remove(run_id)
            proc = self.procs.pop(run_id, None)
        if proc is not None and proc.is_alive():
            proc.terminate()
            proc.join(10)
        st = read_state(d)
        if st.get("status") in TERMINAL:
            return st
        from aisec.store import open_store

        with contextlib.suppress(Exception):  # stopped before its first check ended: nothing in the store
            open_store(self.settings.store_url).finish_run(run_id, status="aborted", error="cancelled in aisec serve")
        return write_state(d, status="cancelled", finished=time.time())

    def rerun(self, run_id: str) -> str:
        plan = Plan.from_yaml(self.folder(run_id) / PLAN_FILE)
        return self.submit(plan, rerun_of=run_id)

    def close(self) -> None:
        self.stopped.set()
        with self.lock:
            procs = list(self.procs.items())
        for rid, p in procs:
            if p.is_alive():
                p.terminate()
                p.join(10)
                d = self.settings.runs_dir / rid
                if read_state(d).get("status") not in TERMINAL:  # a worker still exiting after its run finished
                    write_state(d, status="interrupted", error="the server stopped")

    # -- threads -------------------------------------------------------------------------------

    def _dispatch(self) -> None:
        while not self.stopped.wait(0.2):
            with self.lock:
                for rid, p in list(self.procs.items()):
                    if not p.is_alive():
                        p.join()
                        del self.procs[rid]
                        if read_state(self.settings.runs_dir / rid).get("status") not in TERMINAL:
                            write_state(self.settings.runs_dir / rid, status="failed",
                                        error=f"worker process exited with code {p.exitcode}")
                while self.pending and len(self.procs) < self.settings.max_workers:
                    rid = self.pending.pop(0)
                    d = self.settings.runs_dir / rid
                    write_state(d, status="running", started=time.time())
                    p = self.ctx.Process(target=run_in_worker, args=(str(d), rid, self.settings.store_url, self.queue),
                                         daemon=True)
                    p.start()
                    self.procs[rid] = p

    def _listen(self) -> None:
        while not self.stopped.is_set():
            try:
                rid, event = self.queue.get(timeout=0.5)
            except Exception:
                continue
            self.latest.setdefault(rid, {}).update(event)


def adopt(settings: ServeSettings, out_dir: Path, plan: Plan, run_id: str) -> str:
    """Show a run made outside the server (``aisec demo --serve``) in its UI: its report folder is copied into
    ``<work_dir>/runs/<run_id>/out`` and it is listed as complete; re-running it runs ``plan`` in a worker."""
    import shutil

    from aisec.web.worker import OUT

    uuid.UUID(run_id)  # the server's run ids are the store's UUIDs
    d = settings.runs_dir / run_id
    d.mkdir(parents=True, exist_ok=True)
    shutil.copytree(out_dir, d / OUT, dirs_exist_ok=True)
    (d / PLAN_FILE).write_text(plan.to_yaml(), encoding="utf-8")
    now = time.time()
    write_state(d, status="complete", created=now, started=now, finished=now, adopted_from=str(out_dir))
    return run_id
