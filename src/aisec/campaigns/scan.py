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

The ``aisec scan`` command (:mod:`aisec.cli.scan`) wraps this with loading, progress bars, a rich
table, and ``scan.json`` + ``evidence.jsonl`` written after every run.

>>> summary = scan(target, x, y, {"square": {"eps": [0.05, 0.1]}, "hopskipjump": {"max_queries": [500]}})
>>> print(summary.render())
"""

from __future__ import annotations

import itertools
import random
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import torch

from aisec.attacks.base import run_attack
from aisec.attacks.evasion import recording
from aisec.core.constraints import TabularConstraints
from aisec.core.errors import ConfigError
from aisec.core.progress import Progress, no_progress
from aisec.core.registry import get_attack
from aisec.core.target import Target


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
        runs.append(ScanRun(name, params, n, eligible, succ, secs, per, med, violations=viol))
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
