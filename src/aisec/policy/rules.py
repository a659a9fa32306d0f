"""Policy gate: thresholds per metric, pass/fail per requirement, an exit code for CI.

A policy is YAML. With no rules it applies Clouditor's AISecurity defaults to the six
``MachineLearningModel`` properties (see :mod:`aisec.policy.properties` for how aisec evidence maps
onto them); rules may override those or gate any aisec metric directly::

    version: 1
    defaults: clouditor        # or: none
    missing: skip              # a rule without evidence: skip (default) or fail
    reference_eps: {linf: 0.1} # budgets at which robustness properties are read
    rules:
      - metric: adversarialRobustnessScore        # a Clouditor property ...
        operator: ">="
        target: 0.7
      - metric: robustness.robust_accuracy         # ... or an aisec metric id (globs allowed)
        where: {attack: pgd, norm: linf, eps: 0.1}
        operator: ">="
        target: 0.6
        use: conservative     # compare the CI bound on the unfavourable side, not the estimate
        aggregate: worst      # worst | min | max | mean | all | any
        required: true        # fail when no evidence matches

>>> report = evaluate_policy(run.evidence, load_policy("policy.yaml"))
>>> sys.exit(report.exit_code)
"""

from __future__ import annotations

import difflib
import fnmatch
import math
import operator as op
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from aisec.core.errors import ConfigError
from aisec.core.evidence import Evidence
from aisec.core.safety import load_yaml
from aisec.policy.catalogue import load_catalogue
from aisec.policy.properties import PROPERTIES, Reference, derive

EXIT_POLICY_FAILED = 3
"""Exit code when a policy fails (0 passes; 1 and 2 are taken by unexpected and usage errors)."""

Operator = Literal[">=", ">", "<=", "<", "==", "!="]
_OPS: dict[str, Callable[[Any, Any], bool]] = {
    ">=": op.ge, ">": op.gt, "<=": op.le, "<": op.lt, "==": op.eq, "!=": op.ne,
}


class UnknownMetricError(ConfigError):
    """A policy names a metric that is neither a Clouditor property nor an aisec metric."""

    def __init__(self, message: str, *, metric: str, suggestions: list[str]) -> None:
        super().__init__(message)
        self.metric = metric
        self.suggestions = suggestions


class Rule(BaseModel):
    """One threshold: ``<value of metric> <operator> <target>``."""

    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)

    metric: str = Field(description="A Clouditor property (adversarialRobustnessScore, ...) or an aisec metric id.")
    operator: Operator
    target: float | bool
    where: dict[str, Any] = Field(default_factory=dict, description="Parameters the evidence must have.")
    aggregate: Literal["worst", "min", "max", "mean", "all", "any"] = "worst"
    use: Literal["value", "conservative"] = "value"
    requirements: tuple[str, ...] | None = Field(default=None, description="Default: from the catalogue.")
    required: bool | None = Field(default=None, description="Fail without evidence (default: the policy's 'missing').")
    name: str | None = None

    @property
    def is_property(self) -> bool:
        return self.metric in PROPERTIES

    @property
    def label(self) -> str:
        if self.name:
            return self.name
        where = ", ".join(f"{k}={v}" for k, v in self.where.items())
        return f"{self.metric}{f' [{where}]' if where else ''} {self.operator} {_fmt(self.target)}"


class Policy(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)

    version: Literal[1] = 1
    defaults: Literal["clouditor", "none"] = "clouditor"
    missing: Literal["skip", "fail"] = "skip"
    reference_eps: dict[str, float] | None = None
    rules: tuple[Rule, ...] = ()

    @model_validator(mode="after")
    def _targets(self) -> Policy:
        for r in self.rules:
            if isinstance(r.target, bool) and r.operator not in ("==", "!="):
                raise ValueError(f"rule '{r.label}': a true/false target needs == or !=")
        return self

    def effective_rules(self) -> list[Rule]:
        """The Clouditor defaults and the clean-accuracy sanity rule (:mod:`aisec.policy.sanity`), unless
        ``defaults: none``, with user rules replacing same-metric defaults."""
        overridden = {r.metric for r in self.rules if not r.where}
        out = [r for r in [*default_rules(), sanity_rule()] if r.metric not in overridden] \
            if self.defaults == "clouditor" else []
        return out + list(self.rules)

    def reference(self) -> Reference:
        return Reference(eps=self.reference_eps) if self.reference_eps else Reference()

    def check_metrics(self, extra: Sequence[str] = ()) -> None:
        """Raise :class:`UnknownMetricError` for a rule naming a metric nobody knows."""
        cat = load_catalogue()
        known = [m.id for m in cat.metrics] + list(extra)
        for r in self.rules:
            if r.is_property or any(fnmatch.fnmatchcase(k, r.metric) for k in known):
                continue
            choices = sorted(PROPERTIES) + sorted(set(known))
            close = difflib.get_close_matches(r.metric, choices, n=3, cutoff=0.6)
            hint = f" Did you mean {' or '.join(repr(c) for c in close)}?" if close else ""
            raise UnknownMetricError(
                f"policy rule '{r.label}' names unknown metric '{r.metric}'.{hint} Known: Clouditor properties "
                f"{', '.join(sorted(PROPERTIES))}; aisec metrics {', '.join(sorted(set(known)))} "
                "(a new check's metrics are added in aisec/policy/catalogue.yaml).",
                metric=r.metric, suggestions=close,
            )


def default_rules() -> list[Rule]:
    """Clouditor's AISecurity defaults, one rule per property that has a gate."""
    return [Rule(metric=p.name, operator=p.operator, target=p.target)  # type: ignore[arg-type]
            for p in PROPERTIES.values() if p.operator]


def sanity_rule() -> Rule:
    """Clean accuracy clearly above chance (:data:`aisec.policy.sanity.SKILL_METRIC`), a default rule."""
    from aisec.policy.sanity import MIN_SKILL, SKILL_METRIC

    return Rule(metric=SKILL_METRIC, operator=">=", target=MIN_SKILL, aggregate="min",
                name=f"clean accuracy above chance ({SKILL_METRIC} >= {MIN_SKILL:g})")


def default_policy() -> Policy:
    return Policy()


def load_policy(path: str | Path) -> Policy:
    """Read and validate a policy file (unknown keys and unknown metrics are errors)."""
    p = Path(path)
    if not p.is_file():
        raise ConfigError(f"policy file not found: {p}")
    raw = load_yaml(p, what="policy file") or {}  # no aliases, bounded size and depth
    return parse_policy(raw, source=str(p))


def parse_policy(raw: dict[str, Any], *, source: str = "policy") -> Policy:
    if not isinstance(raw, dict):
        raise ConfigError(f"{source} must hold a mapping with 'rules' (and optionally defaults, missing)")
    try:
        policy = Policy.model_validate(raw)
    except ValidationError as exc:
        lines = [f"  {'.'.join(str(x) for x in e['loc'])}: {e['msg']}" for e in exc.errors()]
        raise ConfigError(f"invalid {source}:\n" + "\n".join(lines)) from exc
    policy.check_metrics()
    return policy


Status = Literal["pass", "fail", "skipped"]


class RuleResult(BaseModel):
    model_config = ConfigDict(frozen=True)

    rule: str
    metric: str
    operator: str
    target: float | bool
    status: Status
    value: float | bool | None
    evidence_ids: tuple[str, ...]
    reason: str
    requirements: tuple[str, ...]
    title: str = ""
    """What the rule's metric means, in plain words (empty when the catalogue has nothing better than its id)."""


class RequirementResult(BaseModel):
    model_config = ConfigDict(frozen=True)

    id: str
    title: str
    status: Literal["pass", "fail", "not_assessed"]
    rules: tuple[str, ...]
    reasons: tuple[str, ...]


class PolicyReport(BaseModel):
    """Pass/fail per rule and per requirement; ``exit_code`` is 0 or :data:`EXIT_POLICY_FAILED`."""

    model_config = ConfigDict(frozen=True)

    passed: bool
    rules: tuple[RuleResult, ...]
    requirements: tuple[RequirementResult, ...]

    @property
    def exit_code(self) -> int:
        return 0 if self.passed else EXIT_POLICY_FAILED

    @property
    def failures(self) -> list[RuleResult]:
        return [r for r in self.rules if r.status == "fail"]

    def text(self) -> str:
        lines = [f"policy {'PASSED' if self.passed else 'FAILED'}"]
        for r in sorted(self.rules, key=lambda r: ("fail", "pass", "skipped").index(r.status)):
            lines.append(f"  {r.status.upper():7} {r.rule}: {r.reason}")
        for q in self.requirements:
            lines.append(f"  {q.status:12} {q.id} {q.title}")
        return "\n".join(lines)

    def markdown(self) -> str:
        lines = [f"**Policy {'passed' if self.passed else 'failed'}**", "",
                 "| requirement | verdict | rules |", "|---|---|---|"]
        lines += [f"| {q.id} {q.title} | {q.status} | {'; '.join(q.reasons)} |" for q in self.requirements]
        return "\n".join([*lines, "", self.rules_markdown()])

    def rules_markdown(self) -> str:
        """The rule table alone (the report puts its own per-requirement table, related runs included, above)."""
        lines = ["| rule | status | value | reason |", "|---|---|---|---|"]
        lines += [f"| {r.title + ' (`' + r.rule + '`)' if r.title else r.rule} | {r.status} | {_fmt(r.value)} | "
                  f"{r.reason} |" for r in self.rules]
        return "\n".join(lines)


def evaluate_policy(evidence: Sequence[Evidence], policy: Policy | None = None) -> PolicyReport:
    """Judge ``evidence`` (e.g. ``run.evidence``) against ``policy`` (default: Clouditor's thresholds)."""
    policy = policy or default_policy()
    policy.check_metrics(extra=sorted({e.metric for e in evidence}))
    cat = load_catalogue()
    ref = policy.reference()
    results = [_evaluate(rule, evidence, policy, ref) for rule in policy.effective_rules()]
    reqs: dict[str, list[RuleResult]] = {}
    for r in results:
        for q in r.requirements:
            reqs.setdefault(q, []).append(r)
    req_results = []
    for q, rs in reqs.items():
        statuses = {r.status for r in rs}
        status: Literal["pass", "fail", "not_assessed"] = (
            "fail" if "fail" in statuses else "pass" if "pass" in statuses else "not_assessed")
        entry = cat.requirement(q)
        req_results.append(RequirementResult(
            id=q, title=entry.title if entry else "", status=status, rules=tuple(r.rule for r in rs),
            reasons=tuple(f"{r.rule}: {r.status}" for r in rs)))
    req_results.sort(key=lambda q: (("fail", "pass", "not_assessed").index(q.status), q.id))
    return PolicyReport(passed=not any(r.status == "fail" for r in results), rules=tuple(results),
                        requirements=tuple(req_results))


def _requirements(rule: Rule) -> tuple[str, ...]:
    if rule.requirements is not None:
        return tuple(rule.requirements)
    cat = load_catalogue()
    if rule.is_property:
        p = cat.property(rule.metric)
        return p.requirements if p else ()
    out: list[str] = []
    for m in cat.matching_metrics(rule.metric):
        out += [q for q in m.requirements if q not in out]
    return tuple(out)


def _plain_title(metric: str) -> str:
    """A metric's meaning in plain words: the property's title, else the catalogue's one-line summary."""
    from aisec.policy.properties import PLAIN_TITLES

    if metric in PLAIN_TITLES:
        return PLAIN_TITLES[metric]
    entry = load_catalogue().metric(metric)
    return entry.summary.split(". ")[0].rstrip(".") if entry is not None else ""


def _evaluate(rule: Rule, evidence: Sequence[Evidence], policy: Policy, ref: Reference) -> RuleResult:
    reqs = _requirements(rule)

    def result(status: Status, value: float | bool | None, ids: Sequence[str], reason: str) -> RuleResult:
        return RuleResult(rule=rule.label, metric=rule.metric, operator=rule.operator, target=rule.target,
                          status=status, value=value, evidence_ids=tuple(ids), reason=reason, requirements=reqs,
                          title=_plain_title(rule.metric))

    required = policy.missing == "fail" if rule.required is None else rule.required
    if rule.is_property:
        records = [e for e in evidence if _where(e, rule.where)]
        d = derive(PROPERTIES[rule.metric], records, ref)
        if d is None:
            why = f"no evidence from which to derive {rule.metric}"
            if rule.metric == "explainabilityEnabled":
                why += " (no explainability check ran; Clouditor treats false as not applicable)"
            return result("fail" if required else "skipped", None, (), why)
        ok = _OPS[rule.operator](d.value, rule.target)
        return result("pass" if ok else "fail", d.value, d.evidence_ids,
                      f"{_fmt(d.value)} {'meets' if ok else 'violates'} {rule.operator} {_fmt(rule.target)} "
                      f"({d.basis})")
    records = [e for e in evidence if fnmatch.fnmatchcase(e.metric, rule.metric) and _where(e, rule.where)]
    pairs = [(_value(e, rule.use), e) for e in records]
    pairs = [(v, e) for v, e in pairs if math.isfinite(v)]
    if not pairs:
        return result("fail" if required else "skipped", None, (),
                      f"no finite {rule.metric} evidence" + (f" with {rule.where}" if rule.where else ""))
    check = _OPS[rule.operator]
    what = "unfavourable CI bound" if rule.use == "conservative" else "value"
    if rule.aggregate in ("all", "any"):
        bad = [(v, e) for v, e in pairs if not check(v, rule.target)]
        ok = not bad if rule.aggregate == "all" else len(bad) < len(pairs)
        worst_v, worst_e = (bad or pairs)[0]
        reason = (f"{len(pairs) - len(bad)} of {len(pairs)} record(s) meet {rule.operator} {_fmt(rule.target)}"
                  + (f"; e.g. {worst_e.id[:8]} has {what} {_fmt(worst_v)} ({_params(worst_e)})" if bad else ""))
        return result("pass" if ok else "fail", worst_v, [e.id for _, e in (bad or pairs)], reason)
    how = rule.aggregate
    if how == "worst":
        how = "min" if pairs[0][1].higher_is_better else "max"
    if how == "mean":
        value = sum(v for v, _ in pairs) / len(pairs)
        used = [e for _, e in pairs]
        detail = f"mean of {len(pairs)} record(s)"
    else:
        value, e = (min if how == "min" else max)(pairs, key=lambda t: t[0])
        used = [e]
        detail = f"{how} of {len(pairs)} record(s): {e.id[:8]} ({_params(e)})"
    ok = check(value, rule.target)
    return result("pass" if ok else "fail", value, [e.id for e in used],
                  f"{what} {_fmt(value)} {'meets' if ok else 'violates'} {rule.operator} {_fmt(rule.target)}; {detail}")


def _value(e: Evidence, use: str) -> float:
    if use == "conservative" and e.interval is not None:
        return e.interval.low if e.higher_is_better else e.interval.high
    return e.value


def _where(e: Evidence, where: dict[str, Any]) -> bool:
    for k, want in where.items():
        have = e.parameters.get(k)
        if isinstance(want, (int, float)) and not isinstance(want, bool) and isinstance(have, (int, float)):
            if not math.isclose(float(have), float(want), rel_tol=1e-6, abs_tol=1e-12):
                return False
        elif have != want:
            return False
    return True


def _params(e: Evidence) -> str:
    return ", ".join(f"{k}={v}" for k, v in sorted(e.parameters.items()) if k in ("attack", "norm", "eps", "targeted"))


def _fmt(v: Any) -> str:
    if isinstance(v, bool) or v is None:
        return str(v).lower() if isinstance(v, bool) else "n/a"
    if isinstance(v, float):
        return f"{v:.4g}"
    return str(v)


__all__ = [
    "EXIT_POLICY_FAILED",
    "Policy",
    "PolicyReport",
    "RequirementResult",
    "Rule",
    "RuleResult",
    "UnknownMetricError",
    "default_policy",
    "evaluate_policy",
    "load_policy",
    "parse_policy",
    "sanity_rule",
]
