"""Re-run the plan behind a stored evidence record and say whether the new value agrees.

``reproduce(store, evidence_id)`` first checks that the record and its run (plan included) are
unchanged and signed by keys in the trust store, then loads the recorded plan's data and checks its
digest, checks the model file's sha256 *before* loading it, re-runs only the check that produced the
record with the recorded seed and parameters, and compares the matching new measurement with the
recorded value and confidence interval.

Nothing is taken on trust from stored data: ``trust_model_code`` (unpickling) comes only from the
caller (``aisec reproduce --trust-model-code``), never from the stored plan, and the seed, check and
digests must also agree with the signed record.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel, ConfigDict

from aisec.core.errors import AisecError, ConfigError
from aisec.core.evidence import Evidence
from aisec.core.progress import Progress, no_progress
from aisec.core.stats import Interval

if TYPE_CHECKING:
    from aisec.store import EvidenceStore


class ReproduceRefused(AisecError):
    """The record cannot be reproduced as recorded (model or data changed, no plan, plan disagrees)."""


class ReproduceResult(BaseModel):
    model_config = ConfigDict(frozen=True)

    evidence_id: str
    metric: str
    parameters: dict[str, Any]
    recorded_value: float
    recorded_interval: Interval | None
    new_value: float | None
    new_interval: Interval | None
    within: bool
    new_evidence_id: str | None
    new_run_id: str | None
    detail: str

    def text(self) -> str:
        ci = self.recorded_interval
        rec = f"{self.recorded_value:.4g}" + (f" [{ci.low:.4g}, {ci.high:.4g}]" if ci else "")
        new = "n/a" if self.new_value is None else f"{self.new_value:.4g}"
        verdict = "REPRODUCED" if self.within else "NOT REPRODUCED"
        return f"{verdict}: {self.metric} recorded {rec}, re-run {new}. {self.detail}"


def reproduce(
    store: EvidenceStore,
    evidence_id: str,
    *,
    out: str | Path | None = None,
    progress: Progress = no_progress,
    save: bool = False,
    trust_model_code: bool = False,
) -> ReproduceResult:
    """Re-run what produced ``evidence_id`` and compare (see the module docstring).

    Args:
        trust_model_code: allow unpickling the model file (its sha256 is checked first). Whatever
            the stored plan says is ignored.

    Raises:
        ReproduceRefused: the record or its run fails verification or is signed by an untrusted key,
            no plan was recorded, the plan disagrees with the record, or the model or data digest
            changed since the measurement.
    """
    from aisec import api
    from aisec.core.plan import Plan

    entry, run, problems = store.verify_entry(evidence_id)
    ev = entry.evidence
    if problems:
        raise ReproduceRefused(
            f"evidence {ev.id} or its run {ev.run_id} cannot be trusted, so nothing was loaded: "
            + "; ".join(problems) + ". Expected both unchanged and signed by a key in your trust store; run "
            "`aisec evidence verify` to see what changed, or `aisec evidence trust add` the signer's key.")
    if run.plan is None:
        raise ReproduceRefused(
            f"evidence {ev.id} belongs to run {ev.run_id}, which has no recorded plan (it was imported from "
            "evidence alone); import the run's out folder (with plan.yaml) to reproduce it")
    try:
        plan = Plan.parse(run.plan, source=f"plan of run {ev.run_id}")
    except ConfigError as exc:
        raise ReproduceRefused(f"the recorded plan of run {ev.run_id} no longer parses: {exc}") from exc
    if ev.seed is not None and plan.seed != ev.seed:
        raise ReproduceRefused(f"the recorded plan has seed {plan.seed} but evidence {ev.id} was measured with seed "
                               f"{ev.seed}; the plan was changed after the run")
    if ev.check not in plan.checks:
        raise ReproduceRefused(f"the recorded plan has no '{ev.check}' check, which produced evidence {ev.id}")
    plan = plan.model_copy(update={"model": plan.model.model_copy(update={"trust_model_code": trust_model_code})})
    data = api.load_data(plan.data.source, plan.data.options)
    if data.info.digest != ev.resource.dataset_digest:
        raise ReproduceRefused(
            f"the data changed: '{plan.data.source}' now has digest {data.info.digest[:16]}…, but evidence {ev.id} "
            f"was measured on {ev.resource.dataset_digest[:16]}…. Restore the original data to reproduce it.")
    before = _model_file_digest(plan.model.path)
    if before is not None and before != ev.resource.model_sha256:
        raise ReproduceRefused(
            f"the model file changed: '{plan.model.path}' has sha256 {before[:16]}…, but evidence {ev.id} was "
            f"measured on {ev.resource.model_sha256[:16]}…; it was not loaded. Restore the original model to "
            "reproduce it.")
    target = api.load_model(plan.model, data)
    if target.spec.digest != ev.resource.model_sha256:
        raise ReproduceRefused(
            f"the model changed: '{plan.model.path}' now has sha256 {target.spec.digest[:16]}…, but evidence {ev.id} "
            f"was measured on {ev.resource.model_sha256[:16]}…. Restore the original model to reproduce it.")
    sub = plan.model_copy(update={"checks": {ev.check: plan.checks[ev.check]}})
    new_run = api.assess(target, data, checks=sub.checks, seed=sub.seed, out=out, progress=progress, plan=sub,
                         target_of_evaluation_id=ev.target_of_evaluation_id)
    if save:
        store.save_run(new_run, source=f"reproduce:{ev.id}")
    match = _matching(ev, new_run.evidence)
    if match is None:
        return ReproduceResult(
            evidence_id=ev.id, metric=ev.metric, parameters=ev.parameters, recorded_value=ev.value,
            recorded_interval=ev.interval, new_value=None, new_interval=None, within=False, new_evidence_id=None,
            new_run_id=new_run.run_id, detail="the re-run produced no measurement with the same metric and parameters")
    within, detail = _compare(ev, match)
    return ReproduceResult(
        evidence_id=ev.id, metric=ev.metric, parameters=ev.parameters, recorded_value=ev.value,
        recorded_interval=ev.interval, new_value=match.value, new_interval=match.interval, within=within,
        new_evidence_id=match.id, new_run_id=new_run.run_id, detail=detail)


def _model_file_digest(path: str) -> str | None:
    """The sha256 of the model file the plan names, read without loading it (None: a built-in name, a
    URL or a folder, none of which is unpickled; their digest is compared after loading)."""
    from aisec.core.evidence import file_sha256

    if path.startswith(("http://", "https://")):
        return None
    p = Path(path).expanduser()
    return file_sha256(p) if p.is_file() else None


def _matching(ev: Evidence, candidates: list[Evidence]) -> Evidence | None:
    for c in candidates:
        if c.metric == ev.metric and _same_params(c.parameters, ev.parameters):
            return c
    return None


def _same_params(a: dict[str, Any], b: dict[str, Any]) -> bool:
    if a.keys() != b.keys():
        return False
    for k, va in a.items():
        vb = b[k]
        if isinstance(va, float) or isinstance(vb, float):
            try:
                if not math.isclose(float(va), float(vb), rel_tol=1e-9, abs_tol=1e-12):
                    return False
            except (TypeError, ValueError):
                return False
        elif va != vb:
            return False
    return True


def _compare(old: Evidence, new: Evidence) -> tuple[bool, str]:
    if math.isnan(old.value) and math.isnan(new.value):
        return True, "both values are undefined (NaN)"
    if old.interval is not None and math.isfinite(old.interval.low) and math.isfinite(old.interval.high):
        inside = old.interval.contains(new.value)
        where = "inside" if inside else "outside"
        return inside, (f"the new value lies {where} the recorded {old.interval.level:.0%} interval "
                        f"[{old.interval.low:.4g}, {old.interval.high:.4g}] ({old.interval.method})")
    same = math.isclose(old.value, new.value, rel_tol=1e-9, abs_tol=1e-12)
    return same, "no interval was recorded; the values are " + ("identical" if same else "different")
