"""Assessment plans: what to test, on what, with which checks — one model behind CLI flags,
YAML files and Python calls alike (``extra="forbid"``, so a typo is an error, not a silent default).

.. code-block:: yaml

    model:
      path: lenet.pt            # or a built-in: digits-cnn, lenet5-mnist, lenet5-mnist-adv
      arch: lenet5              # import path package.module:Class or a zoo name
    data: fashion-mnist         # built-in name, folder or file
    seed: 0
    checks:
      robustness:
        attacks: [fgsm, pgd]
        eps: [0.05, 0.1, 0.2]
        samples: 200
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from aisec.core.errors import ConfigError
from aisec.core.evidence import DEFAULT_TOE


class ModelRef(BaseModel):
    """Where the model comes from and how to read it."""

    model_config = ConfigDict(extra="forbid")

    path: str = Field(description="Model file, or a built-in model name.")
    arch: str | None = Field(default=None, description="package.module:Class for weights files.")
    arch_kwargs: dict[str, Any] = Field(default_factory=dict)
    input_shape: tuple[int, ...] | None = Field(default=None, description="Default: the data's.")
    num_classes: int | None = Field(default=None, description="Default: the data's.")
    normalization: dict[str, tuple[float, ...]] | None = None
    value_range: tuple[float, float] = (0.0, 1.0)
    device: str | None = None
    trust_model_code: bool = Field(
        default=False, description="Allow unpickling code from the model file (unsafe)."
    )
    query_budget: int | None = Field(default=None, description="Hard cap on samples sent to a black-box target.")
    endpoint: dict[str, Any] = Field(
        default_factory=dict,
        description="HTTP target options: protocol (v2/json), model, timeout, retries, rate_limit, max_batch, "
        "request_template, response_path, log_path.",
    )


class DataRef(BaseModel):
    model_config = ConfigDict(extra="forbid")

    source: str = Field(description="Built-in dataset name, a folder or a file.")
    options: dict[str, Any] = Field(default_factory=dict)


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
        p = Path(path)
        if not p.is_file():
            raise ConfigError(f"plan file not found: {p}")
        try:
            raw = yaml.safe_load(p.read_text(encoding="utf-8"))
        except yaml.YAMLError as exc:
            raise ConfigError(f"plan file {p} is not valid YAML: {exc}") from exc
        if not isinstance(raw, dict):
            raise ConfigError(f"plan file {p} must hold a mapping with model, data and checks")
        return cls.parse(raw, source=str(p))

    @classmethod
    def parse(cls, raw: dict[str, Any], *, source: str = "plan") -> Plan:
        try:
            return cls.model_validate(raw)
        except ValidationError as exc:
            raise ConfigError(f"invalid {source}:\n{_errors(exc)}") from exc

    def to_yaml(self) -> str:
        return yaml.safe_dump(self.model_dump(mode="json"), sort_keys=False)


def _errors(exc: ValidationError) -> str:
    lines = []
    for e in exc.errors():
        loc = ".".join(str(x) for x in e["loc"])
        lines.append(f"  {loc}: {e['msg']}" + (f" (got {e['input']!r})" if "input" in e else ""))
    return "\n".join(lines)
