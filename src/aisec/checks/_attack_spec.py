"""What one attack in a robustness check is: its name, norm, eps grid and parameters.

Shared by the image and the text paths of the robustness check (:mod:`aisec.checks.robustness`,
:mod:`aisec.checks._text_robustness`), so neither imports the other.
"""

from __future__ import annotations

from typing import Annotated, Any, cast

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from aisec.core.errors import ConfigError
from aisec.core.registry import AttackInfo, get, get_attack, names
from aisec.core.types import Capability, Norm

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
    bpda: str | None = Field(
        default=None, description="A registered preprocessing the deployed system applies in front of the model "
        "(e.g. 'bit-depth:4'): this attack runs on model(preprocessing(x)) with gradients straight through the "
        "preprocessing (BPDA) and is scored on that system, clean accuracy included.")
    eot: int | None = Field(default=None, ge=1, le=1000, description="Average this many stochastic forwards per "
                            "gradient (EOT), for a randomised model.")

    @field_validator("bpda")
    @classmethod
    def _bpda(cls, v: str | None) -> str | None:
        """A known preprocessing with a valid argument, now (the message lists the known names)."""
        if v is None:
            return v
        from aisec.attacks.adaptive.preprocess import preprocessing

        try:
            preprocessing(v)
        except ConfigError as exc:
            raise ValueError(str(exc)) from None
        return v.strip()

    def wrapper_label(self) -> str | None:
        """How the attack reaches the model, in words (``BPDA through bit-depth:4, EOT over 16 draws``), or None."""
        bits = ([f"BPDA through {self.bpda}"] if self.bpda else []) + (
            [f"EOT over {self.eot} draws"] if self.eot else [])
        return ", ".join(bits) or None

    def key_suffix(self) -> str:
        """What the wrappers add to the curve's key (``+bpda-bit-depth-4+eot16``): table columns stay ``key@eps:x``."""
        return (f"+bpda-{self.bpda.replace(':', '-')}" if self.bpda else "") + (f"+eot{self.eot}" if self.eot else "")

    @model_validator(mode="after")
    def _params(self) -> AttackSpec:
        """Check ``params`` against the attack's own ``Params`` now, before any output is written
        (an unknown attack name is reported by the check, with the known names)."""
        if self.name.lower() == ALL:
            return self
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


#: The attack name that stands for every registered attack of the family the target can take.
ALL = "all"


def select_attacks(
    specs: list[AttackSpec],
    *,
    family: str,
    capabilities: frozenset[Capability],
    skip: list[str],
    targeted: bool = False,
) -> tuple[list[AttackSpec], list[str]]:
    """The attacks to run, and a note for each one left out.

    A spec named :data:`ALL` expands to every registered attack of ``family`` (sorted by name) that
    the target can take: its required capabilities are in ``capabilities``, the spec's norm (else
    the attack's natural norm) is one it supports, and it can be targeted when the spec (or the
    whole run, ``targeted``) is. The spec's ``params`` go to each expanded attack that declares
    them. An attack named explicitly stays (and later fails loudly if the target cannot take it),
    except that in a targeted run an untargetable one is skipped with a note instead of stopping
    the run. Names in ``skip`` are removed from the selection; an unknown name there, or a
    selection left empty, is a :class:`ConfigError`.
    """
    known = names(family)
    every = sorted({*names("evasion"), *names("text")})
    unknown = sorted({s.lower() for s in skip} - set(every))
    if unknown:
        raise ConfigError(f"cannot skip unknown attack(s) {unknown}; known attacks: {', '.join(every)}")
    skipped = {s.lower() for s in skip}
    out: list[AttackSpec] = []
    notes: list[str] = []
    for spec in specs:
        want_targeted = spec.targeted or targeted
        if spec.name.lower() != ALL:
            info = get_attack(spec.name)
            if info.name in skipped:
                continue
            if want_targeted and not info.targeted:
                notes.append(f"attack '{info.name}' skipped: it cannot be targeted")
                continue
            out.append(spec)
            continue
        for name in known:
            if name in skipped:
                continue
            info = cast(AttackInfo, get(family, name))
            missing = sorted(c.value for c in info.requires - capabilities)
            norm = spec.norm if spec.norm is not None else info.natural_norm
            if missing:
                notes.append(f"attack '{name}' skipped: the target lacks {', '.join(missing)}")
            elif norm not in info.norms:
                notes.append(f"attack '{name}' skipped: it supports norms "
                             f"{sorted(n.value for n in info.norms)}, not '{norm.value}'")
            elif want_targeted and not info.targeted:
                notes.append(f"attack '{name}' skipped: it cannot be targeted")
            else:
                fields = info.cls.Params.model_fields
                params = {k: v for k, v in spec.params.items() if k in fields}
                out.append(spec.model_copy(update={"name": name, "params": params}))
    if not out:
        raise ConfigError("no attack left to run" + (": " + "; ".join(notes) if notes else
                                                      " (every selected attack is in 'skip')"))
    return out, notes
