"""Preprocessing defences as target wrappers: the base class, the wrapper and the ``--defence`` parser.

A preprocessing defence ``h`` is put in front of a classifier ``g``; the deployed system is
``f(x) = g(h(x))``. :class:`DefendedTarget` is ``f`` as a :class:`~aisec.core.target.Target` (the
model file is never touched). What its ``logits`` let autograd see is the truth about ``h``, so the
robustness check's probes find what a real attacker would (Athalye, Carlini & Wagner 2018,
https://arxiv.org/abs/1802.00420):

- a **differentiable** defence (Gaussian blur, Gaussian noise) is differentiated through exactly;
- a **piecewise-constant** one (bit-depth, JPEG: both quantise their input) has derivative zero
  almost everywhere, and the wrapper gives exactly that zero gradient — a plain PGD cannot move
  (the check's ``zero_gradients`` flag);
- any other non-differentiable one (median, TV minimisation: numerical steps outside autograd)
  exposes no gradient path at all (the ``no_gradient_path`` flag).

For both non-differentiable kinds the check's escalation builds :meth:`DefendedTarget.bpda` — BPDA
with the defence itself as the forward preprocessing and the identity (straight-through) as its
backward approximation — and a **stochastic** defence (Gaussian noise) answers each query with a
fresh draw, which the ``randomized`` probe sees and EOT averages.

A defence is named ``name`` or ``name:key=value,key=value`` (``jpeg:quality=75``,
``gaussian-blur:sigma=1``; a bare first value is the first parameter, ``jpeg:75``); :func:`parse_defence`
builds it from its registered, typed ``Params``.
"""

from __future__ import annotations

from typing import Any, ClassVar

import torch
from pydantic import BaseModel, ConfigDict, ValidationError

from aisec.attacks.adaptive.bpda import BPDATarget
from aisec.core.errors import ConfigError
from aisec.core.registry import DefenceInfo, get, methods
from aisec.core.target import Target, WrappedTarget


class DefenceParams(BaseModel):
    """Base of every preprocessing defence's parameters (typo → error, NaN refused)."""

    model_config = ConfigDict(extra="forbid", allow_inf_nan=False, frozen=True)


class PreprocessDefence:
    """A preprocessing defence ``h``: ``(x, value_range) -> x'`` of the same shape, inside the range.

    Subclasses set ``Params`` and ``name``, and write :meth:`transform`; the registry holds the facts
    (``differentiable``, ``stochastic``, ``piecewise_constant``), mirrored here for the wrapper.
    ``image_only``: the defence needs image inputs ``(C, H, W)``.
    """

    Params: ClassVar[type[DefenceParams]] = DefenceParams
    name: ClassVar[str] = ""
    image_only: ClassVar[bool] = True

    def __init__(self, params: DefenceParams | None = None, **kwargs: Any) -> None:
        self.params = params if params is not None else self.Params(**kwargs)
        info = self.info()
        self.differentiable = info.differentiable
        self.stochastic = info.stochastic
        self.piecewise_constant = info.piecewise_constant

    @classmethod
    def info(cls) -> DefenceInfo:
        found = get("defence", cls.name)
        if not isinstance(found, DefenceInfo):  # pragma: no cover - the family's info type
            raise ConfigError(f"defence '{cls.name}' is not registered as a defence")
        return found

    def transform(self, x: torch.Tensor, value_range: tuple[float, float]) -> torch.Tensor:
        """``h(x)`` for a batch ``(N, ...)`` in ``value_range``."""
        raise NotImplementedError

    def check_shape(self, input_shape: tuple[int, ...], model: str) -> None:
        """Refuse inputs the defence cannot take, before any work (one line)."""
        if self.image_only and len(input_shape) != 3:
            raise ConfigError(f"defence '{self.name}' needs image inputs (channels, height, width); model "
                              f"'{model}' takes samples of shape {input_shape}")

    def __call__(self, x: torch.Tensor, value_range: tuple[float, float]) -> torch.Tensor:
        return self.transform(x, value_range)

    def label(self) -> str:
        """``name:key=value,...`` with every parameter (the canonical spec, e.g. ``jpeg:quality=75``)."""
        values = self.params.model_dump(mode="json")
        return self.name + (":" + ",".join(f"{k}={_fmt(v)}" for k, v in values.items()) if values else "")

    def record(self) -> dict[str, Any]:
        """What the evidence and ``result.json`` keep of the defence: name, parameters, facts."""
        return {"name": self.name, "spec": self.label(), "params": self.params.model_dump(mode="json"),
                "differentiable": self.differentiable, "stochastic": self.stochastic,
                "piecewise_constant": self.piecewise_constant}


def _fmt(v: Any) -> str:
    return f"{v:g}" if isinstance(v, float) else str(v).lower() if isinstance(v, bool) else str(v)


def preprocess_names() -> list[str]:
    """The registered defences that are preprocessing wrappers (what ``--defence`` takes)."""
    return [m.name for m in methods("defence") if isinstance(m.obj, type) and issubclass(m.obj, PreprocessDefence)]


def parse_defence(spec: str) -> PreprocessDefence:
    """The preprocessing defence ``spec`` names: ``name`` or ``name:key=value,...`` (``jpeg:quality=75``).

    Raises:
        ConfigError: one line — unknown name (listing the known ones), a malformed or unknown
            parameter, or a value its ``Params`` refuses.
    """
    known = ", ".join(preprocess_names())
    name, _, rest = spec.strip().partition(":")
    if not name:
        raise ConfigError(f"no defence named; known: {known}")
    try:
        info = get("defence", name)
    except ConfigError:
        raise ConfigError(f"unknown defence '{name}'; known: {known}") from None
    cls = info.obj
    if not (isinstance(cls, type) and issubclass(cls, PreprocessDefence)):
        raise ConfigError(f"defence '{info.name}' is not a preprocessing wrapper (it trains a model: use "
                          f"`aisec defend`); --defence takes: {known}")
    values: dict[str, str] = {}
    first = next(iter(cls.Params.model_fields), None)
    for i, part in enumerate(p.strip() for p in rest.split(",") if p.strip()):
        key, eq, value = part.partition("=")
        if not eq and i == 0 and first is not None:  # ``jpeg:75``: a bare value is the first parameter
            key, eq, value = first, "=", part
        if not eq or not key.strip():
            raise ConfigError(f"defence '{info.name}': parameters are key=value pairs, got '{part}' "
                              f"(e.g. {info.name}:{_example(cls)})")
        values[key.strip().replace("-", "_")] = value.strip()
    try:
        params = cls.Params(**values)
    except ValidationError as exc:
        e = exc.errors(include_url=False)[0]
        field = ".".join(str(x) for x in e["loc"])
        msg = str(e["msg"]).removeprefix("Value error, ")
        fields = ", ".join(cls.Params.model_fields) or "none"
        raise ConfigError(f"defence '{info.name}': {field}: {msg} (its parameters: {fields})") from None
    built: PreprocessDefence = cls(params)
    return built


def _example(cls: type[PreprocessDefence]) -> str:
    fields = cls.Params.model_fields
    return ",".join(f"{k}={_fmt(f.default)}" for k, f in fields.items()) or "(no parameters)"


class DefendedTarget(WrappedTarget):
    """The model ``target`` behind the preprocessing ``defence``: the deployed system ``g(h(x))``.

    ``predict`` and ``logits`` apply the defence first (each call a fresh draw for a stochastic one);
    what ``logits`` lets autograd see follows the defence's facts (see the module docstring).
    ``queries`` are those of ``target``. The spec is ``target``'s, renamed ``<name>+<defence spec>``.

    >>> defended = DefendedTarget(target, parse_defence("jpeg:quality=75"))
    >>> defended.predict(x)            # the model's answer on JPEG-compressed inputs
    """

    def __init__(self, target: Target, defence: PreprocessDefence | str) -> None:
        self.defence = parse_defence(defence) if isinstance(defence, str) else defence
        self.defence.check_shape(tuple(target.spec.input_shape), target.spec.name)
        super().__init__(target, f"{target.spec.name}+{self.defence.label()}")
        self.defence_record = self.defence.record()

    def preprocess(self, x: torch.Tensor) -> torch.Tensor:
        """``h(x)`` without a gradient (the exact forward of the defence)."""
        with torch.no_grad():
            return self.defence(x.detach(), self._spec.value_range)

    def logits(self, x: torch.Tensor) -> torch.Tensor:
        """``g(h(x))``; its input gradient is exact, zero (piecewise constant) or absent (see the module doc)."""
        if self.defence.differentiable:
            return self.target.logits(self.defence(x, self._spec.value_range))
        hx = self.preprocess(x)
        if self.defence.piecewise_constant and x.requires_grad:
            # the derivative of a piecewise-constant map is 0 almost everywhere: give autograd exactly that
            hx = hx + 0.0 * x
        return self.target.logits(hx)

    def predict(self, x: torch.Tensor) -> torch.Tensor:
        """The defended system's probabilities ``softmax(g(h(x)))``."""
        return self.target.predict(self.preprocess(x))

    def bpda(self) -> BPDATarget:
        """BPDA on this system: the defence exactly in the forward pass, the identity in the backward one
        (straight-through), on the undefended classifier's gradients (Athalye et al. 2018, section 4.1)."""
        value_range = self._spec.value_range
        defence = self.defence

        def h(x: torch.Tensor) -> torch.Tensor:
            return defence(x, value_range)

        h.__name__ = defence.label()  # the BPDA target is named bpda(<defence spec>)-<model>
        return BPDATarget(self.target, h)


def bpda_of(target: Target) -> Target:
    """The BPDA target for a defended system (the robustness check's escalation wrapper ``BPDA``).

    Raises:
        ConfigError: ``target`` is not a :class:`DefendedTarget` with a non-differentiable defence, so
            there is no named preprocessing to approximate.
    """
    if not isinstance(target, DefendedTarget):
        raise ConfigError("BPDA needs the preprocessing in front of the classifier; this target declares none "
                          "(give the defence with --defence so aisec can approximate it)")
    if target.defence.differentiable:
        raise ConfigError(f"defence '{target.defence.name}' is differentiable: gradient attacks go through it "
                          "exactly, BPDA adds nothing")
    return target.bpda()


__all__ = ["DefenceParams", "DefendedTarget", "PreprocessDefence", "bpda_of", "parse_defence", "preprocess_names"]
