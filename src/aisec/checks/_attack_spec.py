"""What one attack in a robustness check is: its name, norm, eps grid and parameters.

Shared by the image and the text paths of the robustness check (:mod:`aisec.checks.robustness`,
:mod:`aisec.checks._text_robustness`), so neither imports the other.
"""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, model_validator

from aisec.core.errors import ConfigError
from aisec.core.registry import get_attack
from aisec.core.types import Norm

DEFAULT_EPS: dict[Norm, list[float]] = {
    Norm.LINF: [2 / 255, 4 / 255, 8 / 255, 16 / 255, 32 / 255],
    Norm.L2: [0.25, 0.5, 1.0, 2.0],
    Norm.L1: [1.0, 2.0, 5.0, 10.0],
    Norm.L0: [0.01, 0.02, 0.05, 0.1],
    # mean pixels the unit-normalised mass moves (aisec.attacks.evasion.wasserstein); on the digits CNN
    # 0.05 / 0.1 / 0.2 break 6% / 19% / 78% of the samples
    Norm.WASSERSTEIN: [0.02, 0.05, 0.1, 0.2, 0.5],
}
EPS_MAX = 1e6
#: One perturbation budget: 0 (no perturbation) up to :data:`EPS_MAX`; NaN and infinity are refused.
Eps = Annotated[float, Field(ge=0, le=EPS_MAX, allow_inf_nan=False)]


class AttackSpec(BaseModel):
    """One attack to run: its name, norm, eps grid and extra parameters."""

    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)

    name: str
    norm: Norm | None = Field(default=None, description="Default: the attack's natural norm.")
    eps: list[Eps] | None = Field(
        default=None, description="Eps grid; default: the check's grid for this norm."
    )
    targeted: bool = Field(default=False, description="Aim at a random other class per sample.")
    params: dict[str, Any] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _params(self) -> AttackSpec:
        """Check ``params`` against the attack's own ``Params`` now, before any output is written
        (an unknown attack name is reported by the check, with the known names)."""
        try:
            info = get_attack(self.name)
        except ConfigError:
            return self
        if self.params:
            info.cls.Params(**self.params)
        return self

    def resolved_norm(self) -> Norm:
        """The norm asked for, else the attack's declared natural norm (:attr:`AttackInfo.natural_norm`)."""
        if self.norm is not None:
            return self.norm
        return get_attack(self.name).natural_norm
