"""Compare two runs metric by metric: the difference, its interval, and a paired test where samples are shared.

Two records are the same measurement when check, metric and parameters agree (the defence, input scaling
and values derived from other metrics are left out of that key, so an undefended model and its defended
copy compare). For each shared measurement:

- **unpaired**: the difference ``B - A`` and its 95 % interval by MOVER (Zou & Donner 2008; for two Wilson
  intervals this is Newcombe's 1998 method 10), from each record's own interval; significant when the
  interval excludes 0. Records without an interval get a difference only.
- **paired**, when both runs measured the same samples (same dataset digest; per-sample tables joined on
  sample index and label): McNemar's exact test on the per-sample verdicts (``scipy.stats.binomtest`` on
  the discordant pairs). A verdict column is used only if it reproduces the record's value exactly (robust
  = clean-correct and not fooled), so a table that does not belong to its record is never paired.

>>> c = compare_runs(load_run("runs/release-1.2"), load_run("runs/release-1.3"))
>>> [d for d in c.diffs if d.significant]
"""

from __future__ import annotations

import csv
import io
import json
import math
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from scipy.stats import binomtest

from aisec.core.errors import AisecError, DataError
from aisec.core.evidence import Evidence, read_jsonl

#: parameters that do not make two records different measurements (they describe the system or are derived)
IGNORED_PARAMS = frozenset({"defence", "input_scaling", "clean_accuracy_of_system", "source_metric", "clean_accuracy",
                            "chance", "chance_basis", "flags", "stage_robust", "attacks"})


@dataclass
class LoadedRun:
    """A run's records and a way to read the per-sample tables they point to."""

    run_id: str
    source: str
    records: list[Evidence]
    read: Callable[[str], bytes]
    _tables: dict[str, dict[str, list[str]]] = field(default_factory=dict)

    def table(self, path: str) -> dict[str, list[str]] | None:
        """The CSV at ``path`` (relative to the run) as columns of text, or None if it cannot be read."""
        if path not in self._tables:
            try:
                text = self.read(path).decode("utf-8")
            except (OSError, KeyError, AisecError, UnicodeDecodeError):  # no table: unpaired
                return None
            rows = list(csv.reader(io.StringIO(text)))
            if not rows:
                return None
            head, body = rows[0], rows[1:]
            self._tables[path] = {c: [r[i] if i < len(r) else "" for r in body] for i, c in enumerate(head)}
        return self._tables[path]


def load_run(ref: str | Path, *, store: Any = None) -> LoadedRun:
    """A run from its folder (``evidence.jsonl`` and ``samples/``), else the run of that id in ``store``."""
    p = Path(ref)
    if p.is_dir():
        ev = p / "evidence.jsonl"
        if not ev.is_file():
            raise DataError(f"{p} holds no evidence.jsonl; give a run folder or a run id in the store (--store)")
        records = read_jsonl(ev)
        if not records:
            raise DataError(f"{ev} holds no records")
        return LoadedRun(run_id=records[0].run_id, source=str(p), records=records,
                         read=lambda rel: _inside(p, rel).read_bytes())
    if store is None:
        raise DataError(f"{ref} is not a run folder; to compare stored runs give --store")
    rid = str(ref)
    records = [s.evidence for s in store.query(run_id=rid)]
    if not records:
        raise DataError(f"no run folder {ref} and no records of a run '{rid}' in {store.display_url}")
    return LoadedRun(run_id=rid, source=store.display_url, records=records,
                     read=lambda rel: bytes(store.artifact_bytes(rid, rel)))


def _inside(folder: Path, rel: str) -> Path:
    f = (folder / rel).resolve()
    if not f.is_relative_to(folder.resolve()):
        raise DataError(f"a record points outside its run folder: {rel}")
    return f


@dataclass(frozen=True)
class Paired:
    """McNemar's exact test on the samples both runs scored: ``a_only`` right in A only, ``b_only`` in B only."""

    shared: int
    a_only: int
    b_only: int
    p_value: float

    def significant(self, alpha: float) -> bool:
        return self.p_value < alpha


@dataclass(frozen=True)
class MetricDiff:
    check: str
    metric: str
    parameters: dict[str, Any]
    a: float
    b: float
    low: float | None  # the difference's interval (None: a record has no interval)
    high: float | None
    higher_is_better: bool
    paired: Paired | None = None

    @property
    def diff(self) -> float:
        return self.b - self.a

    def significant(self, alpha: float = 0.05) -> bool | None:
        """Paired test if there is one, else whether the difference's interval excludes 0 (None: neither)."""
        if self.paired is not None:
            return self.paired.significant(alpha)
        if self.low is None or self.high is None:
            return None
        return self.low > 0 or self.high < 0

    def better(self) -> str:
        """``A``, ``B`` or ``=``: which run this metric favours (by its direction)."""
        if self.diff == 0:
            return "="
        return "B" if (self.diff > 0) == self.higher_is_better else "A"


@dataclass
class Comparison:
    a: LoadedRun
    b: LoadedRun
    diffs: list[MetricDiff]
    only_a: list[str]
    only_b: list[str]
    same_data: bool
    alpha: float = 0.05

    def to_json(self) -> dict[str, Any]:
        return {
            "a": {"run_id": self.a.run_id, "source": self.a.source},
            "b": {"run_id": self.b.run_id, "source": self.b.source},
            "same_data": self.same_data, "alpha": self.alpha, "only_a": self.only_a, "only_b": self.only_b,
            "diffs": [{
                "check": d.check, "metric": d.metric, "parameters": d.parameters, "a": d.a, "b": d.b,
                "diff": d.diff, "interval": [d.low, d.high] if d.low is not None else None,
                "significant": d.significant(self.alpha), "better": d.better(),
                "paired": None if d.paired is None else {
                    "shared": d.paired.shared, "a_only": d.paired.a_only, "b_only": d.paired.b_only,
                    "p_value": d.paired.p_value, "test": "McNemar exact (binomial on discordant pairs)"},
            } for d in self.diffs],
        }


def mover_interval(a: float, a_low: float, a_high: float, b: float, b_low: float, b_high: float
                   ) -> tuple[float, float]:
    """The interval of ``b - a`` from each value's own interval (MOVER; Newcombe's method 10 for Wilson)."""
    d = b - a
    low = d - math.sqrt((b - b_low) ** 2 + (a_high - a) ** 2)
    high = d + math.sqrt((b_high - b) ** 2 + (a - a_low) ** 2)
    return low, high


def mcnemar_exact(a_right: np.ndarray, b_right: np.ndarray) -> Paired:
    """McNemar's exact test on paired boolean verdicts (two-sided binomial test on the discordant pairs)."""
    a_right, b_right = np.asarray(a_right, dtype=bool), np.asarray(b_right, dtype=bool)
    a_only = int((a_right & ~b_right).sum())
    b_only = int((~a_right & b_right).sum())
    n = a_only + b_only
    p = float(binomtest(a_only, n, 0.5).pvalue) if n else 1.0
    return Paired(shared=int(a_right.shape[0]), a_only=a_only, b_only=b_only, p_value=min(1.0, p))


def measurement_key(e: Evidence) -> str:
    params = {k: v for k, v in e.parameters.items() if k not in IGNORED_PARAMS}
    return json.dumps([e.check, e.metric, params], sort_keys=True, default=str)


def compare_runs(a: LoadedRun, b: LoadedRun, *, alpha: float = 0.05) -> Comparison:
    """Every measurement both runs hold, with its difference, interval and (on shared samples) McNemar's test."""
    ka = {measurement_key(e): e for e in a.records}
    kb = {measurement_key(e): e for e in b.records}
    same = {e.resource.dataset_digest for e in a.records} == {e.resource.dataset_digest for e in b.records}
    diffs = []
    for key in [k for k in ka if k in kb]:
        ea, eb = ka[key], kb[key]
        low = high = None
        if ea.interval is not None and eb.interval is not None:
            low, high = mover_interval(ea.value, ea.interval.low, ea.interval.high,
                                       eb.value, eb.interval.low, eb.interval.high)
        paired = _paired(a, ea, b, eb) if same else None
        diffs.append(MetricDiff(check=ea.check, metric=ea.metric, parameters={
            k: v for k, v in ea.parameters.items() if k not in IGNORED_PARAMS}, a=ea.value, b=eb.value, low=low,
            high=high, higher_is_better=ea.higher_is_better, paired=paired))
    return Comparison(a=a, b=b, diffs=diffs, only_a=[k for k in ka if k not in kb],
                      only_b=[k for k in kb if k not in ka], same_data=same, alpha=alpha)


def _paired(a: LoadedRun, ea: Evidence, b: LoadedRun, eb: Evidence) -> Paired | None:
    va, vb = _verdicts(a, ea), _verdicts(b, eb)
    if va is None or vb is None:
        return None
    (ia, la, ra), (ib, lb, rb) = va, vb
    pos_b = {int(i): n for n, i in enumerate(ib)}
    pairs = [(n, pos_b[int(i)]) for n, i in enumerate(ia) if int(i) in pos_b and la[n] == lb[pos_b[int(i)]]]
    if not pairs:
        return None
    sa, sb = np.array([p[0] for p in pairs]), np.array([p[1] for p in pairs])
    return mcnemar_exact(ra[sa], rb[sb])


def _verdicts(run: LoadedRun, e: Evidence) -> tuple[np.ndarray, np.ndarray, np.ndarray] | None:
    """(sample index, label, right) for the record's per-sample verdict, if its table has one that reproduces it."""
    if e.raw is None:
        return None
    t = run.table(e.raw.path)
    if t is None or not {"index", "label", "clean_correct"} <= set(t):
        return None
    clean = np.array([c == "1" for c in t["clean_correct"]])
    right: np.ndarray | None = None
    if e.metric.endswith(".clean_accuracy"):
        right = clean
    elif e.metric.endswith("robust_accuracy"):
        col = _fooled_column(t, e)
        if col is not None:
            right = clean & ~np.array([c == "1" for c in t[col]])
    if right is None or right.shape[0] == 0 or e.sample_count != right.shape[0]:
        return None
    if not math.isclose(float(right.mean()), e.value, abs_tol=1e-9):
        return None  # the column does not give the recorded value: not this record's verdicts
    return np.array([int(float(i)) for i in t["index"]]), np.array(t["label"]), right


def _fooled_column(t: dict[str, list[str]], e: Evidence) -> str | None:
    p = e.parameters
    norm, eps = p.get("norm"), p.get("eps")
    if norm is None or not isinstance(eps, (int, float)):
        return None
    end = f"@{eps:g}:fooled"
    if e.metric.endswith("worst_case_robust_accuracy"):
        col = f"worst-{norm}{end}"
        return col if col in t else None
    attack = p.get("attack")
    if attack is None:
        return None
    stem = f"{attack}-{norm}" + ("-targeted" if p.get("targeted") else "")
    if p.get("escalation"):
        col = f"{attack}-{norm}+{p['escalation']}{end}"
        return col if col in t else None
    found = [c for c in t if c.endswith(end) and c.startswith(stem) and "+" not in c
             and (p.get("targeted") or "-targeted" not in c)]
    return found[0] if len(found) == 1 else None
