"""Assessment plans: what to test, on what, with which checks — one model behind CLI flags,
YAML files and Python calls alike (``extra="forbid"``, so a typo is an error, not a silent default).

.. code-block:: yaml

    model:
      path: lenet.pt            # or a built-in: digits-cnn, lenet5-mnist, lenet5-mnist-adv
      arch: lenet5              # import path package.module:Class or a zoo name
      defence: jpeg:quality=75  # optional: assess the model behind a preprocessing defence
    data: fashion-mnist         # built-in name, folder or file
    seed: 0
    checks:
      robustness:
        attacks: [fgsm, pgd]
        eps: [0.05, 0.1, 0.2]
        samples: 200
"""

from __future__ import annotations

import math
import re
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from aisec.core.errors import ConfigError
from aisec.core.evidence import DEFAULT_TOE
from aisec.core.safety import MAX_CLASSES, read_yaml_mapping, short_repr, validation_lines
from aisec.core.target import Normalization, check_value_range

#: Elements one input sample may have (``input_shape``): 2**26, e.g. 3 x 4,096 x 5,461.
MAX_SAMPLE_ELEMENTS = 2**26
_DEVICE = re.compile(r"(cpu|mps|meta|(cuda|xpu)(:\d{1,3})?)")
#: endpoint options that are numbers, and the smallest value each may take (exclusive for seconds).
_ENDPOINT_NUMBERS: dict[str, tuple[float, bool]] = {
    "timeout": (0.0, False), "deadline": (0.0, False), "rate_limit": (0.0, False), "backoff": (0.0, True),
    "retries": (0.0, True), "max_batch": (1.0, True), "max_response_bytes": (1.0, True),
}


class ModelRef(BaseModel):
    """Where the model comes from and how to read it.

    Numbers are checked here, so YAML plans, CLI flags and Python calls get the same errors: shapes
    and class counts are positive (at most :data:`MAX_SAMPLE_ELEMENTS` elements per sample and
    :data:`~aisec.core.safety.MAX_CLASSES` classes), ``std`` is positive, NaN and infinity are refused,
    and a query budget is at least 1 (0 would allow no query; leave it out for no cap).
    """

    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)

    path: str = Field(description="Model file, or a built-in model name.")
    arch: str | None = Field(
        default=None, description="package.module:Class for weights files (an nn.Module class of aisec, of the "
        "current folder, or of a package allowed with --allow-module)."
    )
    arch_kwargs: dict[str, Any] = Field(default_factory=dict)
    input_shape: tuple[int, ...] | None = Field(default=None, description="Default: the data's.")
    num_classes: int | None = Field(default=None, ge=1, le=MAX_CLASSES, description="Default: the data's.")
    normalization: dict[str, tuple[float, ...]] | None = None
    value_range: tuple[float, float] | None = Field(
        default=None, description="Range of the model's inputs (default: the data's; (0, 1) for images and "
        "min-max scaled tables, the data's extremes for a table in raw units or z-scores).")
    device: str | None = Field(default=None, description="cpu, cuda, cuda:N, mps (default: cuda if available).")
    trust_model_code: bool = Field(
        default=False, description="Allow unpickling code from the model file (unsafe)."
    )
    query_budget: int | None = Field(
        default=None, description="Hard cap on samples sent to a black-box target (at least 1; omit for no cap)."
    )
    defence: str | None = Field(
        default=None, description="A preprocessing defence put in front of the model, name or name:key=value,... "
        "(jpeg:quality=75, bit-depth:bits=4, median:size=3, gaussian-blur:sigma=1, gaussian-noise:sigma=0.1, "
        "tv-min:weight=0.1); the model file is not modified.",
    )
    endpoint: dict[str, Any] = Field(
        default_factory=dict,
        description="HTTP target options: protocol (v2/json), model, timeout (seconds per read), deadline (seconds "
        "per request, default: timeout), retries, rate_limit, max_batch, request_template, response_path, log_path.",
    )

    @field_validator("input_shape")
    @classmethod
    def _shape(cls, v: tuple[int, ...] | None) -> tuple[int, ...] | None:
        if v is None:
            return v
        if not v or len(v) > 8 or any(d < 1 for d in v):
            raise ValueError(f"input_shape must be 1 to 8 positive sizes, e.g. 1,28,28; got {v}")
        if math.prod(v) > MAX_SAMPLE_ELEMENTS:
            raise ValueError(f"input_shape {v} has {math.prod(v)} elements per sample; at most {MAX_SAMPLE_ELEMENTS}")
        return v

    @field_validator("normalization")
    @classmethod
    def _norm(cls, v: dict[str, tuple[float, ...]] | None) -> dict[str, tuple[float, ...]] | None:
        if v is None:
            return v
        if set(v) != {"mean", "std"}:
            raise ValueError(f"normalization needs exactly 'mean' and 'std', got {sorted(v)}")
        if not v["mean"]:
            raise ValueError("normalization mean and std need one value per channel")
        try:  # the target's own model checks lengths and std > 0, so a plan is refused for what a target refuses
            Normalization(mean=v["mean"], std=v["std"])
        except ValidationError as exc:
            raise ValueError("normalization: " + "; ".join(str(e["msg"]).removeprefix("Value error, ")
                                                           for e in exc.errors())) from None
        return v

    @field_validator("value_range")
    @classmethod
    def _range(cls, v: tuple[float, float] | None) -> tuple[float, float] | None:
        return check_value_range(v) if v is not None else None

    @field_validator("device")
    @classmethod
    def _device(cls, v: str | None) -> str | None:
        if v is not None and not _DEVICE.fullmatch(v.strip()):
            raise ValueError(f"device must be cpu, cuda, cuda:N or mps, got {v!r}")
        return v.strip() if v is not None else v

    @field_validator("query_budget")
    @classmethod
    def _budget(cls, v: int | None) -> int | None:
        if v is not None and v < 1:
            raise ValueError(
                f"a query budget of {v} would allow no query at all; give at least 1, or leave it out for no cap"
            )
        return v

    @field_validator("defence")
    @classmethod
    def _defence(cls, v: str | None) -> str | None:
        if v is not None and not v.strip():
            raise ValueError("defence must name a defence, e.g. jpeg:quality=75 (leave it out for none)")
        return v.strip() if v is not None else v

    @field_validator("endpoint")
    @classmethod
    def _endpoint(cls, v: dict[str, Any]) -> dict[str, Any]:
        for key, (low, inclusive) in _ENDPOINT_NUMBERS.items():
            if v.get(key) is None:
                continue
            x = v[key]
            ok = isinstance(x, (int, float)) and not isinstance(x, bool) and math.isfinite(x) and (
                x >= low if inclusive else x > low)
            if not ok:
                bound = f"≥ {low:g}" if inclusive else f"> {low:g}"
                raise ValueError(f"endpoint {key} must be a finite number {bound}, got {short_repr(x)}")
        return v


#: How a CSV table's features are scaled before the model sees them (``auto``: by the model's kind).
TableScale = Literal["auto", "minmax", "standard", "none"]


class DataRef(BaseModel):
    model_config = ConfigDict(extra="forbid")

    source: str = Field(description="Built-in dataset name, a folder or a file.")
    options: dict[str, Any] = Field(default_factory=dict)
    scale: TableScale = Field(
        default="auto", description="CSV tables: the scaling the model was trained on — minmax (to [0, 1]), "
        "standard (z-scores) or none (raw values). auto: none for pickled scikit-learn, ONNX and HTTP models "
        "(which usually scale inside, or were trained on raw features), minmax for torch models.")

    @field_validator("options")
    @classmethod
    def _options(cls, v: dict[str, Any]) -> dict[str, Any]:
        if "scale" in v:
            raise ValueError("give the table scaling as data.scale (minmax, standard, none, auto), not as an option")
        if "allow_outside_paths" in v:
            raise ValueError(
                "allow_outside_paths cannot be set in a plan (a shared plan must not widen what aisec reads); "
                "pass --allow-outside-paths on the command line"
            )
        return v


class Rationale(BaseModel):
    """Why a plan made one choice: the check (None for the plan as a whole), what was chosen, and the
    threat-model fact it follows from (written by :func:`aisec.threats.planner.plan_for`)."""

    model_config = ConfigDict(extra="forbid")

    check: str | None = None
    choice: str
    because: str
    threats: list[str] = Field(default_factory=list)


def _default_checks() -> dict[str, dict[str, Any]]:
    return {"robustness": {}}


class Plan(BaseModel):
    """A complete, reproducible assessment request."""

    model_config = ConfigDict(extra="forbid")

    model: ModelRef
    data: DataRef
    checks: dict[str, dict[str, Any]] = Field(default_factory=_default_checks)
    seed: int = 0
    target_of_evaluation_id: str = DEFAULT_TOE
    threat_model: dict[str, Any] | None = Field(
        default=None, exclude_if=lambda v: v is None,
        description="The threat model this plan tests (aisec.threats.ThreatModel, as written by `aisec plan "
        "--threat-model`); the report's residual-risk section reads it.")
    rationale: list[Rationale] = Field(
        default_factory=list, exclude_if=lambda v: not v,
        description="Why each choice of a threat-model plan was made (kept in the plan and shown in the report).")

    @field_validator("model", mode="before")
    @classmethod
    def _model(cls, v: Any) -> Any:
        return {"path": v} if isinstance(v, str) else v

    @field_validator("data", mode="before")
    @classmethod
    def _data(cls, v: Any) -> Any:
        return {"source": v} if isinstance(v, str) else v

    @field_validator("checks", mode="before")
    @classmethod
    def _checks(cls, v: Any) -> Any:
        if isinstance(v, str):
            v = [c.strip() for c in v.split(",") if c.strip()]
        if isinstance(v, list):
            return {c: {} for c in v}
        return v

    @classmethod
    def from_yaml(cls, path: str | Path) -> Plan:
        raw = read_yaml_mapping(path, what="plan file", holds="model, data and checks")
        return cls.parse(raw, source=str(path))

    @classmethod
    def parse(cls, raw: dict[str, Any], *, source: str = "plan") -> Plan:
        try:
            return cls.model_validate(raw)
        except ValidationError as exc:
            raise ConfigError(f"invalid {source}:\n" + "\n".join(f"  {x}" for x in validation_lines(exc))) from exc

    def to_yaml(self) -> str:
        return yaml.safe_dump(self.model_dump(mode="json"), sort_keys=False)
