"""One assessment as it runs and after: the plan, the target and data, each check's result, the evidence.

:class:`Run` is the noun every wing downstream of the checks reads (the report, the store, the policy
gate, the CLI's summary); it lives in ``core`` so none of them imports the orchestrator (:mod:`aisec.api`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

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

    def summary(self) -> dict[str, Any]:
        return {
            "run_id": self.run_id,
            "model": self.target.spec.name,
            "dataset": self.data.info.name,
            "out": str(self.out) if self.out else None,
            "seconds": round(self.seconds, 3),
            "checks": {r.check: {"seconds": round(r.seconds, 3), "warnings": r.warnings,
                                 "summary": r.summary.to_json()} for r in self.results},
            "evidence": [e.model_dump(mode="json") for e in self.evidence],
            "errors": self.errors,
            **({"input_scaling": scaling()} if (scaling := getattr(self.data, "scaling_record", None)) else {}),
            **({"verdict": self.verdict.model_dump(mode="json")} if self.verdict is not None else {}),
            **({"related": [r.summary() for r in self.related]} if self.related else {}),
        }


__all__ = ["Run", "jsonable"]
