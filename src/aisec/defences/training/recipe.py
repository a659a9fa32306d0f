"""A training-defence recipe: the defence's name and its typed parameters, from text, a dict or a plan.

Written on the command line as ``name:key=value,key=value`` (``pgd-at:eps=0.1,epochs=5``;
fractions such as ``8/255`` are numbers), in a plan as ``{name: pgd-at, eps: 0.1, epochs: 5}``.
Either way the parameters are validated against the defence's ``Params`` before anything is
trained or written, and a bad recipe is one line naming the parameter and what it accepts.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from aisec.core.errors import ConfigError
from aisec.core.flags import parse_number
from aisec.core.registry import TrainingDefenceInfo, get
from aisec.core.safety import short_repr
from aisec.defences.training.base import TrainingParams


class DefenceRecipe(BaseModel):
    """A training defence and its parameters (validated: :attr:`params` is the defence's ``Params``)."""

    model_config = ConfigDict(extra="forbid", frozen=True, arbitrary_types_allowed=True)

    name: str = Field(description="Registered training defence (pgd-at, fast-fgsm, trades, gaussian-augment, "
                                  "denoiser).")
    params: TrainingParams = Field(description="The defence's parameters, validated against its Params.")

    @model_validator(mode="before")
    @classmethod
    def _typed(cls, v: Any) -> Any:
        if isinstance(v, str):
            return _from_text(v)
        if isinstance(v, dict):
            given = dict(v)
            name = given.pop("name", None)
            if not isinstance(name, str) or not name.strip():
                raise ValueError("a recipe needs a 'name' (a training defence: "
                                 f"{', '.join(_known())})")
            raw = given.pop("params", None)
            if raw is not None and not isinstance(raw, dict | TrainingParams):
                raise ValueError(f"recipe params must be a mapping, got {short_repr(raw)}")
            if isinstance(raw, TrainingParams):
                return {"name": _info(name).name, "params": raw}
            return {"name": _info(name).name, "params": _params(_info(name), {**(raw or {}), **given})}
        return v

    @property
    def info(self) -> TrainingDefenceInfo:
        """The defence's registry entry."""
        return _info(self.name)

    def label(self) -> str:
        """``pgd-at:eps=0.1,epochs=5``: the name and the parameters the recipe set (the rest are defaults)."""
        changed = self.params.model_dump(mode="json", exclude_unset=True)
        return self.name + (":" + ",".join(f"{k}={v}" for k, v in changed.items()) if changed else "")


def parse_recipe(spec: str | dict[str, Any] | DefenceRecipe) -> DefenceRecipe:
    """A :class:`DefenceRecipe` from ``name:key=value,...``, a plan mapping or a recipe.

    Raises:
        ConfigError: unknown defence (the message lists the known ones), unknown parameter, or a
            value the parameter does not accept — one line.
    """
    if isinstance(spec, DefenceRecipe):
        return spec
    try:
        return DefenceRecipe.model_validate(spec)
    except ValidationError as exc:
        reason = "; ".join(str(e["msg"]).removeprefix("Value error, ") for e in exc.errors(include_url=False)[:3])
        raise ConfigError(f"recipe {short_repr(spec)}: {reason}") from None


def _known() -> list[str]:
    from aisec.core.registry import names

    return names("training")


def _info(name: str) -> TrainingDefenceInfo:
    info = get("training", name)
    return info


def _from_text(text: str) -> dict[str, Any]:
    name, _, rest = text.strip().partition(":")
    if not name.strip():
        raise ValueError(f"a recipe is name:key=value,... (e.g. pgd-at:eps=0.1,epochs=5); known: {', '.join(_known())}")
    info = _info(name)
    values: dict[str, Any] = {}
    for item in (p.strip() for p in rest.split(",")):
        if not item:
            continue
        key, eq, val = item.partition("=")
        if not eq or not key.strip():
            raise ValueError(f"'{item}' is not key=value (e.g. eps=0.1); {info.name} takes "
                             f"{', '.join(info.params.model_fields) if info.params else 'no parameters'}")
        values[key.strip().replace("-", "_")] = _value(val.strip())
    return {"name": info.name, "params": _params(info, values)}


def _value(text: str) -> Any:
    """``8/255`` → a float; everything else stays text, which pydantic reads as the field's type."""
    if "/" in text:
        try:
            return parse_number(text)
        except (ValueError, ZeroDivisionError):
            return text
    return text


def _params(info: TrainingDefenceInfo, values: dict[str, Any]) -> TrainingParams:
    cls = info.params
    if cls is None or not issubclass(cls, TrainingParams):
        raise ValueError(f"training defence '{info.name}' declares no TrainingParams")
    try:
        out: TrainingParams = cls.model_validate(values)
    except ValidationError as exc:
        raise ValueError(f"{info.name}: {_first(exc, fields=list(cls.model_fields))}") from None
    return out


def _first(exc: ValidationError, fields: list[str] | None = None) -> str:
    parts = []
    for e in exc.errors(include_url=False)[:3]:
        msg = str(e["msg"]).removeprefix("Value error, ")
        loc = ".".join(str(x) for x in e["loc"])
        got = f" (got {short_repr(e['input'])})" if "input" in e and not isinstance(e["input"], dict) else ""
        if e["type"] == "extra_forbidden" and fields:
            msg = f"unknown parameter; it takes {', '.join(fields)}"
        parts.append(f"{loc + ': ' if loc else ''}{msg}{got}")
    return "; ".join(parts)
