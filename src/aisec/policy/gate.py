"""What ``aisec assess --policy FILE --store URL`` does around a run: validate first, judge after.

>>> gate = Gate.open(policy="policy.yaml", store="sqlite:///evidence.db")  # fails fast on bad input
>>> run = run_plan(plan, out=out, on_evidence=gate.recorder(plan, out))   # records each check as it ends
>>> outcome = gate.finish(run)                                             # store, judge, write policy.json
>>> sys.exit(outcome.exit_code)
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from aisec.core.evidence import Evidence
from aisec.policy.rules import Policy, PolicyReport, evaluate_policy, load_policy

if TYPE_CHECKING:
    from aisec.core.run import Run
    from aisec.store import AddResult, EvidenceStore


@dataclass
class GateOutcome:
    policy: PolicyReport | None
    stored: AddResult | None
    store_url: str | None

    @property
    def exit_code(self) -> int:
        return self.policy.exit_code if self.policy is not None else 0


@dataclass
class Gate:
    policy: Policy | None = None
    store: EvidenceStore | None = None

    @classmethod
    def open(cls, policy: str | Path | Policy | None = None, store: str | EvidenceStore | None = None) -> Gate:
        """Load the policy (unknown metrics are an error now, not after an hour of attacks) and open the store."""
        pol = load_policy(policy) if isinstance(policy, (str, Path)) else policy
        st: EvidenceStore | None
        if isinstance(store, str):
            from aisec.store import open_store

            st = open_store(store)
        else:
            st = store
        return cls(policy=pol, store=st)

    def recorder(self, plan: Any = None, out_dir: str | Path | None = None) -> Callable[[list[Evidence]], None] | None:
        """A per-check callback that stores evidence as soon as each check ends (None without a store)."""
        return self.store.recorder(plan, out_dir=out_dir) if self.store is not None else None

    def finish(self, run: Run) -> GateOutcome:
        """Store the finished run (idempotent), judge it, and write ``policy.json``/``policy.md`` to its out folder."""
        stored = self.store.save_run(run) if self.store is not None else None
        report = evaluate_policy(run.evidence, self.policy) if self.policy is not None else None
        if report is not None and run.out is not None:
            out = Path(run.out)
            (out / "policy.json").write_text(json.dumps(report.model_dump(mode="json"), indent=2), encoding="utf-8")
            (out / "policy.md").write_text(report.markdown() + "\n", encoding="utf-8")
        return GateOutcome(policy=report, stored=stored,
                           store_url=self.store.display_url if self.store is not None else None)
