"""Residual risk: per threat of the threat model, what was measured, the result and its CI, how far to trust
it, what it cost the attacker, the mitigations in place or recommended, and what was not tested and why.

Read from a finished run whose plan came from a threat model (:func:`aisec.threats.planner.plan_for`);
the report prints it as a table (HTML and Markdown) and ``result.json`` keeps it as ``residual_risk``.
The attacker's cost is what the checks recorded: queries per attacked input and compute seconds (evasion,
extraction), the share of training data poisoned (poisoning), turned into wall-clock time at the API's
rate limit and into money at the threat model's price per query when the file gives them.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any, Literal

from pydantic import BaseModel, Field

from aisec.threats.kb import ThreatEntry, load_kb, load_standards, mitigation_name

if TYPE_CHECKING:
    from aisec.core.check import Result
    from aisec.core.run import Run

Status = Literal["measured", "not tested", "out of scope"]


class RiskRow(BaseModel):
    """One threat of the threat model, as the run leaves it."""

    threat: str
    name: str
    family: str
    status: Status
    measured: str | None = None
    result: str | None = None
    metric: str | None = None
    value: float | None = None
    ci: tuple[float, float] | None = None
    n: int | None = None
    reliability: str | None = None
    cost: str | None = None
    queries_per_input: float | None = None
    seconds: float | None = None
    poison_share: float | None = None
    in_place: list[str] = Field(default_factory=list)
    recommended: list[str] = Field(default_factory=list)
    why_not: str | None = None
    rationale: list[str] = Field(default_factory=list)
    standards: list[str] = Field(default_factory=list)
    """Clauses this threat speaks to (``standards.yaml``, each row sourced): ``EU AI Act Art. 15 15(5) ...``."""


class ResidualRisk(BaseModel):
    threat_model: str
    goals: list[str]
    knowledge: str
    access: str
    rows: list[RiskRow]
    rationale: list[str] = Field(default_factory=list)
    """Why the plan chose what it ran, one line per choice (``check: choice — because [threat ids]``)."""


def residual_risk(run: Run) -> ResidualRisk | None:
    """The residual risk of ``run`` against the threat model in its plan (None for a run without one)."""
    plan = run.plan
    if plan is None or not plan.threat_model:
        return None
    tm: dict[str, Any] = plan.threat_model
    system, attacker = tm.get("system", {}), tm.get("attacker", {})
    kb = load_kb()
    rationale = [r.model_dump() for r in plan.rationale]
    out_of_scope = {o["threat"]: o["why"] for o in tm.get("out_of_scope", [])}
    ids: dict[str, None] = {}
    for r in rationale:
        ids.update(dict.fromkeys(r["threats"]))
    for goal in attacker.get("goals", []):
        for g in kb.for_goal(goal):
            if attacker.get("knowledge") in g.knowledge and system.get("access") in g.access \
                    and system.get("modality") in g.modality:
                ids[g.id] = None
    ids.update(dict.fromkeys(out_of_scope))
    results = {r.check: r for r in run.results}
    defence = plan.model.defence
    rows = []
    for tid in ids:
        t = kb.threat(tid)
        if t is None:
            continue
        row = RiskRow(threat=t.id, name=t.name, family=t.family, status="not tested",
                      rationale=[f"{r['choice']} <- {r['because']}" for r in rationale if t.id in r["threats"]])
        row.in_place, row.recommended = _mitigations(t, system, defence)
        row.standards = [f"{s.standard} {s.clause}" for s in load_standards().rows if t.id in s.threats]
        if t.id in out_of_scope:
            row.status, row.why_not = "out of scope", out_of_scope[t.id]
        elif not t.checks:
            row.why_not = t.untested or "aisec has no check for it"
        else:
            ran = [results[c] for c in t.checks if c in results]
            if not ran:
                skipped = [r["because"] for r in rationale if t.id in r["threats"] and r["choice"] == "not tested"]
                row.why_not = "; ".join(skipped) or f"the plan ran none of its checks ({', '.join(t.checks)})"
            else:
                _measure(row, t, ran[0], tm)
        rows.append(row)
    return ResidualRisk(threat_model=str(tm.get("name", "")), goals=list(attacker.get("goals", [])),
                        knowledge=str(attacker.get("knowledge", "")), access=str(system.get("access", "")),
                        rows=rows, rationale=[_line(r) for r in rationale])


def _line(r: dict[str, Any]) -> str:
    ids = f" [{', '.join(r['threats'])}]" if r["threats"] else ""
    return f"{r['check'] + ': ' if r['check'] else ''}{r['choice']} — {r['because']}{ids}"


def _mitigations(t: ThreatEntry, system: dict[str, Any], defence: str | None) -> tuple[list[str], list[str]]:
    """(in place, recommended): the threat's ATLAS mitigations, split by what the system already does."""
    trained = [d for d in system.get("defences", []) if d.startswith("training:")]
    pre = defence.split(":", 1)[0] if defence else None
    in_place, recommended = [], []
    for m in t.mitigations:
        label = f"{m.id} {mitigation_name(m.id)}"
        have = [d for d in m.defences if (pre and d == f"defence:{pre}") or d in trained]
        if have:
            named = [defence if d.startswith("defence:") and defence else d for d in have]
            in_place.append(f"{label} ({', '.join(named)})")
        elif m.id == "AML.M0004" and system.get("rate_limit"):
            in_place.append(f"{label} (rate limit {system['rate_limit']:g} queries/min)")
        elif m.id == "AML.M0002" and system.get("access") == "labels":
            in_place.append(f"{label} (labels only)")
        else:
            recommended.append(label + (f" (aisec: {', '.join(m.defences)})" if m.defences else ""))
    return in_place, recommended


def _measure(row: RiskRow, t: ThreatEntry, result: Result, tm: dict[str, Any]) -> None:
    row.status = "measured"
    summary = result.summary.to_json()
    if result.check == "robustness":
        _robustness(row, t, result, summary, tm)
    elif result.check == "poisoning":
        _poisoning(row, result, tm)
    elif result.check == "privacy":
        _best(row, result, "privacy.mia_auc", highest=True, what="membership inference ROC AUC")
        row.queries_per_input = 1.0
        row.cost = "one query per record tested"
    elif result.check == "extraction":
        _best(row, result, "extraction.fidelity", highest=True, what="surrogate agreement with the model")
        q = next((m.value for m in result.measurements if m.metric == "extraction.queries"), None)
        row.seconds = result.seconds
        if q is not None:
            row.cost = _money(f"{q:,.0f} queries in all, {result.seconds:.1f} s compute", q, tm)
            row.result = f"an attacker with {q:,.0f} queries gets a copy that agrees on {row.value:.0%}" \
                if row.value is not None else row.result
    else:
        metric = next((m for m in t.metrics if any(x.metric == m for x in result.measurements)), None)
        if metric is not None:
            _best(row, result, metric, highest=True, what=metric)
    if row.measured is None and row.status == "measured":
        row.measured = f"{result.check} check"


def _best(row: RiskRow, result: Result, metric: str, *, highest: bool, what: str) -> None:
    ms = [m for m in result.measurements if m.metric == metric]
    if not ms:
        row.why_not = f"the {result.check} check recorded no {metric}"
        return
    m = max(ms, key=lambda x: x.value) if highest else min(ms, key=lambda x: x.value)
    row.metric, row.value, row.n = metric, m.value, m.sample_count
    row.ci = (m.interval.low, m.interval.high) if m.interval else None
    by = m.parameters.get("attack")
    row.measured = f"{result.check}" + (f": {by}" if by else "") + f" on {m.sample_count} samples"
    row.result = f"{what} {m.value:.3g}" + (f" (95% CI {row.ci[0]:.3g}-{row.ci[1]:.3g})" if row.ci else "")


def _robustness(row: RiskRow, t: ThreatEntry, result: Result, summary: dict[str, Any], tm: dict[str, Any]) -> None:
    caps = tm.get("attacker", {}).get("capabilities", {})
    budget = (caps.get("perturbation") or {}).get("budget")
    curves = [c for c in summary.get("curves", []) if c.get("attack") in t.attacks]
    if not curves:
        row.status = "not tested"
        row.why_not = f"the plan ran none of its attacks ({', '.join(t.attacks)}); add one to the plan to test it"
        return
    n = int(summary.get("samples") or 0) or None

    def point(c: dict[str, Any]) -> dict[str, Any]:
        pts = c.get("points") or [{}]
        if budget is None:
            return dict(pts[-1])
        return dict(min(pts, key=lambda p: abs(float(p.get("eps", 0.0)) - budget)))

    worst = min(curves, key=lambda c: point(c).get("robust_accuracy", 1.0))
    p = point(worst)
    ra, sr = float(p.get("robust_accuracy", math.nan)), float(p.get("success_rate", math.nan))
    ci = p.get("ci") or {}
    row.metric, row.value, row.n = "robustness.robust_accuracy", ra, n
    row.ci = (float(ci["low"]), float(ci["high"])) if "low" in ci else None
    targeted = " (targeted)" if worst.get("targeted") else ""
    row.measured = (f"{worst['attack']}{targeted}, {worst['norm']} eps {float(p.get('eps', 0)):g}, "
                    f"{n or '?'} samples (strongest of {', '.join(dict.fromkeys(c['attack'] for c in curves))})")
    row.result = (f"robust accuracy {ra:.0%}" + (f" (95% CI {row.ci[0]:.0%}-{row.ci[1]:.0%})" if row.ci else "")
                  + f"; the attack succeeds on {sr:.0%} of the correctly classified inputs")
    rel = summary.get("reliability") or {}
    if rel:
        flags = ", ".join(dict.fromkeys(f["id"] for f in rel.get("flags", [])))
        row.reliability = "reliable (no flag raised)" if rel.get("reliable") else f"NOT RELIABLE ({flags})"
    queries, seconds = worst.get("queries"), worst.get("seconds")
    row.seconds = float(seconds) if seconds is not None else None
    if queries and n:
        # a fixed-eps attack runs once per eps of the grid, a minimum-norm one once: the curve's queries are
        # the sum over its runs, and the attacker makes one run, at the budget
        runs = len(worst.get("points") or [1]) if worst.get("kind") == "fixed_eps" else 1
        qpi = float(queries) / (n * runs)
        row.queries_per_input = qpi
        budget_q = (worst.get("params") or {}).get("max_queries")
        who = f"an attacker with {int(budget_q):,} queries per input" if budget_q else "an attacker"
        row.result += f"; {who} succeeds on {sr:.0%}"
        row.cost = _money(f"{qpi:,.0f} queries per input on average, {row.seconds or 0:.1f} s compute for {n} inputs",
                          qpi, tm, per="per input")
    elif row.seconds is not None:
        row.cost = f"{row.seconds:.1f} s compute for {n} inputs (white-box: no queries to the system)"


def _poisoning(row: RiskRow, result: Result, tm: dict[str, Any]) -> None:
    share = (tm.get("attacker", {}).get("capabilities", {}) or {}).get("training_data_share")
    asr = [m for m in result.measurements if m.metric == "poisoning.attack_success_rate"]
    rate_key = next((k for k in ("rate", "poison_rate", "poisoning_rate") if asr and k in asr[0].parameters), None)
    if not asr or rate_key is None:
        _best(row, result, "poisoning.resilience", highest=False, what="resilience")
        return
    within = [m for m in asr if share is None or float(m.parameters[rate_key]) <= share + 1e-12] or asr
    m = max(within, key=lambda x: (float(x.parameters[rate_key]), x.value))
    rate = float(m.parameters[rate_key])
    row.metric, row.value, row.n = m.metric, m.value, m.sample_count
    row.ci = (m.interval.low, m.interval.high) if m.interval else None
    attack = m.parameters.get("attack", "backdoor")
    row.measured = f"poisoning: {attack} at rate {rate:g}, {m.sample_count} triggered inputs"
    row.result = (f"backdoor attack success {m.value:.0%}" + (f" (95% CI {row.ci[0]:.0%}-{row.ci[1]:.0%})" if row.ci
                                                               else "") + f" with {rate:.1%} of the training data")
    least = next((x for x in result.measurements if x.metric == "poisoning.min_poison_rate"), None)
    reached = least is not None and bool(least.parameters.get("reached")) and math.isfinite(least.value)
    row.poison_share = least.value if least is not None and reached else None
    row.seconds = result.seconds
    row.cost = (f"the backdoor takes hold at {row.poison_share:.1%} of the training data" if row.poison_share
                is not None else f"no swept rate up to {rate:.1%} reached the success threshold")


def _money(text: str, queries: float, tm: dict[str, Any], *, per: str = "") -> str:
    """``text`` plus the queries' wall-clock time at the rate limit and their price, when the file gives them."""
    system, costs = tm.get("system", {}), tm.get("attacker", {}).get("costs", {}) or {}
    extra = []
    if system.get("rate_limit"):
        minutes = queries / float(system["rate_limit"])
        extra.append(f"{minutes:,.1f} min{' ' + per if per else ''} at {system['rate_limit']:g} queries/min")
    if costs.get("per_query") is not None:
        extra.append(f"{queries * float(costs['per_query']):,.2f} {costs.get('currency', 'EUR')}"
                     + (f" {per}" if per else ""))
    return text + (f" ({'; '.join(extra)})" if extra else "")

