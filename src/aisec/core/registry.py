"""One registry for every method family, its facts declared as data at registration.

Every pluggable method — evasion and text attacks, membership-inference attacks, poisoning attacks,
backdoor detectors, explainers, defences, named input preprocessings (for BPDA), checks and report
sections — registers with
:func:`register` (a decorator on the class or function that implements it). What the rest of aisec
needs to know about a method is declared there, once, as typed facts of a frozen dataclass (in the
spirit of scikit-learn's ``__sklearn_tags__`` and captum's capability queries): which target
capabilities it needs, its norms and natural norm, whether it is iterative (takes ``steps``),
stochastic, which modalities it handles, its budget unit, its ``Params`` model, its paper. Code asks
the registry for a fact instead of testing a method's name:

>>> get("evasion", "cw").natural_norm
<Norm.L2: 'l2'>
>>> names("explainer", stochastic=True)
['kernel_shap', 'lime', 'random']

Lookups load lazily: the first lookup in a family imports that family's built-in package(s) (every
module not starting with ``_``, so a new attack file registers itself) and, once for all families,
every entry point of the group ``aisec.plugins`` — a third-party module whose decorators register
its methods in any family. A plugin that fails to load is kept in :data:`PLUGIN_ERRORS` with its
error and shown by ``aisec plugins`` — never swallowed. A name registered twice (by two different
objects) is a :class:`~aisec.core.errors.ConfigError`.

The older entry points (:func:`register_attack`, :func:`register_check`, :func:`get_attack`,
:func:`get_check`, :data:`ATTACKS`, :data:`CHECKS`, :func:`load_plugins`) are thin views of this one.
"""

from __future__ import annotations

import dataclasses
import importlib
import importlib.util
import inspect
import pkgutil
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from enum import Enum, StrEnum
from importlib.metadata import entry_points
from typing import Any, ClassVar, Generic, Literal, TypeVar, overload

from aisec.core.errors import ConfigError
from aisec.core.types import Capability, Modality, Norm

T = TypeVar("T")
I = TypeVar("I", bound="MethodInfo")  # noqa: E741

Family = Literal[
    "evasion", "text", "inference", "poisoning", "detector", "explainer", "defence", "preprocessing", "check",
    "section",
]


class AttackKind(StrEnum):
    """How an attack's budget works.

    fixed_eps: finds an adversarial example inside a given eps-ball (FGSM, PGD);
    min_norm: finds the smallest perturbation it can (C&W, DeepFool, JSMA), so robust accuracy at
    any eps follows from one run.
    """

    FIXED_EPS = "fixed_eps"
    MIN_NORM = "min_norm"


# -- the facts --------------------------------------------------------------------------------------


@dataclass(frozen=True, kw_only=True)
class MethodInfo:
    """What every registered method declares.

    Attributes:
        family: the family it is registered in (``evasion``, ``explainer``, ...).
        name: its registry name (lowercase).
        obj: the class or function that implements it.
        summary: one line for listings (default: the first line of ``obj``'s docstring).
        paper: link to the paper it implements.
        requires: target capabilities it needs (empty: predicted labels suffice, or nothing).
        modalities: input modalities it handles (empty: any).
        aliases: other names it is found under (``ig`` for ``integrated_gradients``).
        params: its pydantic ``Params`` model, when it has one (default: ``obj.Params``).
    """

    family: str
    name: str
    obj: Any
    summary: str
    paper: str = ""
    requires: frozenset[Capability] = frozenset()
    modalities: frozenset[Modality] = frozenset()
    aliases: tuple[str, ...] = ()
    params: type[Any] | None = None

    _COMMON: ClassVar[frozenset[str]] = frozenset({"family", "name", "obj", "summary", "params"})

    @property
    def cls(self) -> Any:
        """The implementing class (or function); the name older code uses."""
        return self.obj

    @property
    def needs(self) -> frozenset[Capability]:
        """Same as :attr:`requires`."""
        return self.requires

    @classmethod
    def complete(cls, facts: dict[str, Any]) -> dict[str, Any]:
        """Fill in facts derived from others before the info is built (families override this)."""
        return facts

    def facts(self) -> dict[str, Any]:
        """The declared facts as JSON-ready values (enums as their values, sets sorted)."""
        out: dict[str, Any] = {}
        for f in dataclasses.fields(self):
            if f.name in self._COMMON:
                continue
            out[f.name] = _jsonable(getattr(self, f.name))
        return out

    def parameters(self) -> dict[str, str | None]:
        """Parameter name → default (as text; None when it has none or its default is None).

        From the ``Params`` model's fields, or, for a function without one, from its keyword
        arguments that have defaults.
        """
        if self.params is not None and hasattr(self.params, "model_fields"):
            out: dict[str, str | None] = {}
            for k, v in self.params.model_fields.items():
                if v.default_factory is not None:
                    out[k] = str(v.default_factory())
                else:
                    out[k] = None if v.default is None or repr(v.default) == "PydanticUndefined" else str(v.default)
            return out
        if inspect.isfunction(self.obj):
            sig = inspect.signature(self.obj)
            return {p.name: (None if p.default is None else str(p.default)) for p in sig.parameters.values()
                    if p.default is not inspect.Parameter.empty and p.name != "progress"}
        return {}


@dataclass(frozen=True, kw_only=True)
class AttackInfo(MethodInfo):
    """An evasion attack (family ``evasion``) or a text attack (family ``text``).

    Attributes:
        norms: norms of the perturbation budget it supports.
        targeted: whether it can aim at a chosen class.
        kind: fixed-eps or minimum-norm (:class:`AttackKind`).
        natural_norm: the norm it runs in when none is asked for (declared, else linf when it
            supports linf, else its first norm).
        iterative: it takes ``steps`` (the robustness check's ``--steps`` applies to it).
        budget_unit: the unit its budget counts in, when not a norm of the input (``words``).
        integer_budget: budgets are whole numbers (a count of edits).
        nested_budgets: one run at the largest budget gives every smaller one (a greedy attack that
            stops at its first success).
        default_eps: the budgets swept when none are given (empty: the check's grid for the norm).
        real_text: for text attacks, whether the adversarial input is real text (False for
            embedding-space attacks, whose results are a lower bound).
        baseline: a random-noise baseline (``gaussian-noise``, ``uniform-noise``): any gradient attack
            at the same norm and budget should be at least as strong, so one that is weaker points to
            gradient masking rather than robustness.
        surrogate: it crafts its examples on a surrogate model (``transfer``), whose training is its
            main cost; a scan's default grid leaves it and the baselines out (name them to run them).
    """

    norms: frozenset[Norm]
    targeted: bool
    kind: AttackKind
    natural_norm: Norm
    iterative: bool = False
    budget_unit: str | None = None
    integer_budget: bool = False
    nested_budgets: bool = False
    default_eps: tuple[float, ...] = ()
    real_text: bool = True
    baseline: bool = False
    surrogate: bool = False

    @classmethod
    def complete(cls, facts: dict[str, Any]) -> dict[str, Any]:
        norms = frozenset(facts.get("norms") or ())
        if not norms:
            raise ConfigError(f"attack '{facts.get('name')}' must declare the norms it supports")
        natural = facts.get("natural_norm")
        if natural is None:
            natural = Norm.LINF if Norm.LINF in norms else sorted(norms)[0]
        elif natural not in norms:
            raise ConfigError(f"attack '{facts.get('name')}': natural_norm {natural} is not one of its norms "
                              f"{sorted(n.value for n in norms)}")
        return {**facts, "norms": norms, "natural_norm": natural,
                "default_eps": tuple(float(e) for e in facts.get("default_eps", ()))}


@dataclass(frozen=True, kw_only=True)
class InferenceInfo(MethodInfo):
    """A membership-inference attack (family ``inference``).

    Attributes:
        needs_recipe: it trains models like the target (shadow/reference models) and needs the
            target's training recipe.
        labels_only: it needs predicted labels only.
    """

    needs_recipe: bool = False
    labels_only: bool = False


@dataclass(frozen=True, kw_only=True)
class PoisoningInfo(MethodInfo):
    """A poisoning attack (family ``poisoning``): it crafts poisoned training data.

    Attributes:
        clean_label: poisons keep their correct labels (perturbed target-class samples within an
            eps-ball); otherwise source-class samples get the trigger and the target label.
        trigger: the kind of trigger it plants by default (``patch`` or ``blend``).
        default_mode: how victims are trained unless told: ``retrain`` or ``finetune``.
    """

    clean_label: bool
    trigger: str = "patch"
    default_mode: str = "retrain"


@dataclass(frozen=True, kw_only=True)
class DetectorInfo(MethodInfo):
    """A backdoor detector (family ``detector``).

    Attributes:
        inspects: ``features`` (penultimate-layer features of the training data, poisons included)
            or ``model`` (the model itself, probed with clean samples).
        flags_samples: it flags individual samples as poisoned.
    """

    inspects: str
    flags_samples: bool = False


@dataclass(frozen=True, kw_only=True)
class ExplainerInfo(MethodInfo):
    """An explainer (family ``explainer``).

    Attributes:
        stochastic: results depend on the seed (re-running with another seed measures stability).
        perturbation: it explains by sending perturbed inputs (``num_samples`` of them) to a
            black box, as LIME and KernelSHAP do.
    """

    stochastic: bool = False
    perturbation: bool = False


@dataclass(frozen=True, kw_only=True)
class CheckInfo(MethodInfo):
    """A check (family ``check``): a measurement the ``assess`` command and API can run."""


@dataclass(frozen=True, kw_only=True)
class SectionInfo(MethodInfo):
    """A report section renderer (family ``section``), registered under the name of its check."""


@dataclass(frozen=True, kw_only=True)
class DefenceInfo(MethodInfo):
    """A defence (family ``defence``).

    Attributes (for preprocessing defences, :mod:`aisec.defences.preprocess`; they tell the robustness
    check which adaptive attack evaluates the defended model):
        differentiable: its input gradient is informative, so gradient attacks go through it exactly.
        stochastic: each forward draws fresh randomness (evaluated with EOT).
        piecewise_constant: not differentiable because it quantises (bit-depth, JPEG): its derivative
            is zero almost everywhere, and the wrapper gives autograd exactly that zero gradient;
            other non-differentiable defences expose no gradient path. Both are evaluated with BPDA.
    """

    differentiable: bool = True
    stochastic: bool = False
    piecewise_constant: bool = False


@dataclass(frozen=True, kw_only=True)
class PreprocessingInfo(MethodInfo):
    """A named input preprocessing (family ``preprocessing``) that a deployed model may apply before
    its classifier, such as bit-depth reduction; adaptive attacks differentiate through it with BPDA
    (:mod:`aisec.attacks.adaptive`). Named in plans as ``name`` or ``name:argument`` (``bit-depth:4``).

    Attributes:
        argument: what the text after the colon means (``bits``), empty when it takes none.
        default: the argument used when none is given.
        differentiable: its gradient is informative (False: zero almost everywhere, as for any
            quantiser, so a plain gradient attack through it finds nothing).
    """

    argument: str = ""
    default: str = ""
    differentiable: bool = False


@dataclass(frozen=True, kw_only=True)
class TrainingDefenceInfo(MethodInfo):
    """A training defence (family ``training``): a recipe that trains a defended copy of a model
    (``aisec defend``), such as PGD adversarial training; the model given is never modified.

    Attributes:
        inner: the attack its inner maximisation runs (``pgd``, ``fgsm``), empty when it has none.
    """

    inner: str = ""


@dataclass(frozen=True, kw_only=True)
class RejectorInfo(MethodInfo):
    """An input detector (family ``rejector``, :mod:`aisec.defences.detect`): it rejects inputs it takes for
    adversarial examples, in front of a classifier (the ``detection`` check evaluates it).

    Attributes:
        trained: fitted on adversarial examples the check generates (activation-based), not only calibrated.
        adaptive: how its adaptive attack gets through it (``differentiable``, ``bpda``).
    """

    trained: bool = False
    adaptive: str = ""


@dataclass(frozen=True)
class FamilySpec:
    """A family: its info type, the built-in packages imported on first lookup, its label."""

    name: str
    info: type[MethodInfo]
    packages: tuple[str, ...]
    label: str
    shared: str = ""  # families with the same non-empty ``shared`` share one namespace of names


# Every module in a family's packages is imported on first lookup, so a new file registers itself.
# The report sections live above core; they are imported by name (never by an import statement), as
# the checks are, so the report wing only imports core and core never imports it at load time.
FAMILIES: dict[str, FamilySpec] = {f.name: f for f in (
    FamilySpec("evasion", AttackInfo, ("aisec.attacks.evasion",), "attack", shared="attack"),
    FamilySpec("text", AttackInfo, ("aisec.attacks.text",), "attack", shared="attack"),
    FamilySpec("inference", InferenceInfo, ("aisec.attacks.inference",), "membership-inference attack"),
    FamilySpec("poisoning", PoisoningInfo, ("aisec.attacks.poisoning",), "poisoning attack"),
    FamilySpec("detector", DetectorInfo, ("aisec.detect",), "detection method"),
    FamilySpec("explainer", ExplainerInfo, ("aisec.explain",), "explainer"),
    FamilySpec("defence", DefenceInfo, ("aisec.defences",), "defence"),
    FamilySpec("preprocessing", PreprocessingInfo, ("aisec.attacks.adaptive",), "preprocessing"),
    FamilySpec("check", CheckInfo, ("aisec.checks",), "check"),
    FamilySpec("section", SectionInfo, ("aisec.report.sections",), "report section"),
    FamilySpec("training", TrainingDefenceInfo, ("aisec.defences.training",), "training defence"),
    FamilySpec("rejector", RejectorInfo, ("aisec.defences.detect",), "input detector"),
)}

_REGISTRY: dict[str, dict[str, MethodInfo]] = {f: {} for f in FAMILIES}
PLUGIN_ERRORS: dict[str, str] = {}
_loaded: set[str] = set()
_entry_points_loaded = False


def _jsonable(v: Any) -> Any:
    if isinstance(v, Enum):
        return v.value
    if isinstance(v, frozenset | set):
        return sorted(_jsonable(x) for x in v)
    if isinstance(v, tuple | list):
        return [_jsonable(x) for x in v]
    return v


def _family(family: str) -> FamilySpec:
    if family not in FAMILIES:
        raise ConfigError(f"unknown method family '{family}'; known: {', '.join(FAMILIES)}")
    return FAMILIES[family]


def _same(a: Any, b: Any) -> bool:
    """The same implementation (also when its module was imported again, e.g. by a test reload)."""
    return a is b or (getattr(a, "__module__", None) == getattr(b, "__module__", 0)
                      and getattr(a, "__qualname__", None) == getattr(b, "__qualname__", 0))


def register(family: str, name: str, **facts: Any) -> Callable[[T], T]:
    """Decorator: register the decorated class or function in ``family`` under ``name``.

    ``facts`` are the fields of the family's info dataclass (:class:`AttackInfo`,
    :class:`ExplainerInfo`, ...); ``summary`` defaults to the first docstring line and ``params`` to
    ``obj.Params``. Sets become frozensets.

    Raises:
        ConfigError: unknown family or fact, or ``name`` already taken by another object (in the
            family, or in a family sharing its namespace: evasion and text attacks).
    """
    spec = _family(family)
    key = name.lower()

    def deco(obj: T) -> T:
        for other in FAMILIES.values():
            if other.name != family and not (spec.shared and other.shared == spec.shared):
                continue
            prev = _REGISTRY[other.name].get(key)
            if prev is not None and not _same(prev.obj, obj):
                raise ConfigError(f"{spec.label} name '{key}' is registered twice ({prev.obj!r} in family "
                                  f"'{other.name}' and {obj!r}); choose another name")
        doc = (getattr(obj, "__doc__", None) or "").strip()
        values: dict[str, Any] = {
            "summary": doc.splitlines()[0] if doc else key, "params": getattr(obj, "Params", None), **facts,
        }
        for k in ("requires", "modalities"):
            if k in values:
                values[k] = frozenset(values[k] or ())
        values["aliases"] = tuple(a.lower() for a in values.get("aliases", ()))
        values = spec.info.complete({**values, "name": key})
        known = {f.name for f in dataclasses.fields(spec.info)} - {"family", "obj"}
        unknown = sorted(set(values) - known)
        if unknown:
            raise ConfigError(f"{spec.label} '{key}': unknown facts {unknown}; family '{family}' declares "
                              f"{sorted(known - {'name'})}")
        try:
            info = spec.info(family=family, obj=obj, **values)
        except TypeError as exc:  # a required fact missing
            raise ConfigError(f"{spec.label} '{key}' (family '{family}'): {exc}") from exc
        _REGISTRY[family][key] = info
        return obj

    return deco


def unregister(family: str, name: str) -> None:
    """Remove ``name`` from ``family`` (for tests and plugins that replace themselves)."""
    _REGISTRY[_family(family).name].pop(name.lower(), None)


# -- loading ----------------------------------------------------------------------------------------


def _import_package(pkg_name: str) -> None:
    if importlib.util.find_spec(pkg_name) is None:  # a family whose built-ins are not written yet
        return
    pkg = importlib.import_module(pkg_name)
    for mod in pkgutil.iter_modules(getattr(pkg, "__path__", [])):
        if not mod.name.startswith("_"):
            importlib.import_module(f"{pkg_name}.{mod.name}")


def _load_entry_points() -> None:
    global _entry_points_loaded
    if _entry_points_loaded:
        return
    _entry_points_loaded = True
    for ep in entry_points().select(group="aisec.plugins"):
        try:
            ep.load()
        except Exception as exc:  # a broken plugin must not hide the others; it is reported
            PLUGIN_ERRORS[ep.name] = f"{type(exc).__name__}: {exc}"


def load(*families: str) -> None:
    """Import the built-in packages of ``families`` (default: all) and the plugins, once each."""
    for fam in families or tuple(FAMILIES):
        spec = _family(fam)
        if fam in _loaded:
            continue
        _loaded.add(fam)
        for pkg in spec.packages:
            _import_package(pkg)
    _load_entry_points()


def load_plugins() -> None:
    """Import the built-in modules of every family and every ``aisec.plugins`` entry point, once."""
    load()


# -- lookups ----------------------------------------------------------------------------------------


def _find(family: str, name: str) -> MethodInfo | None:
    table = _REGISTRY[family]
    key = name.strip().lower()
    for k in dict.fromkeys((key, key.replace("-", "_"), key.replace("_", "-"))):
        if k in table:
            return table[k]
    for info in table.values():
        if key in info.aliases:
            return info
    return None


@overload
def get(family: Literal["evasion", "text"], name: str) -> AttackInfo: ...
@overload
def get(family: Literal["inference"], name: str) -> InferenceInfo: ...
@overload
def get(family: Literal["poisoning"], name: str) -> PoisoningInfo: ...
@overload
def get(family: Literal["detector"], name: str) -> DetectorInfo: ...
@overload
def get(family: Literal["explainer"], name: str) -> ExplainerInfo: ...
@overload
def get(family: Literal["preprocessing"], name: str) -> PreprocessingInfo: ...
@overload
def get(family: Literal["check"], name: str) -> CheckInfo: ...
@overload
def get(family: Literal["training"], name: str) -> TrainingDefenceInfo: ...
@overload
def get(family: Literal["rejector"], name: str) -> RejectorInfo: ...
@overload
def get(family: str, name: str) -> MethodInfo: ...
def get(family: str, name: str) -> MethodInfo:
    """The method ``name`` of ``family`` (case-insensitive; ``-`` and ``_`` alike; aliases resolved).

    Raises:
        ConfigError: no such method; the message lists the family's known names.
    """
    spec = _family(family)
    load(family)
    info = _find(family, name)
    if info is None:
        raise ConfigError(f"unknown {spec.label} '{name}'; known: {', '.join(sorted(_REGISTRY[family])) or 'none'}")
    return info


def methods(family: str) -> list[MethodInfo]:
    """Every method of ``family``, sorted by name."""
    _family(family)
    load(family)
    return sorted(_REGISTRY[family].values(), key=lambda m: m.name)


def names(family: str, **facts: Any) -> list[str]:
    """Sorted names of the methods of ``family`` whose facts equal ``facts``.

    >>> names("evasion", iterative=True)
    ['bim', 'cw', 'deepfool', 'pgd']
    """
    spec = _family(family)
    known = {f.name for f in dataclasses.fields(spec.info)}
    unknown = sorted(set(facts) - known)
    if unknown:
        raise ConfigError(f"family '{family}' has no facts {unknown}; it declares {sorted(known)}")
    return [m.name for m in methods(family) if all(getattr(m, k) == v for k, v in facts.items())]


def families() -> list[str]:
    """Every family name, in listing order."""
    return list(FAMILIES)


class _View(Mapping[str, I], Generic[I]):
    """A read-only, live view of some families' entries (no loading: call :func:`load` first)."""

    def __init__(self, *fams: str) -> None:
        self._fams = fams

    def _merged(self) -> dict[str, I]:
        out: dict[str, I] = {}
        for f in self._fams:
            out.update(_REGISTRY[f])  # type: ignore[arg-type]
        return out

    def __getitem__(self, key: str) -> I:
        for f in self._fams:
            if key in _REGISTRY[f]:
                return _REGISTRY[f][key]  # type: ignore[return-value]
        raise KeyError(key)

    def __iter__(self) -> Iterator[str]:
        return iter(self._merged())

    def __len__(self) -> int:
        return len(self._merged())

    def __repr__(self) -> str:
        return f"{type(self).__name__}{self._fams}: {sorted(self._merged())}"


# -- the older API, as views of the one registry ------------------------------------------------------

ATTACKS: Mapping[str, AttackInfo] = _View[AttackInfo]("evasion", "text")
CHECKS: Mapping[str, CheckInfo] = _View[CheckInfo]("check")


def register_attack(
    name: str,
    *,
    requires: set[Capability] | frozenset[Capability],
    norms: set[Norm] | frozenset[Norm],
    targeted: bool,
    kind: AttackKind,
    paper: str = "",
    **facts: Any,
) -> Callable[[type[T]], type[T]]:
    """Class decorator: register an evasion attack under ``name`` (see :class:`AttackInfo` for ``facts``)."""
    return register("evasion", name, requires=requires, norms=norms, targeted=targeted, kind=kind, paper=paper,
                    **facts)


def register_check(name: str, *, requires: set[Capability] | None = None) -> Callable[[type[T]], type[T]]:
    """Class decorator: register a check under ``name``."""
    return register("check", name, requires=frozenset(requires or ()))


def get_attack(name: str) -> AttackInfo:
    """An evasion or text attack by name."""
    load("evasion", "text")
    info = _find("evasion", name) or _find("text", name)
    if info is None:
        known = sorted([*_REGISTRY["evasion"], *_REGISTRY["text"]])
        raise ConfigError(f"unknown attack '{name}'; known: {', '.join(known)}")
    return info  # type: ignore[return-value]


def get_check(name: str) -> CheckInfo:
    """A check by name."""
    return get("check", name)


__all__ = [
    "ATTACKS", "CHECKS", "FAMILIES", "PLUGIN_ERRORS", "AttackInfo", "AttackKind", "CheckInfo", "DefenceInfo",
    "DetectorInfo", "ExplainerInfo", "FamilySpec", "InferenceInfo", "MethodInfo", "PoisoningInfo", "PreprocessingInfo",
    "SectionInfo",
    "families", "get", "get_attack", "get_check", "load", "load_plugins", "methods", "names", "register",
    "register_attack", "register_check", "unregister",
]
