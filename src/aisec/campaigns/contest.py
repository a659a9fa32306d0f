"""Contest mode's hidden test split and submissions: the SAFAIR rules aisec can enforce in-process.

A campaign's ``contest`` block names a dataset and a seed. :func:`hidden_split` splits that dataset,
stratified by class, into a **public** part (what submitters may see, and what a defence submission
is fitted on) and a **hidden** part used only for scoring; only the hidden part's digest (a sha256
over its arrays) and size leave this module, never its samples.

Submissions are plugins, named by registry name: **attacks** are family ``evasion`` methods,
**defences** family ``defence`` preprocessing wrappers (:mod:`aisec.defences.preprocess`). A defence
class may define ``fit(x, y)``; it is called with the public part only. Each defence submission
(behind it: the campaign's model) is attacked on the hidden part by every attack submission and by
their ensemble — per sample, the worst case over all of them, as AutoAttack scores its ensemble — at
Linf 8/255 with adversarials rounded to 8-bit pixel values. Rows are ranked by the SAFAIR delta,
clean minus ensemble robust accuracy (smallest first); a defence whose attacks ran past the time
limit (4 hours per 1,000 samples unless the campaign's limits say otherwise) is marked and ranked last.
"""

from __future__ import annotations

import json
import math
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch
from pydantic import BaseModel, ConfigDict, Field, field_validator

from aisec.core.dataset import TensorDataset, digest_arrays
from aisec.core.errors import ConfigError
from aisec.core.target import Target
from aisec.core.types import Norm

#: the SAFAIR contest's budget and time rule (also in :mod:`aisec.campaigns.spec`)
CONTEST_EPS = 8 / 255
CONTEST_SECONDS_PER_1000 = 4 * 3600.0


def _undefended() -> list[str | None]:
    return [None]


class ContestRules(BaseModel):
    """A campaign's ``contest`` block: the dataset split into public and hidden parts, and the submissions."""

    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)

    dataset: str = Field(default="digits", description="The dataset split into a public and a hidden part.")
    seed: int = Field(default=0, description="Seed of the stratified split.")
    hidden_fraction: float = Field(default=0.3, gt=0, lt=1, description="Share of each class held out.")
    samples: int | None = Field(default=None, ge=1, description="Score on at most this many hidden samples.")
    attacks: list[str] = Field(default_factory=list, description="Attack submissions (family evasion).")
    attack_params: dict[str, dict[str, Any]] = Field(
        default_factory=dict, description="Per attack submission, its parameters (norm and eps are fixed).")
    defences: list[str | None] = Field(
        default_factory=lambda: _undefended(), description="Defence submissions (family defence; null: none).")

    @field_validator("defences", mode="before")
    @classmethod
    def _none(cls, v: Any) -> Any:
        return [None if d in (None, "", "none") else d for d in v] if isinstance(v, list) else v


@dataclass(frozen=True)
class Split:
    """The public part (seen by submitters) and the hidden part (scoring only) of the contest dataset."""

    public: TensorDataset
    hidden: TensorDataset
    hidden_digest: str
    public_digest: str


def hidden_split(data: TensorDataset, *, fraction: float, seed: int) -> Split:
    """Split ``data`` per class: ``round(fraction * n_c)`` of each class's samples go to the hidden part.

    The same data and seed give the same split (a seeded permutation within each class); every class
    with at least two samples keeps at least one sample on each side.
    """
    if not 0 < fraction < 1:
        raise ConfigError(f"contest hidden_fraction must be between 0 and 1, got {fraction}")
    y = torch.as_tensor(data.y).long()
    g = torch.Generator().manual_seed(seed)
    hidden: list[torch.Tensor] = []
    public: list[torch.Tensor] = []
    for c in torch.unique(y).tolist():
        idx = torch.nonzero(y == c).flatten()
        idx = idx[torch.randperm(len(idx), generator=g)]
        k = round(fraction * len(idx))
        if len(idx) >= 2:
            k = min(max(k, 1), len(idx) - 1)
        hidden.append(idx[:k])
        public.append(idx[k:])
    h = torch.sort(torch.cat(hidden)).values
    p = torch.sort(torch.cat(public)).values
    if len(h) == 0 or len(p) == 0:
        raise ConfigError(f"dataset '{data.info.name}' is too small to split into public and hidden parts")
    name = data.info.name
    hid, pub = data.subset(h, name=f"{name}-hidden"), data.subset(p, name=f"{name}-public")
    return Split(public=pub, hidden=hid, hidden_digest=digest_arrays(hid.x, hid.y),
                 public_digest=digest_arrays(pub.x, pub.y))


@dataclass
class ContestRow:
    """One defence submission's result on the hidden part."""

    defence: str
    clean_accuracy: float
    robust_accuracy: dict[str, float]
    ensemble_robust_accuracy: float
    safair_delta: float
    seconds: float
    over_time: bool
    rank: int = 0


@dataclass
class ContestResult:
    """The ranked rows and what identifies the hidden part (its digest and size, never its samples)."""

    dataset: str
    seed: int
    hidden_digest: str
    hidden_samples: int
    public_digest: str
    public_samples: int
    eps: float
    attacks: list[str]
    time_limit_seconds: float
    rows: list[ContestRow] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        return {**asdict(self), "ranked_by": "safair_delta", "norm": "linf", "quantize": True}

    def write(self, path: str | Path) -> Path:
        """Write the result as JSON (the contest's evidence: digests, rows, ranks)."""
        p = Path(path)
        p.write_text(json.dumps(self.to_json(), indent=2, sort_keys=True))
        return p


def _defended(target: Target, name: str | None, public: TensorDataset) -> Target:
    """``target`` behind the defence submission ``name``, fitted on the public part only."""
    if name is None:
        return target
    from aisec.defences.preprocess.base import DefendedTarget, parse_defence

    defence = parse_defence(name)
    fit = getattr(defence, "fit", None)
    if callable(fit):
        fit(public.x.clone(), public.y.clone())
    return DefendedTarget(target, defence)


def run_contest(target: Target, rules: ContestRules, *, data: TensorDataset | None = None,
                seconds_per_1000_samples: float = CONTEST_SECONDS_PER_1000) -> ContestResult:
    """Run the contest: every defence submission × every attack submission and their ensemble, ranked.

    ``data`` is the contest dataset (default: loaded from ``rules.dataset``). Attack and defence
    names are resolved before anything runs, so a typo fails at once with the known names.
    """
    from aisec.attacks.base import run_attack
    from aisec.core.registry import get, names

    if not rules.attacks:
        raise ConfigError("contest: name at least one attack submission (family evasion) in contest.attacks")
    infos = []
    for a in rules.attacks:
        try:
            infos.append(get("evasion", a))
        except ConfigError:
            known = ", ".join(names("evasion"))
            raise ConfigError(f"contest: unknown attack submission '{a}'; known: {known}") from None
    for d in rules.defences:
        if d is not None:
            from aisec.defences.preprocess.base import parse_defence

            parse_defence(d)  # a typo fails now
    if data is None:
        from aisec.data.loading import load_dataset

        loaded = load_dataset(rules.dataset)
        if not isinstance(loaded, TensorDataset):
            raise ConfigError(f"contest dataset '{rules.dataset}' must be an in-memory dataset")
        data = loaded
    split = hidden_split(data, fraction=rules.hidden_fraction, seed=rules.seed)
    x, y = split.hidden.x, torch.as_tensor(split.hidden.y).long()
    if rules.samples is not None:
        x, y = x[: rules.samples], y[: rules.samples]
    limit = seconds_per_1000_samples * len(x) / 1000
    result = ContestResult(dataset=rules.dataset, seed=rules.seed, hidden_digest=split.hidden_digest,
                           hidden_samples=len(split.hidden.y), public_digest=split.public_digest,
                           public_samples=len(split.public.y), eps=CONTEST_EPS,
                           attacks=[i.name for i in infos], time_limit_seconds=limit)
    for d in rules.defences:
        defended = _defended(target, d, split.public)
        start = time.perf_counter()
        pred = torch.cat([defended.predict(x[i: i + 256]).argmax(1).cpu() for i in range(0, len(x), 256)])
        clean = pred == y
        robust_all = clean.clone()
        per_attack: dict[str, float] = {}
        for info in infos:
            params = {**rules.attack_params.get(info.name, {}), "norm": Norm.LINF, "eps": CONTEST_EPS}
            out = run_attack(info, defended, x, y, params, quantize=True, seed=rules.seed, pred_clean=pred)
            per_attack[info.name] = float(out.robust.float().mean())
            robust_all &= out.robust.cpu()
        seconds = time.perf_counter() - start
        clean_acc = float(clean.float().mean())
        ens = float(robust_all.float().mean())
        result.rows.append(ContestRow(defence=d or "none", clean_accuracy=clean_acc, robust_accuracy=per_attack,
                                      ensemble_robust_accuracy=ens, safair_delta=clean_acc - ens, seconds=seconds,
                                      over_time=seconds > limit))
    result.rows.sort(key=lambda r: (r.over_time, r.safair_delta if not math.isnan(r.safair_delta) else math.inf,
                                    -r.ensemble_robust_accuracy, r.defence))
    for i, r in enumerate(result.rows):
        r.rank = i + 1
    return result


def contest_folder(out: str | Path) -> Path:
    """Where a campaign's contest results go: ``<campaign folder>/contest/<model>.json``."""
    return Path(out) / "contest"


def run_campaign_contest(campaign: Any, out: str | Path) -> list[Path]:
    """Run the contest block of ``campaign`` (a :class:`~aisec.campaigns.spec.Campaign`) for each of its
    models and write one JSON result per model under :func:`contest_folder`; nothing without a block."""
    from aisec.api import load_data, load_model
    from aisec.core.plan import ModelRef

    rules = campaign.contest
    if not isinstance(rules, ContestRules):
        return []
    data = load_data(rules.dataset)
    if not isinstance(data, TensorDataset):
        raise ConfigError(f"contest dataset '{rules.dataset}' must be an in-memory dataset")
    folder = contest_folder(out)
    folder.mkdir(parents=True, exist_ok=True)
    limit = campaign.limits.seconds_per_1000_samples or CONTEST_SECONDS_PER_1000
    written = []
    for model in campaign.models:
        target = load_model(ModelRef(**model.model_dump(exclude={"name"})), data)
        result = run_contest(target, rules, data=data, seconds_per_1000_samples=limit)
        written.append(result.write(folder / f"{model.label}.json"))
    return written


def read_contest_results(out: str | Path) -> dict[str, dict[str, Any]]:
    """The contest results written under ``out`` (model name → result JSON), for the leaderboard."""
    folder = contest_folder(out)
    if not folder.is_dir():
        return {}
    return {p.stem: json.loads(p.read_text()) for p in sorted(folder.glob("*.json"))}
