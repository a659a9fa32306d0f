"""Tabular constraints: which inputs are *valid rows* of a table, and projection onto them.

An adversarial example for a credit-scoring model that sets ``age = 37.4``, ``sex = 0.5`` or two
``education_*`` one-hot columns to 1 at once is not an input the real system could ever receive, so
its "success" says nothing about the model's security. :class:`TabularConstraints` states, per
feature: a ``[lo, hi]`` range, integer features, one-hot groups (exactly one 1 per group), ordinal
categorical features (a set of allowed values) and immutable features (never changed, e.g. age or
sex). :meth:`TabularConstraints.project` maps any candidate to a nearby valid point, vectorised over
the batch (no per-sample loops); :meth:`TabularConstraints.violations` counts what is broken.

**Two spaces.** Constraints are written in the *domain* units of the table (age in years, income in
euros). Models often see scaled inputs instead: :class:`~aisec.data.table.CsvTable` scales as its
``scale`` says (min-max to [0, 1], z-scores, or none) and the built-in tables min-max scale every
feature to [0, 1]. ``offset`` and ``scale`` say how:
``domain = model_input * scale + offset`` (default: the identity). Projection happens in domain
units and the result is mapped back, so "integer" means integer *years*, not integer scaled values.
Tolerances (``tol``) are in model-input units.

**Inferred constraints** (:meth:`TabularConstraints.from_table`, :meth:`~TabularConstraints.infer`,
:func:`aisec.data.table.constraints_from_csv`)
take ranges from the data: they are the *observed* minimum and maximum, not the domain's true
bounds (an income above the table's maximum may be perfectly valid, and one below its minimum
invalid). Columns whose every value is a whole number become integer features; 0/1 columns sharing a
name prefix (``color_red``, ``color_blue``; pandas ``get_dummies`` style) whose rows always sum to 1
become one-hot groups. Nothing is inferred as immutable: that is a decision about the threat model.
Review an inferred file before relying on it (``aisec scan`` writes the constraints it used).

File format (YAML or JSON; features by name, when ``feature_names`` is given, or by 0-based index)::

    num_features: 6
    feature_names: [age, sex, income, edu_low, edu_mid, edu_high]
    ranges: {age: [18, 99], income: [0, 250000]}
    integer: [age]
    one_hot: [[edu_low, edu_mid, edu_high]]
    categorical: {sex: [0, 1]}
    immutable: [age, sex]

Attacks apply constraints through :func:`bind_constraints`: :func:`~aisec.attacks.base.run_attack`
binds them for each batch, the black-box attacks' query ledger projects every query it sends, the
white-box PGD loop projects after every step, and ``run_attack`` projects every returned example.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import math
import re
from collections.abc import Iterator, Sequence
from contextvars import ContextVar
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import torch
from pydantic import BaseModel, ConfigDict, Field, PrivateAttr, ValidationError, model_validator

from aisec.core.errors import ConfigError, DataError
from aisec.core.types import Norm


class RawTable(Protocol):
    """What :meth:`TabularConstraints.from_table` reads of a table: its rows in domain units and the
    affine scaling its batches apply. :class:`aisec.data.table.CsvTable` is one."""

    @property
    def feature_names(self) -> Sequence[str]: ...
    @property
    def source_name(self) -> str: ...
    @property
    def scaling(self) -> tuple[np.ndarray, np.ndarray]: ...
    def raw_features(self) -> np.ndarray: ...

Feature = int | str
KINDS = ("range", "integer", "one_hot", "categorical", "immutable")


def read_yaml_or_json(path: Path, *, what: str) -> Any:
    """Parse a ``.json`` file as JSON, anything else as YAML (safe loader: no objects built)."""
    if path.suffix.lower() != ".json":
        from aisec.core.safety import load_yaml

        return load_yaml(path, what=what)  # no aliases, bounded size and depth
    text = path.read_text(encoding="utf-8")
    try:
        return json.loads(text)
    except (ValueError, RecursionError) as exc:  # json.JSONDecodeError, a reply nested too deeply
        raise ConfigError(f"cannot parse {what} '{path}': {exc}") from exc


@dataclass(frozen=True)
class _Plan:
    """The constraints resolved to index tensors (float64, CPU); built once per model."""

    lo: torch.Tensor  # (D,) domain lower bounds (-inf where free)
    hi: torch.Tensor  # (D,)
    integer: torch.Tensor  # (D,) bool
    immutable: torch.Tensor  # (D,) bool
    cat_idx: torch.Tensor  # (C,) long
    cat_vals: torch.Tensor  # (C, K) allowed values, NaN-padded
    oh_idx: torch.Tensor  # (G, M) long, padded with the group's first index
    oh_valid: torch.Tensor  # (G, M) bool
    offset: torch.Tensor  # (D,)
    scale: torch.Tensor  # (D,)

    def to(self, device: torch.device) -> _Plan:
        if self.lo.device == device:
            return self
        return _Plan(*(getattr(self, f).to(device) for f in self.__dataclass_fields__))


class TabularConstraints(BaseModel):
    """Validity constraints of a table's rows (see the module docstring for the file format).

    >>> c = TabularConstraints(num_features=3, integer=[0], immutable=[2], ranges={0: (0, 10)})
    >>> c.project(torch.tensor([[3.6, 0.2, 9.0]]), torch.tensor([[3.0, 0.0, 1.0]]))
    tensor([[4.0000, 0.2000, 1.0000]])
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    num_features: int = Field(ge=1, description="Features per row (D).")
    feature_names: tuple[str, ...] | None = Field(default=None, description="Column names, to refer to by name.")
    ranges: dict[Feature, tuple[float, float]] = Field(
        default_factory=dict, description="Per-feature [lo, hi] in domain units; others are free."
    )
    integer: tuple[Feature, ...] = Field(default=(), description="Features that take whole numbers only.")
    one_hot: tuple[tuple[Feature, ...], ...] = Field(
        default=(), description="Groups of 0/1 features with exactly one 1 per group."
    )
    categorical: dict[Feature, tuple[float, ...]] = Field(
        default_factory=dict, description="Ordinal categorical features and their allowed values."
    )
    immutable: tuple[Feature, ...] = Field(default=(), description="Features an attacker cannot change.")
    offset: tuple[float, ...] | None = Field(default=None, description="domain = input * scale + offset.")
    scale: tuple[float, ...] | None = Field(default=None, description="Per-feature scale (> 0).")
    source: str = Field(default="", description="Where these came from (a file, or 'inferred from ...').")

    _plan: _Plan = PrivateAttr()

    @model_validator(mode="after")
    def _resolve(self) -> TabularConstraints:
        d = self.num_features
        names = {n.lower(): i for i, n in enumerate(self.feature_names or ())}
        if self.feature_names is not None and len(self.feature_names) != d:
            raise ValueError(f"feature_names has {len(self.feature_names)} names but num_features is {d}")

        def idx(f: Feature, where: str) -> int:
            if isinstance(f, str):
                key = f.strip().lower()
                if key in names:
                    return names[key]
                if not re.fullmatch(r"-?\d+", key):
                    known = f"; known: {', '.join(self.feature_names)}" if self.feature_names else ""
                    raise ValueError(f"{where}: unknown feature '{f}'{known}")
                f = int(key)
            if not 0 <= f < d:
                raise ValueError(f"{where}: feature index {f} is outside 0..{d - 1}")
            return f

        lo = torch.full((d,), -math.inf, dtype=torch.float64)
        hi = torch.full((d,), math.inf, dtype=torch.float64)
        for f, (a, b) in self.ranges.items():
            i = idx(f, "ranges")
            if math.isnan(a) or math.isnan(b) or a > b:
                raise ValueError(f"ranges: feature {f!r} needs lo <= hi, got [{a}, {b}]")
            lo[i], hi[i] = a, b
        integer = torch.zeros(d, dtype=torch.bool)
        for f in self.integer:
            integer[idx(f, "integer")] = True
        groups = [[idx(f, "one_hot") for f in g] for g in self.one_hot]
        seen: set[int] = set()
        for g in groups:
            if len(g) < 2 or len(set(g)) != len(g):
                raise ValueError(f"one_hot: a group needs at least two distinct features, got {g}")
            if seen & set(g):
                raise ValueError(f"one_hot: feature(s) {sorted(seen & set(g))} are in more than one group")
            seen |= set(g)
        cats = {idx(f, "categorical"): sorted({float(v) for v in vals}) for f, vals in self.categorical.items()}
        for i, vals in cats.items():
            if not vals or not all(math.isfinite(v) for v in vals):
                raise ValueError(f"categorical: feature {i} needs a non-empty list of finite values")
            if i in seen:
                raise ValueError(f"feature {i} is both categorical and in a one_hot group")
        immutable = torch.zeros(d, dtype=torch.bool)
        for f in self.immutable:
            immutable[idx(f, "immutable")] = True
        for g in groups:  # a group is one categorical variable: partly immutable means immutable
            if immutable[g].any():
                immutable[g] = True
            lo[g] = lo[g].clamp(min=0.0)
            hi[g] = hi[g].clamp(max=1.0)
        if (lo > hi).any():
            raise ValueError("one_hot features must allow both 0 and 1 in their ranges")
        off = torch.zeros(d, dtype=torch.float64)
        sc = torch.ones(d, dtype=torch.float64)
        for name, vec, tgt in (("offset", self.offset, off), ("scale", self.scale, sc)):
            if vec is not None:
                if len(vec) != d:
                    raise ValueError(f"{name} has {len(vec)} values but num_features is {d}")
                tgt[:] = torch.tensor(vec, dtype=torch.float64)
        if not (torch.isfinite(off).all() and torch.isfinite(sc).all() and (sc > 0).all()):
            raise ValueError("offset must be finite and scale finite and > 0")
        c_idx = sorted(cats)
        k = max((len(cats[i]) for i in c_idx), default=1)
        cat_vals = torch.full((len(c_idx), k), math.nan, dtype=torch.float64)
        for r, i in enumerate(c_idx):
            cat_vals[r, : len(cats[i])] = torch.tensor(cats[i], dtype=torch.float64)
        m = max((len(g) for g in groups), default=1)
        oh_idx = torch.tensor([g + [g[0]] * (m - len(g)) for g in groups], dtype=torch.long).view(len(groups), m)
        oh_valid = torch.tensor([[j < len(g) for j in range(m)] for g in groups], dtype=torch.bool).view(
            len(groups), m
        )
        self._plan = _Plan(lo, hi, integer, immutable, torch.tensor(c_idx, dtype=torch.long), cat_vals,
                           oh_idx, oh_valid, off, sc)
        return self

    # -- construction ---------------------------------------------------------------------------

    @classmethod
    def from_dict(cls, raw: dict[str, Any], *, source: str = "") -> TabularConstraints:
        """Validate a mapping (as read from YAML/JSON); errors become :class:`ConfigError`."""
        if not isinstance(raw, dict):
            raise ConfigError(f"constraints{' in ' + source if source else ''} must be a mapping, got "
                              f"{type(raw).__name__}")
        try:
            return cls(**{"source": source, **raw})
        except ValidationError as exc:
            lines = "; ".join(f"{'.'.join(str(p) for p in e['loc']) or 'constraints'}: {e['msg']}"
                              for e in exc.errors())
            raise ConfigError(f"invalid constraints{' in ' + source if source else ''}: {lines}") from exc

    @classmethod
    def load(cls, path: str | Path) -> TabularConstraints:
        """Read a ``.yaml``/``.yml`` or ``.json`` constraints file."""
        p = Path(path).expanduser()
        if not p.is_file():
            raise ConfigError(f"constraints file '{p}' does not exist")
        return cls.from_dict(read_yaml_or_json(p, what="constraints file"), source=str(p))

    def dump(self, path: str | Path) -> Path:
        """Write as YAML (``.yaml``/``.yml``) or JSON (any other suffix)."""
        p = Path(path)
        data = self.model_dump(mode="json", exclude_defaults=True)
        data["num_features"] = self.num_features
        if p.suffix.lower() in (".yaml", ".yml"):
            import yaml

            p.write_text(yaml.safe_dump(data, sort_keys=False), encoding="utf-8")
        else:
            p.write_text(json.dumps(data, indent=2), encoding="utf-8")
        return p

    def digest(self) -> str:
        """sha256 of the canonical JSON: evidence records name the exact constraints used."""
        body = self.model_dump(mode="json", exclude={"source"})
        return hashlib.sha256(json.dumps(body, sort_keys=True, separators=(",", ":")).encode()).hexdigest()

    @classmethod
    def infer(
        cls,
        raw: np.ndarray,
        feature_names: Sequence[str] | None = None,
        *,
        offset: Sequence[float] | np.ndarray | None = None,
        scale: Sequence[float] | np.ndarray | None = None,
        one_hot: bool = True,
        source: str = "",
    ) -> TabularConstraints:
        """Constraints observed in ``raw`` (N, D) domain values: data ranges, integer columns and
        prefix-named one-hot groups. Ranges are the data's, not the domain's (see module doc)."""
        a = np.asarray(raw, dtype=np.float64)
        if a.ndim != 2 or a.shape[0] == 0:
            raise DataError(f"cannot infer constraints from an array of shape {a.shape}; expected (N, D) rows")
        if not np.isfinite(a).all():
            raise DataError("cannot infer constraints: the data holds NaN or inf")
        d = a.shape[1]
        names = list(feature_names) if feature_names is not None else None
        lo, hi = a.min(0), a.max(0)
        whole = (a == np.round(a)).all(0)
        groups: list[list[int]] = []
        if one_hot and names is not None:
            binary = whole & (lo >= 0) & (hi <= 1)
            by_prefix: dict[str, list[int]] = {}
            for i, n in enumerate(names):
                m = re.match(r"^(.+?)[_=][^_=]+$", n)
                if binary[i] and m:
                    by_prefix.setdefault(m.group(1).lower(), []).append(i)
            groups = [g for g in by_prefix.values() if len(g) >= 2 and (a[:, g].sum(1) == 1).all()]
        in_group = {i for g in groups for i in g}
        key: list[Feature] = list(names) if names is not None and len(set(names)) == d else list(range(d))
        return cls(
            num_features=d,
            feature_names=tuple(names) if names is not None else None,
            ranges={key[i]: (float(lo[i]), float(hi[i])) for i in range(d) if i not in in_group},
            integer=tuple(key[i] for i in range(d) if whole[i] and i not in in_group),
            one_hot=tuple(tuple(key[i] for i in g) for g in groups),
            offset=tuple(float(v) for v in offset) if offset is not None else None,
            scale=tuple(float(v) for v in scale) if scale is not None else None,
            source=source or "inferred from data (ranges are data ranges)",
        )

    @classmethod
    def from_table(cls, table: RawTable, *, one_hot: bool = True) -> TabularConstraints:
        """Infer from a table that can give its raw rows (e.g. :class:`~aisec.data.table.CsvTable`), in the
        scaled input space the table feeds its model (``(raw - offset) / scale``)."""
        offset, scale = table.scaling
        return cls.infer(table.raw_features(), table.feature_names, offset=offset, scale=scale, one_hot=one_hot,
                         source=f"inferred from {table.source_name} (ranges are data ranges, not domain ranges)")

    def with_scaling(self, offset: Sequence[float] | np.ndarray, scale: Sequence[float] | np.ndarray
                     ) -> TabularConstraints:
        """The same constraints for a model that sees ``(domain - offset) / scale``."""
        return type(self)(**{**self.model_dump(exclude={"offset", "scale"}),
                             "offset": tuple(float(v) for v in offset), "scale": tuple(float(v) for v in scale)})

    # -- projection -----------------------------------------------------------------------------

    @torch.no_grad()
    def project(
        self,
        x_adv: torch.Tensor,
        x_orig: torch.Tensor,
        *,
        eps: float | None = None,
        norm: Norm | str | None = None,
        value_range: tuple[float, float] | None = None,
    ) -> torch.Tensor:
        """The valid point nearest ``x_adv`` for each row (``x_orig`` gives immutable values).

        Clips to ranges, rounds integers, takes the arg-max of each one-hot group, snaps ordinal
        categories to the nearest allowed value and restores immutable features. With ``eps`` and
        ``norm`` the result also stays in the ``norm`` ball around ``x_orig`` (model-input units):
        for Linf exactly (every bound is intersected with the box, integers and categories only
        move to values inside it, a one-hot group switches only if a change of 1 fits); for other
        norms by bisection on the step ``x_orig + t (x_adv - x_orig)``, ``t`` in [0, 1], keeping the
        largest projected step found inside the ball (``x_orig`` itself always is). ``value_range``
        (model-input units) bounds every feature too. Originals are assumed valid.
        """
        n = x_adv.shape[0]
        xa = x_adv.reshape(n, -1)
        x0 = x_orig.reshape(n, -1).to(xa.dtype)
        self._check_width(xa)
        nrm = Norm(norm) if norm is not None else None
        linf_eps = eps if nrm is Norm.LINF else None
        out = self._project(xa, x0, linf_eps, value_range)
        if eps is not None and nrm is not None and nrm is not Norm.LINF:
            dist = _norm(out - x0, nrm)
            over = dist > eps * (1 + 1e-6) + 1e-12
            if over.any():
                rows = torch.nonzero(over).flatten()
                a, o = xa[rows], x0[rows]
                best = o.clone()
                t_lo = torch.zeros(rows.numel(), 1, dtype=xa.dtype, device=xa.device)
                t_hi = torch.ones_like(t_lo)
                for _ in range(20):
                    mid = (t_lo + t_hi) / 2
                    cand = self._project(o + mid * (a - o), o, None, value_range)
                    ok = (_norm(cand - o, nrm) <= eps * (1 + 1e-6) + 1e-12)[:, None]
                    best = torch.where(ok, cand, best)
                    t_lo = torch.where(ok, mid, t_lo)
                    t_hi = torch.where(ok, t_hi, mid)
                out[rows] = best
        return out.view_as(x_adv)

    def _project(
        self, xa: torch.Tensor, x0: torch.Tensor, eps: float | None, value_range: tuple[float, float] | None
    ) -> torch.Tensor:
        p = self._plan.to(xa.device)
        n, _ = xa.shape
        u = xa.double() * p.scale + p.offset
        u0 = x0.double() * p.scale + p.offset
        lo = p.lo.expand(n, -1)
        hi = p.hi.expand(n, -1)
        if value_range is not None:
            lo = torch.maximum(lo, value_range[0] * p.scale + p.offset)
            hi = torch.minimum(hi, value_range[1] * p.scale + p.offset)
        if eps is not None:
            lo = torch.maximum(lo, u0 - eps * p.scale)
            hi = torch.minimum(hi, u0 + eps * p.scale)
        empty = lo > hi  # only when the original itself is outside its range; keep it then
        lo = torch.where(empty, u0, lo)
        hi = torch.where(empty, u0, hi)
        u = torch.minimum(torch.maximum(u, lo), hi)
        if p.integer.any():
            ilo, ihi = lo.ceil(), hi.floor()
            r = torch.minimum(torch.maximum(u.round(), ilo), ihi)
            r = torch.where(ilo > ihi, u0, r)
            u = torch.where(p.integer, r, u)
        if p.cat_idx.numel():
            ci = p.cat_idx
            vals = p.cat_vals.expand(n, -1, -1)  # (n, C, K)
            ok = (vals >= lo[:, ci, None]) & (vals <= hi[:, ci, None])  # NaN padding compares False
            dist = (u[:, ci, None] - vals).abs().masked_fill(~ok, math.inf)
            snapped = vals.gather(2, dist.argmin(2, keepdim=True)).squeeze(2)
            u[:, ci] = torch.where(ok.any(2), snapped, u0[:, ci])
        if p.oh_idx.numel():
            g = u[:, p.oh_idx].masked_fill(~p.oh_valid, -math.inf)  # (n, G, M)
            new = torch.nn.functional.one_hot(g.argmax(2), g.shape[2]).to(u.dtype)
            old = u0[:, p.oh_idx]
            if eps is not None:  # a switch changes two features by 1 (domain); allowed only inside the box
                fits = ((new - old).abs() <= (eps * p.scale[p.oh_idx]) + 1e-9) | ~p.oh_valid
                new = torch.where(fits.all(2, keepdim=True), new, old)
            flat = p.oh_idx[p.oh_valid]
            u[:, flat] = new[:, p.oh_valid]
        u = torch.where(p.immutable, u0, u)
        out = ((u - p.offset) / p.scale).to(xa.dtype)
        # Unchanged domain values (immutables included) keep the original's exact bits.
        return torch.where(u == u0, x0, out)

    # -- checking -------------------------------------------------------------------------------

    def violation_masks(
        self, x: torch.Tensor, x_orig: torch.Tensor | None = None, *, tol: float = 1e-5
    ) -> dict[str, torch.Tensor]:
        """Per kind, an (N, m) bool mask of violated cells (one-hot: per group). ``tol`` is in
        model-input units; ``immutable`` is checked only when ``x_orig`` is given."""
        n = x.shape[0]
        xf = x.reshape(n, -1).double()
        self._check_width(xf)
        p = self._plan.to(xf.device)
        u = xf * p.scale + p.offset

        def back(v: torch.Tensor) -> torch.Tensor:
            return (v - p.offset) / p.scale

        out: dict[str, torch.Tensor] = {}
        out["range"] = (xf < back(p.lo) - tol) | (xf > back(p.hi) + tol)
        out["integer"] = ((xf - back(u.round())).abs() > tol) & p.integer
        if p.cat_idx.numel():
            ci = p.cat_idx
            allowed = (p.cat_vals - p.offset[ci, None]) / p.scale[ci, None]  # (C, K) in model units
            gap = (xf[:, ci, None] - allowed).abs().nan_to_num(nan=math.inf).amin(2)
            out["categorical"] = gap > tol
        else:
            out["categorical"] = torch.zeros(n, 0, dtype=torch.bool, device=xf.device)
        if p.oh_idx.numel():
            v = xf[:, p.oh_idx]
            off, sc = p.offset[p.oh_idx], p.scale[p.oh_idx]
            is0 = (v - (0 - off) / sc).abs() <= tol
            is1 = (v - (1 - off) / sc).abs() <= tol
            bad_cell = ~(is0 | is1) & p.oh_valid
            ones = (is1 & p.oh_valid).sum(2)
            out["one_hot"] = bad_cell.any(2) | (ones != 1)
        else:
            out["one_hot"] = torch.zeros(n, 0, dtype=torch.bool, device=xf.device)
        if x_orig is not None:
            x0 = x_orig.reshape(n, -1).double()
            out["immutable"] = ((xf - x0).abs() > tol) & p.immutable
        else:
            out["immutable"] = torch.zeros(n, 0, dtype=torch.bool, device=xf.device)
        return {k: out[k] for k in KINDS}

    def violations(self, x: torch.Tensor, x_orig: torch.Tensor | None = None, *, tol: float = 1e-5
                   ) -> dict[str, int]:
        """How many cells break each kind of constraint (one-hot: groups), plus ``total``."""
        counts = {k: int(m.sum()) for k, m in self.violation_masks(x, x_orig, tol=tol).items()}
        counts["total"] = sum(counts.values())
        return counts

    def valid(self, x: torch.Tensor, x_orig: torch.Tensor | None = None, *, tol: float = 1e-5) -> torch.Tensor:
        """(N,) bool: which rows satisfy every constraint."""
        masks = self.violation_masks(x, x_orig, tol=tol)
        bad = torch.zeros(x.shape[0], dtype=torch.bool, device=x.device)
        for m in masks.values():
            if m.numel():
                bad |= m.any(1)
        return ~bad

    def check_data(self, x: torch.Tensor, *, what: str = "data") -> None:
        """Raise :class:`DataError` naming the first invalid cell unless every row of ``x`` is valid."""
        masks = self.violation_masks(x)
        for kind, m in masks.items():
            hit = torch.nonzero(m)
            if hit.numel():
                r, c = (int(v) for v in hit[0])
                feat = self._name(c) if kind != "one_hot" else f"one-hot group {c}"
                raise DataError(
                    f"{what}: {int(m.any(1).sum())} rows break the {kind} constraint (first: row {r}, {feat}); "
                    f"the constraints ({self.source or 'given'}) do not describe this data — fix the file, or "
                    "infer them from the same table"
                )

    def _name(self, i: int) -> str:
        return f"feature '{self.feature_names[i]}'" if self.feature_names else f"feature {i}"

    def _check_width(self, flat: torch.Tensor) -> None:
        if flat.shape[1] != self.num_features:
            raise ConfigError(
                f"constraints describe {self.num_features} features but the inputs have {flat.shape[1]}; "
                "use constraints written for this table"
            )


def _norm(d: torch.Tensor, norm: Norm) -> torch.Tensor:
    if norm is Norm.L2:
        return d.pow(2).sum(1).sqrt()
    if norm is Norm.L1:
        return d.abs().sum(1)
    if norm is Norm.L0:  # as aisec.attacks.base.perturbation_norm: the fraction of features changed
        return (d.abs() > 1e-8).to(d.dtype).mean(1)
    return d.abs().amax(1)


# -- binding constraints to the attack running now ---------------------------------------------


@dataclass(frozen=True)
class BoundConstraints:
    """Constraints bound to one batch of originals ``x`` and (fixed-eps attacks) its eps-ball."""

    constraints: TabularConstraints
    x: torch.Tensor
    eps: float | None = None
    norm: Norm | None = None
    value_range: tuple[float, float] | None = None

    def project(self, xq: torch.Tensor, owners: torch.Tensor | None = None) -> torch.Tensor:
        """Project query rows; ``owners[i]`` is the batch row (original) query ``i`` belongs to."""
        x0 = self.x if owners is None else self.x[owners.to(self.x.device)]
        return self.constraints.project(xq, x0, eps=self.eps, norm=self.norm, value_range=self.value_range)


_ACTIVE: ContextVar[BoundConstraints | None] = ContextVar("aisec_constraints", default=None)


@contextlib.contextmanager
def bind_constraints(
    constraints: TabularConstraints | None,
    x: torch.Tensor,
    *,
    eps: float | None = None,
    norm: Norm | None = None,
    value_range: tuple[float, float] | None = None,
) -> Iterator[BoundConstraints | None]:
    """Within the block, attacks run on ``x`` keep their queries and steps valid. No-op for ``None``."""
    if constraints is None:
        yield None
        return
    bound = BoundConstraints(constraints, x, eps, norm, value_range)
    token = _ACTIVE.set(bound)
    try:
        yield bound
    finally:
        _ACTIVE.reset(token)


def active_constraints() -> BoundConstraints | None:
    """The constraints bound by the innermost :func:`bind_constraints`, if any."""
    return _ACTIVE.get()


def constrain_step(x_adv: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """Post-step projection for iterative attacks: ``x_adv`` unchanged unless constraints are bound."""
    bound = _ACTIVE.get()
    if bound is None:
        return x_adv
    if bound.x.shape != x.shape:
        raise ConfigError(
            f"constraints are bound to inputs of shape {tuple(bound.x.shape)} but the attack runs on "
            f"{tuple(x.shape)}; bind them to the batch the attack receives"
        )
    return bound.constraints.project(x_adv, x, eps=bound.eps, norm=bound.norm, value_range=bound.value_range)
