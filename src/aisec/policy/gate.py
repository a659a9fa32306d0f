"""What ``aisec assess`` / ``aisec scan`` with ``--policy FILE --store URL`` do around a run: validate first,
judge once, record after.

>>> gate = Gate.open(policy="policy.yaml", store="sqlite:///evidence.db")  # fails fast on bad input
>>> run = run_plan(plan, out=out, on_evidence=gate.recorder(plan, out),    # records each check as it ends
...                policy=gate.policy)                                      # the run is judged against it, once
>>> outcome = gate.finish(run)                                             # store, reuse the verdict, policy.json
>>> sys.exit(outcome.exit_code)

The policy is applied to a run exactly once, by :func:`judge` (the orchestrator calls it when the run
ends, so its reports carry the verdict); :meth:`Gate.finish` reuses ``run.verdict`` rather than
evaluating the policy a second time.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from aisec.core.errors import AisecError, ConfigError
from aisec.core.evidence import Evidence
from aisec.policy import rules
from aisec.policy.rules import Policy, PolicyReport, load_policy

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
        """Store the finished run (idempotent) and write its verdict to ``policy.json``/``policy.md``.

        The verdict is the run's own (``run.verdict``, judged once when the run ended against this gate's
        policy). Only a run that was not judged against this policy (assessed without ``policy=gate.policy``,
        or built by hand) is judged here, once, and its ``verdict`` becomes this policy's.

        Raises:
            ConfigError: the policy could not be applied to the run's evidence (e.g. it names a metric
                neither the catalogue nor the evidence knows).
        """
        stored = self.store.save_run(run) if self.store is not None else None
        report: PolicyReport | None = None
        if self.policy is not None:
            if getattr(run, "policy", None) is not self.policy:
                run.policy, run.verdict, run.judged, run.verdict_error = self.policy, None, False, None
            report = judge(run)
            if report is None:
                raise ConfigError(f"policy could not be applied: {getattr(run, 'verdict_error', None)}")
        if report is not None and run.out is not None:
            out = Path(run.out)
            _write_text(out / "policy.json", json.dumps(report.model_dump(mode="json"), indent=2))
            _write_text(out / "policy.md", report.markdown() + "\n")
        return GateOutcome(policy=report, stored=stored,
                           store_url=self.store.display_url if self.store is not None else None)


def judge(run: Run) -> PolicyReport | None:
    """Judge the run's evidence against its policy (default: Clouditor's AISecurity thresholds), once.

    The first call evaluates the policy and keeps the verdict on the run (``run.verdict``, ``run.judged``);
    later calls return it without evaluating again, so the reports, ``result.json``, ``policy.json`` and the
    exit code all rest on one evaluation. A policy that cannot be applied is recorded as an error of the run
    (``run.errors``, ``run.verdict_error``) rather than hiding the measurements; the verdict is then None.
    """
    if getattr(run, "judged", False):
        verdict: PolicyReport | None = getattr(run, "verdict", None)
        return verdict
    try:
        run.verdict = rules.evaluate_policy(run.evidence, getattr(run, "policy", None))
    except AisecError as exc:
        run.verdict = None
        run.verdict_error = str(exc)
        run.errors.append(f"policy could not be applied: {exc}")
    run.judged = True
    result: PolicyReport | None = run.verdict
    return result


def _write_text(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` atomically (tmp + replace), so a reader never sees half a file."""
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text, encoding="utf-8")
    tmp.replace(path)
