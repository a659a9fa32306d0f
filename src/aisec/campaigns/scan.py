"""Counterfit-style scan: run attacks over a parameter grid on *all* samples and summarise.

Counterfit's ``scan`` prints one row per attack: runs, success %, best score, best parameters,
time and queries (min/avg/max). Here a *run* is one attack with one parameter set over every
sample, so the success % is over samples (not over one sample's retries, as in Counterfit).

- ``success_pct``: successes / clean-correct samples, pooled over the attack's runs.
- ``best_score``: the highest per-run success rate; ``best_params`` the run that reached it
  (ties go to the smaller median perturbation, then to fewer queries).
- ``seconds``: wall time per run; ``queries``: per *sample*, all runs pooled (black-box attacks
  report exact per-sample counts; other attacks are charged their total evenly).
- ``constraints``: tabular constraints every run keeps (see :mod:`aisec.core.constraints`); each
  run records how many constraint violations its adversarial examples hold (0 by construction).

A scan is a run like any other: :func:`run_scan` opens one through :mod:`aisec.api`, and
:class:`ScanRecorder` turns it into one ``scan`` :class:`~aisec.core.check.Result` that grows by one
``robustness.attack_success_rate`` measurement (and one per-sample table) per finished attack run.
Each is recorded through :func:`aisec.api.record_result` as the run ends, so a scan's evidence,
``samples/``, ``result.json``, store records and ``report.html``/``report.md`` are those of every other
runner; ``scan.json`` (the Counterfit summary) is rewritten next to them after every run.

The ``aisec scan`` command (:mod:`aisec.cli.scan`) wraps :func:`run_scan` with loading, progress bars,
a rich table and the policy gate.

>>> summary = scan(target, x, y, {"square": {"eps": [0.05, 0.1]}, "hopskipjump": {"max_queries": [500]}})
>>> print(summary.render())
>>> scanned = run_scan(target, data, x, y, {"square": {"eps": [0.1]}}, out="aisec-scan")  # + evidence, report
"""

from __future__ import annotations

import itertools
import json
import random
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from aisec.api import finish_run, record_result, start_run
from aisec.attacks.base import run_attack
from aisec.attacks.evasion import recording
from aisec.core.check import Result, Summary
from aisec.core.constraints import TabularConstraints
from aisec.core.dataset import Dataset
from aisec.core.errors import ConfigError
from aisec.core.evidence import Evidence, Measurement
from aisec.core.progress import Progress, no_progress
from aisec.core.registry import get_attack
from aisec.core.run import Run
from aisec.core.stats import wilson
from aisec.core.target import Target

CHECK = "scan"  # the result's check name: its evidence's ``check``, its report section, its samples/ prefix
METRIC = "robustness.attack_success_rate"
THREATS = ("AML.T0043.001", "AML.T0015")  # black-box evasion: craft adversarial data, evade the model


@dataclass
class ScanRun:
    attack: str
    params: dict[str, Any]
    samples: int
    eligible: int
    successes: int
    seconds: float
    queries: torch.Tensor  # per sample, long
    median_distance: float
    error: str | None = None
    violations: int = 0  # constraint violations in the returned adversarial examples
    # per sample (None for a failed run): the attack's success, whether the clean input was classified
    # correctly, and the perturbation's size in the attack's norm
    success: torch.Tensor | None = None
    clean_correct: torch.Tensor | None = None
    distance: torch.Tensor | None = None

    @property
    def success_rate(self) -> float:
        return self.successes / self.eligible if self.eligible else 0.0

    def as_dict(self) -> dict[str, Any]:
        q = self.queries.float()
        return {
            "attack": self.attack, "params": self.params, "samples": self.samples, "eligible": self.eligible,
            "successes": self.successes, "success_rate": self.success_rate, "seconds": self.seconds,
            "queries_min": int(q.min()) if q.numel() else 0, "queries_avg": float(q.mean()) if q.numel() else 0.0,
            "queries_max": int(q.max()) if q.numel() else 0, "queries_total": int(self.queries.sum()),
            "median_distance": None if self.median_distance != self.median_distance else self.median_distance,
            "violations": self.violations, "error": self.error,
        }


@dataclass
class ScanRow:
    attack: str
    runs: int
    success_pct: float
    best_score: float
    best_params: dict[str, Any]
    seconds_min: float
    seconds_avg: float
    seconds_max: float
    queries_min: int
    queries_avg: float
    queries_max: int
    errors: list[str] = field(default_factory=list)
    best_median_distance: float | None = None  # the best run's median perturbation of its successes


@dataclass
class ScanSummary:
    rows: list[ScanRow]
    runs: list[ScanRun]
    planned: int = 0
    stopped: str | None = None  # the error that ended the scan early (stop_on_error)

    @property
    def complete(self) -> bool:
        return self.stopped is None and len(self.runs) == self.planned

    def as_dicts(self) -> list[dict[str, Any]]:
        return [dict(r.__dict__) for r in self.rows]

    def render(self) -> str:
        head = (
            f"{'attack':<14}{'runs':>5}{'success%':>10}{'best':>8}  "
            f"{'time s min/avg/max':<22}{'queries min/avg/max':<24}best params"
        )
        lines = [head, "-" * len(head)]
        for r in self.rows:
            t = f"{r.seconds_min:.2f}/{r.seconds_avg:.2f}/{r.seconds_max:.2f}"
            q = f"{r.queries_min}/{r.queries_avg:.0f}/{r.queries_max}"
            lines.append(
                f"{r.attack:<14}{r.runs:>5}{100 * r.success_pct:>9.1f}%{100 * r.best_score:>7.1f}%  {t:<22}{q:<24}"
                f"{r.best_params}"
            )
        return "\n".join(lines)


def expand_grid(grid: dict[str, Any]) -> list[dict[str, Any]]:
    """Cartesian product of a parameter grid; scalars are fixed values."""
    keys = sorted(grid)
    values = [v if isinstance(v, list | tuple) else [v] for v in (grid[k] for k in keys)]
    return [dict(zip(keys, combo, strict=True)) for combo in itertools.product(*values)]


def scan(
    target: Target,
    x: torch.Tensor,
    y: torch.Tensor,
    attacks: dict[str, dict[str, Any]],
    *,
    max_runs: int | None = None,
    seed: int = 0,
    batch_size: int = 1024,
    progress: Progress = no_progress,
    constraints: TabularConstraints | None = None,
    on_run: Callable[[ScanRun], None] | None = None,
    stop_on_error: bool = False,
) -> ScanSummary:
    """Run each attack over its grid (at most ``max_runs`` randomly drawn parameter sets each).

    A run that fails (e.g. the target's budget is spent, an endpoint breaks) is recorded with its
    error and the scan goes on — or, with ``stop_on_error``, ends there (``summary.stopped``); the
    runs completed before it are kept either way. ``on_run`` sees every run as it ends (the CLI
    writes results there, so a crash loses nothing finished). ``constraints`` are checked against
    ``x`` before anything runs and kept by every attack.
    """
    if not attacks:
        raise ConfigError("scan needs at least one attack")
    rng = random.Random(seed)
    runs: list[ScanRun] = []
    plans: list[tuple[str, dict[str, Any]]] = []
    for name, grid in attacks.items():
        get_attack(name)
        combos = expand_grid(grid or {})
        if max_runs is not None and len(combos) > max_runs:
            combos = rng.sample(combos, max_runs)
        plans.extend((name, c) for c in combos)
    n = int(x.shape[0])
    if constraints is not None:
        constraints.check_data(x, what="scan data")
    stopped: str | None = None
    for k, (name, params) in enumerate(plans):
        q0 = target.queries
        t0 = time.perf_counter()
        try:
            with recording() as sink:
                out = run_attack(name, target, x, y, params, batch_size=batch_size, seed=seed,
                                 constraints=constraints)
        except Exception as exc:  # recorded per run; the scan keeps what it has
            failed = ScanRun(name, params, n, 0, 0, time.perf_counter() - t0,
                             torch.zeros(0, dtype=torch.long), float("nan"), f"{type(exc).__name__}: {exc}")
            runs.append(failed)
            if on_run is not None:
                on_run(failed)
            progress("scan", k + 1, len(plans))
            if stop_on_error:
                stopped = failed.error
                break
            continue
        secs = time.perf_counter() - t0
        if sink and sum(int(s.numel()) for s in sink) == n:
            per = torch.cat(sink) + 2  # + clean and adversarial scoring queries
        else:
            total = target.queries - q0
            per = torch.full((n,), total // max(n, 1), dtype=torch.long)
        eligible = int(out.clean_correct.sum())
        succ = int((out.success & out.clean_correct).sum())
        dist = out.distance[out.success]
        med = float(dist.median()) if dist.numel() else float("nan")
        viol = constraints.violations(out.x_adv, x.cpu())["total"] if constraints is not None else 0
        runs.append(ScanRun(name, params, n, eligible, succ, secs, per, med, violations=viol,
                            success=out.success.cpu(), clean_correct=out.clean_correct.cpu(),
                            distance=out.distance.cpu()))
        if on_run is not None:
            on_run(runs[-1])
        progress("scan", k + 1, len(plans))
    return ScanSummary(_rows(runs), runs, planned=len(plans), stopped=stopped)


def _rows(runs: list[ScanRun]) -> list[ScanRow]:
    rows = []
    for name in dict.fromkeys(r.attack for r in runs):
        mine = [r for r in runs if r.attack == name]
        ok = [r for r in mine if r.error is None]
        errors = [r.error for r in mine if r.error]
        if not ok:
            rows.append(ScanRow(name, len(mine), 0.0, 0.0, {}, 0, 0, 0, 0, 0.0, 0, errors))
            continue
        best = min(ok, key=lambda r: (-r.success_rate, _nan_last(r.median_distance), int(r.queries.sum())))
        secs = [r.seconds for r in ok]
        q = torch.cat([r.queries for r in ok]).float()
        eligible = sum(r.eligible for r in ok)
        rows.append(
            ScanRow(
                attack=name,
                runs=len(mine),
                success_pct=sum(r.successes for r in ok) / eligible if eligible else 0.0,
                best_score=best.success_rate,
                best_params=best.params,
                seconds_min=min(secs),
                seconds_avg=sum(secs) / len(secs),
                seconds_max=max(secs),
                queries_min=int(q.min()) if q.numel() else 0,
                queries_avg=float(q.mean()) if q.numel() else 0.0,
                queries_max=int(q.max()) if q.numel() else 0,
                errors=errors,
                best_median_distance=None if best.median_distance != best.median_distance else best.median_distance,
            )
        )
    return rows


def _nan_last(v: float) -> float:
    return float("inf") if v != v else v


@dataclass
class ScannedRun:
    """A finished (or stopped) scan recorded as a run: the run, the scan's summary and ``scan.json``'s content."""

    run: Run
    summary: ScanSummary
    document: dict[str, Any]


class ScanRecorder:
    """Records a scan as one ``scan`` result of ``run`` through the api's evidence path, run by run.

    Each finished attack run adds one ``robustness.attack_success_rate`` measurement (Wilson 95% CI over
    the clean-correct samples; attack, parameters, queries, seconds, median distance and constraint
    violations as parameters) and one per-sample table, recorded at once by :func:`aisec.api.record_result`
    (``evidence.jsonl``, ``samples/``, ``result.json``, ``on_evidence``); ``scan.json`` is then rewritten,
    ``"complete": false`` until :meth:`finish`. A failed run is kept in the summary and as a warning.
    """

    def __init__(self, run: Run, y: torch.Tensor, grid: dict[str, dict[str, Any]], *,
                 constraints: TabularConstraints | None = None,
                 on_evidence: Callable[[list[Evidence]], None] | None = None) -> None:
        spec, info = run.target.spec, run.data.info
        self.run = run
        self.y = y.detach().cpu()
        self.constraints = constraints
        self.on_evidence = on_evidence
        self.runs: list[dict[str, Any]] = []
        self._scan_runs: list[ScanRun] = []
        n = int(self.y.shape[0])
        self.header: dict[str, Any] = {
            "run_id": run.run_id, "target": spec.name, "target_sha256": spec.digest, "access": spec.access.value,
            "data": info.name, "data_digest": info.digest, "samples": n, "seed": run.seed, "grid": grid,
            "constraints": None if constraints is None else {
                "source": constraints.source, "sha256": constraints.digest(), "file": "constraints.yaml"},
        }
        self.result = Result(
            check=CHECK, measurements=[], threats=THREATS,
            params={"grid": grid, "samples": n, "seed": run.seed,
                    "constraints_sha256": constraints.digest() if constraints is not None else None},
        )
        self._update(complete=False, stopped=None, planned=None)
        if run.out is not None:
            _clear_previous_scan(run.out)
            if constraints is not None:
                constraints.dump(run.out / "constraints.yaml")
            self._write_document({**self.header, "complete": False, "stopped": None, "rows": [], "runs": []})

    def on_run(self, scan_run: ScanRun) -> None:
        """Record one ended attack run: its evidence and table (when it finished), the summary, ``scan.json``."""
        d = scan_run.as_dict()
        self.runs.append(d)
        self._scan_runs.append(scan_run)
        new: list[Measurement] = []
        if scan_run.error is None:
            key = f"run{len(self.runs):02d}-{scan_run.attack}"
            self.result.tables[key] = self._table(scan_run)
            new.append(self._measurement(scan_run, d, key))
            self.result.measurements.append(new[0])
        else:
            self.result.warnings.append(f"{scan_run.attack} {_params_text(scan_run.params)} failed: {scan_run.error}")
        self._update(complete=False, stopped=None, planned=None)
        record_result(self.run, self.result, measurements=new, on_evidence=self.on_evidence)
        self._write_document({**self.header, "complete": False, "stopped": None, "rows": [], "runs": self.runs})

    def document(self, summary: ScanSummary) -> dict[str, Any]:
        """``scan.json``'s content for the ended scan."""
        return {**self.header, "complete": summary.complete, "stopped": summary.stopped, "planned": summary.planned,
                "target_queries": self.run.target.queries, "rows": summary.as_dicts(), "runs": self.runs}

    def finish(self, summary: ScanSummary, *, seconds: float = 0.0) -> ScannedRun:
        """End the run: final summary and ``scan.json``; a stopped scan is an error of the run; judge, report."""
        self._update(complete=summary.complete, stopped=summary.stopped, planned=summary.planned, rows=summary.rows)
        if not summary.complete:
            self.run.errors.append(f"scan stopped at run {len(summary.runs)} of {summary.planned}: {summary.stopped}")
        self.run.seconds = seconds
        self.result.seconds = seconds
        doc = self.document(summary)
        self._write_document(doc)
        finish_run(self.run)
        return ScannedRun(run=self.run, summary=summary, document=doc)

    def _measurement(self, r: ScanRun, d: dict[str, Any], key: str) -> Measurement:
        params: dict[str, Any] = {
            "mode": "scan", "attack": r.attack, **r.params, "queries_min": d["queries_min"],
            "queries_avg": d["queries_avg"], "queries_max": d["queries_max"], "seconds": d["seconds"],
            "median_distance": d["median_distance"], "constraint_violations": r.violations}
        if self.constraints is not None:
            params["constraints_sha256"] = self.constraints.digest()
        return Measurement(metric=METRIC, value=r.success_rate, unit="fraction", higher_is_better=False,
                           interval=wilson(r.successes, r.eligible), sample_count=r.eligible, parameters=params,
                           raw_key=key)

    def _table(self, r: ScanRun) -> dict[str, np.ndarray]:
        n = r.samples
        nan = np.full(n, np.nan)
        false = np.zeros(n, dtype=bool)

        def arr(t: torch.Tensor | None, fill: np.ndarray) -> np.ndarray:
            return t.detach().cpu().numpy() if t is not None and int(t.numel()) == n else fill

        return {
            "index": np.arange(n), "label": self.y.numpy()[:n],
            "clean_correct": arr(r.clean_correct, false), "success": arr(r.success, false),
            "distance": arr(r.distance.float() if r.distance is not None else None, nan),
            "queries": arr(r.queries, np.zeros(n, dtype=np.int64)),
        }

    def _update(self, *, complete: bool, stopped: str | None, planned: int | None,
                rows: list[ScanRow] | None = None) -> None:
        rows = _rows(self._scan_runs) if rows is None else rows
        self.result.summary = Summary.of({
            "target": self.header["target"], "samples": self.header["samples"], "grid": self.header["grid"],
            "constraints": self.header["constraints"], "complete": complete, "stopped": stopped,
            "planned": planned, "rows": [dict(r.__dict__) for r in rows], "runs": list(self.runs),
        })

    def _write_document(self, doc: dict[str, Any]) -> None:
        out = self.run.out
        if out is None:
            return
        tmp = out / "scan.json.tmp"
        tmp.write_text(json.dumps(doc, indent=2, default=str), encoding="utf-8")
        tmp.replace(out / "scan.json")


def run_scan(
    target: Target,
    data: Dataset,
    x: torch.Tensor,
    y: torch.Tensor,
    attacks: dict[str, dict[str, Any]],
    *,
    out: str | Path | None = None,
    max_runs: int | None = None,
    seed: int = 0,
    batch_size: int = 1024,
    progress: Progress = no_progress,
    constraints: TabularConstraints | None = None,
    on_evidence: Callable[[list[Evidence]], None] | None = None,
    policy: Any = None,
    stop_on_error: bool = True,
    overwrite: bool = False,
) -> ScannedRun:
    """:func:`scan` ``(x, y)`` (samples of ``data``) as a run: evidence, ``samples/``, ``result.json``,
    ``scan.json`` and the reports written to ``out`` as :func:`aisec.api.assess` writes them.

    Every finished attack run's evidence is written (and handed to ``on_evidence``, e.g. an evidence store's
    recorder) as it ends; with ``stop_on_error`` (the default) a failed run ends the scan, keeps what finished
    and is recorded as an error of the run. The run is judged against ``policy`` (default: Clouditor's
    thresholds) once, at the end. An ``out`` that holds a run is refused unless ``overwrite``.
    """
    if not attacks:
        raise ConfigError("scan needs at least one attack")
    for name in attacks:  # unknown attacks are refused before anything is written
        get_attack(name)
    run = start_run(target, data, seed=seed, out=out, policy=policy, existing="overwrite" if overwrite else "refuse")
    recorder = ScanRecorder(run, y, attacks, constraints=constraints, on_evidence=on_evidence)
    t0 = time.perf_counter()
    summary = scan(target, x, y, attacks, max_runs=max_runs, seed=seed, batch_size=batch_size, progress=progress,
                   constraints=constraints, on_run=recorder.on_run, stop_on_error=stop_on_error)
    return recorder.finish(summary, seconds=time.perf_counter() - t0)


def _clear_previous_scan(out: Path) -> None:
    """One scan per folder: an earlier scan's evidence and per-sample tables are not carried into this one."""
    (out / "evidence.jsonl").unlink(missing_ok=True)
    samples = out / "samples"
    if samples.is_dir():
        for f in samples.glob(f"{CHECK}-*.csv"):
            f.unlink()


def _params_text(params: dict[str, Any]) -> str:
    return ", ".join(f"{k}={v:g}" if isinstance(v, float) else f"{k}={v}" for k, v in params.items()) or "-"
