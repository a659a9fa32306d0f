"""One assessment as it runs and after: the plan, the target and data, each check's result, the evidence.

:class:`Run` is the noun every wing downstream of the checks reads (the report, the store, the policy
gate, the CLI's summary); it lives in ``core`` so none of them imports the orchestrator (:mod:`aisec.api`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from aisec.core.artefacts import ArtefactRef
from aisec.core.check import Result, jsonable
from aisec.core.dataset import Dataset
from aisec.core.evidence import Evidence
from aisec.core.plan import Plan
from aisec.core.target import Target


@dataclass
class Run:
    """One assessment: the plan, what each check found, and the evidence written."""

    run_id: str
    plan: Plan | None
    target: Target
    data: Dataset
    results: list[Result] = field(default_factory=list)
    evidence: list[Evidence] = field(default_factory=list)
    out: Path | None = None
    errors: list[str] = field(default_factory=list)
    seconds: float = 0.0
    related: list[Run] = field(default_factory=list)
    seed: int = 0
    target_of_evaluation_id: str | None = None
    # the policy (aisec.policy.Policy) and its verdict (aisec.policy.PolicyReport): typed loosely here
    # because the policy wing sits above core and core never imports upward
    policy: Any = None
    verdict: Any = None
    # the policy is applied once per run (aisec.policy.gate.judge): ``judged`` says it was, and
    # ``verdict_error`` why it could not be applied (then ``verdict`` stays None)
    judged: bool = False
    verdict_error: str | None = None
    #: per metric or Clouditor property id, a sentence the report prints next to that verdict line (why the
    #: number is what it is: e.g. the demo poisons its training data on purpose); kept in ``result.json``
    notes: dict[str, str] = field(default_factory=dict)
    #: the files the checks wrote under ``out/artefacts/``, each with its sha256 (listed in result.json)
    artefacts: list[ArtefactRef] = field(default_factory=list)
    #: a threat-model run's residual risk per threat (aisec.threats.residual.ResidualRisk; typed loosely: the
    #: threats wing sits above core), set when the run finishes
    residual: Any = None

    def summary(self) -> dict[str, Any]:
        return {
            "run_id": self.run_id,
            "model": self.target.spec.name,
            # a model behind a preprocessing defence (aisec.defences.preprocess.DefendedTarget): its name,
            # parameters and declared facts
            **({"defence": defence} if (defence := getattr(self.target, "defence_record", None)) else {}),
            "dataset": self.data.info.name,
            "out": str(self.out) if self.out else None,
            "seconds": round(self.seconds, 3),
            "checks": {r.check: {"seconds": round(r.seconds, 3), "warnings": r.warnings,
                                 "summary": r.summary.to_json()} for r in self.results},
            "evidence": [e.model_dump(mode="json") for e in self.evidence],
            "errors": self.errors,
            **({"artefacts": [a.model_dump() for a in self.artefacts]} if self.artefacts else {}),
            **({"input_scaling": scaling()} if (scaling := getattr(self.data, "scaling_record", None)) else {}),
            **({"verdict": self.verdict.model_dump(mode="json")} if self.verdict is not None else {}),
            **({"notes": dict(self.notes)} if self.notes else {}),
            **({"residual_risk": self.residual.model_dump(mode="json")} if self.residual is not None else {}),
            **({"related": [r.summary() for r in self.related]} if self.related else {}),
        }

    def _repr_html_(self) -> str:
        """A notebook cell's view of the run: the verdict, each check's warnings count and its measurements."""
        from html import escape

        rows = []
        for e in self.evidence:
            ci = f"{e.interval.low:.3g}–{e.interval.high:.3g}" if e.interval is not None else ""
            params = ", ".join(f"{k} {v}" for k, v in e.parameters.items()
                               if k not in ("input_scaling", "quantize") and v not in (None, False, "")
                               and not isinstance(v, dict | list))
            rows.append(f"<tr><td>{escape(e.check)}</td><td>{escape(e.metric)}</td><td>{escape(params)}</td>"
                        f"<td>{e.value:.4g}</td><td>{ci}</td></tr>")
        verdict = ""
        if self.verdict is not None:
            passed = bool(getattr(self.verdict, "passed", False))
            verdict = (f"<p><b style='color:{'#1e8449' if passed else '#c0392b'}'>policy "
                       f"{'PASS' if passed else 'FAIL'}</b></p>")
        warn = sum(len(r.warnings) for r in self.results)
        head = (f"<p><b>aisec run {escape(self.run_id)}</b>: model {escape(self.target.spec.name)}, data "
                f"{escape(self.data.info.name)}, checks {escape(', '.join(r.check for r in self.results))}"
                f"{f', {warn} warning(s)' if warn else ''}{f', report in {escape(str(self.out))}' if self.out else ''}"
                "</p>")
        table = ("<table><tr><th>check</th><th>metric</th><th>parameters</th><th>value</th><th>95% CI</th></tr>"
                 + "".join(rows) + "</table>") if rows else "<p>no measurements</p>"
        errors = "".join(f"<p style='color:#c0392b'>error: {escape(x)}</p>" for x in self.errors)
        return head + verdict + errors + table


__all__ = ["Run", "jsonable"]
