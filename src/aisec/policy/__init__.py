"""Judging evidence: policy rules and their verdict, the gate around a run, the Clouditor properties
aisec evidence maps onto, and the requirement/threat catalogue the rules cite.

- :mod:`aisec.policy.rules`: :class:`Policy` (YAML thresholds) → :func:`evaluate_policy` → :class:`PolicyReport`.
- :mod:`aisec.policy.properties`: aisec metrics → Clouditor ``MachineLearningModel`` properties.
- :mod:`aisec.policy.catalogue`: AIC4 / AI Act requirements, ATLAS threats and which metric speaks to which.
- :mod:`aisec.policy.gate`: what ``aisec assess --policy --store`` does around a run.

>>> report = evaluate_policy(run.evidence, load_policy("policy.yaml"))
>>> sys.exit(report.exit_code)
"""

from __future__ import annotations

from aisec.policy.catalogue import Catalogue, load_catalogue
from aisec.policy.gate import Gate, GateOutcome
from aisec.policy.properties import PROPERTIES, Derived, Reference, derive_properties
from aisec.policy.rules import (
    EXIT_POLICY_FAILED,
    Policy,
    PolicyReport,
    RequirementResult,
    Rule,
    RuleResult,
    UnknownMetricError,
    default_policy,
    evaluate_policy,
    load_policy,
    parse_policy,
)

__all__ = [
    "EXIT_POLICY_FAILED",
    "PROPERTIES",
    "Catalogue",
    "Derived",
    "Gate",
    "GateOutcome",
    "Policy",
    "PolicyReport",
    "Reference",
    "RequirementResult",
    "Rule",
    "RuleResult",
    "UnknownMetricError",
    "default_policy",
    "derive_properties",
    "evaluate_policy",
    "load_catalogue",
    "load_policy",
    "parse_policy",
]
