"""aisec: measure the security of trained ML models and turn it into audit evidence.

The public API is what ``__all__`` lists; everything else lives in modules whose layout may change.
Names are imported on first use (PEP 562), so ``import aisec`` is cheap and ``aisec --help`` does
not load torch.

>>> import aisec
>>> run = aisec.assess(net, aisec.digits(split="test"),
...                    checks={"robustness": {"attacks": ["pgd"], "eps": [0.05, 0.1]}}, out="report")
>>> run.results[0].measurement("robustness.robust_accuracy", attack="pgd", eps=0.1).value
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from aisec.core.version import __version__

# public name -> module that defines it
_EXPORTS: dict[str, str] = {
    # run an assessment
    "assess": "aisec.api",
    "run_plan": "aisec.api",
    "load_model": "aisec.api",
    "load_data": "aisec.api",
    "defend": "aisec.api",
    "Plan": "aisec.core.plan",
    "Run": "aisec.core.run",
    "Result": "aisec.core.check",
    # the nouns
    "Target": "aisec.core.target",
    "TargetSpec": "aisec.core.target",
    "Dataset": "aisec.core.dataset",
    "DatasetInfo": "aisec.core.dataset",
    "TensorDataset": "aisec.core.dataset",
    "Evidence": "aisec.core.evidence",
    "Measurement": "aisec.core.evidence",
    "Capability": "aisec.core.types",
    "Modality": "aisec.core.types",
    "Norm": "aisec.core.types",
    # targets and data
    "TorchTarget": "aisec.targets.torch",
    "ProbaTarget": "aisec.targets.sklearn",
    "OnnxTarget": "aisec.targets.onnx",
    "HttpTarget": "aisec.targets.http",
    "HfTextTarget": "aisec.targets.hf",
    "CausalLmClassifier": "aisec.targets.hf_zero_shot",
    "load_target": "aisec.targets.loading",
    "load_dataset": "aisec.data.loading",
    "digits": "aisec.data.builtin",
    "breast_cancer": "aisec.data.builtin",
    # single attacks and metrics
    "run_attack": "aisec.attacks.base",
    "Outcome": "aisec.attacks.base",
    "clever_u": "aisec.metrics.clever",
    # judging and keeping evidence
    "Policy": "aisec.policy.rules",
    "PolicyReport": "aisec.policy.rules",
    "load_policy": "aisec.policy.rules",
    "evaluate_policy": "aisec.policy.rules",
    "EvidenceStore": "aisec.store",
    "open_store": "aisec.store",
    # errors
    "AisecError": "aisec.core.errors",
    "ConfigError": "aisec.core.errors",
    "DataError": "aisec.core.errors",
    "TargetError": "aisec.core.errors",
    "CapabilityError": "aisec.core.errors",
    "ShapeError": "aisec.core.errors",
    "OutputError": "aisec.core.errors",
    "UnsafeModelError": "aisec.core.errors",
    "BudgetExceeded": "aisec.core.errors",
    "StoreError": "aisec.core.errors",
}

# the same names as _EXPORTS (tests/unit/test_public_api.py checks); a literal so linters and IDEs read it
__all__ = [
    "AisecError",
    "BudgetExceeded",
    "Capability",
    "CapabilityError",
    "CausalLmClassifier",
    "ConfigError",
    "DataError",
    "Dataset",
    "DatasetInfo",
    "Evidence",
    "EvidenceStore",
    "HfTextTarget",
    "HttpTarget",
    "Measurement",
    "Modality",
    "Norm",
    "OnnxTarget",
    "Outcome",
    "OutputError",
    "Plan",
    "Policy",
    "PolicyReport",
    "ProbaTarget",
    "Result",
    "Run",
    "ShapeError",
    "StoreError",
    "Target",
    "TargetError",
    "TargetSpec",
    "TensorDataset",
    "TorchTarget",
    "UnsafeModelError",
    "__version__",
    "assess",
    "breast_cancer",
    "clever_u",
    "defend",
    "digits",
    "evaluate_policy",
    "load_data",
    "load_dataset",
    "load_model",
    "load_policy",
    "load_target",
    "open_store",
    "run_attack",
    "run_plan",
]

if TYPE_CHECKING:
    from aisec.api import assess, defend, load_data, load_model, run_plan
    from aisec.attacks.base import Outcome, run_attack
    from aisec.core.check import Result
    from aisec.core.dataset import Dataset, DatasetInfo, TensorDataset
    from aisec.core.errors import (
        AisecError,
        BudgetExceeded,
        CapabilityError,
        ConfigError,
        DataError,
        OutputError,
        ShapeError,
        StoreError,
        TargetError,
        UnsafeModelError,
    )
    from aisec.core.evidence import Evidence, Measurement
    from aisec.core.plan import Plan
    from aisec.core.run import Run
    from aisec.core.target import Target, TargetSpec
    from aisec.core.types import Capability, Modality, Norm
    from aisec.data.builtin import breast_cancer, digits
    from aisec.data.loading import load_dataset
    from aisec.metrics.clever import clever_u
    from aisec.policy.rules import Policy, PolicyReport, evaluate_policy, load_policy
    from aisec.store import EvidenceStore, open_store
    from aisec.targets.hf import HfTextTarget
    from aisec.targets.hf_zero_shot import CausalLmClassifier
    from aisec.targets.http import HttpTarget
    from aisec.targets.loading import load_target
    from aisec.targets.onnx import OnnxTarget
    from aisec.targets.sklearn import ProbaTarget
    from aisec.targets.torch import TorchTarget


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'aisec' has no attribute '{name}'")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value  # later lookups skip __getattr__
    return value


def __dir__() -> list[str]:
    return sorted(__all__)
