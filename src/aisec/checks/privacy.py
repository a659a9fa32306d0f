"""Privacy check: does the model leak which records it was trained on?

The check's dataset is the **member** set (records the model was trained on; ``members`` names them
apart when the assessed data is other, as in a threat-model plan); ``nonmembers`` are held-out records
of the same distribution. When the members come from a built-in dataset's split (all of them inside,
e.g., the digits train split), the complementary split is the default non-member set; otherwise
``nonmembers`` must be given.

Membership-inference attacks (:mod:`aisec.attacks.inference`) score every member and non-member;
:mod:`aisec.metrics.membership` turns the scores into ROC AUC, balanced accuracy and TPR at 0.1% and
1% FPR, each with a 95% interval, per class and overall, plus the ROC curve. SHAPr
(:mod:`aisec.metrics.shapr`) gives every member a Shapley-value risk score, and its dataset-level
mean as the AI-SEC seed reports it. Attacks that train models (``shadow``, ``lira``, ``rmia``) use
the target's :class:`~aisec.models.recipe.TrainingRecipe`.

Default attacks: loss, confidence and gap; with a recipe also shadow, LiRA online and offline and
RMIA; for a labels-only target gap and label_only. Definitions: ``docs/privacy.md``.
"""

from __future__ import annotations

import math
import time
from collections.abc import Mapping
from typing import Any, ClassVar

import numpy as np
import torch
from pydantic import BaseModel, ConfigDict, Field, field_serializer, field_validator
from scipy import stats

from aisec.attacks.inference.base import (
    InferenceAttackInfo,
    MembershipScores,
    MembershipTask,
    get_inference_attack,
)
from aisec.core.check import IntervalSummary, Result, Summary, require_same_classes
from aisec.core.dataset import Dataset, take
from aisec.core.errors import AisecError, ConfigError, DataError, ShapeError
from aisec.core.evidence import Measurement
from aisec.core.flags import Flag
from aisec.core.progress import Progress, no_progress
from aisec.core.registry import register_check
from aisec.core.stats import Interval, wilson
from aisec.core.target import Target, TextTarget, check_inputs, require
from aisec.core.types import Capability, Modality
from aisec.metrics.membership import fpr_label, membership_metrics
from aisec.metrics.shapr import shapr_result
from aisec.models.recipe import TrainingRecipe

ATLAS_MEMBERSHIP = ("AML.T0024.000",)


class DataSource(BaseModel):
    """A dataset to load: a built-in name, folder or file, with loader options (e.g. split)."""

    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)

    source: str
    options: dict[str, Any] = Field(default_factory=dict)


class InferenceSpec(BaseModel):
    """One membership attack to run, with its parameters and an optional label for reports."""

    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)

    name: str
    params: dict[str, Any] = Field(default_factory=dict)
    label: str | None = None

    def key(self) -> str:
        if self.label:
            return self.label
        name = self.name.lower().replace("-", "_")
        p = self.params
        if name == "lira":
            return "lira-" + ("online" if p.get("online", True) else "offline") + \
                ("-fixedvar" if p.get("fixed_variance") else "")
        if name == "rmia":
            return "rmia-" + ("online" if p.get("online", False) else "offline")
        if name == "confidence" and p.get("statistic", "max") != "max":
            return f"confidence-{p['statistic']}"
        rest = ",".join(f"{k}={v}" for k, v in sorted(p.items()))
        return f"{name}({rest})" if rest else name


class ShaprParams(BaseModel):
    """SHAPr per-member risk (Duddu et al. 2021): K-NN Shapley values in the model's output space."""

    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)

    enabled: bool = True
    k: int = Field(default=1, ge=1, description="Neighbours of the K-NN utility (ART: 1).")
    test_samples: int | None = Field(default=None, ge=1, description="Non-members used as test points.")


class PrivacyParams(BaseModel):
    """Options of the privacy check (the same model backs CLI flags, YAML plans and Python)."""

    model_config = ConfigDict(extra="forbid", arbitrary_types_allowed=True, allow_inf_nan=False)

    attacks: list[InferenceSpec] | None = Field(
        default=None, description="Attacks to run; default: every attack the target and recipe allow."
    )
    samples: int | None = Field(
        default=5000, ge=2, description="At most this many members and this many non-members (seeded random subset)."
    )
    members: Any = Field(
        default=None,
        description="The model's training records when they are not the assessed data (a threat-model plan "
                    "evaluates on test data): a source ('digits' / {source, options}) or a Dataset; default: "
                    "the data given.",
    )
    nonmembers: Any = Field(
        default=None,
        description="Held-out records: a source ('digits' / {source, options}) or a Dataset; default: the "
                    "complementary split of a built-in dataset.",
    )
    population: Any = Field(
        default=None,
        description="Shadow-model data disjoint from the members; default: a share of the non-members.",
    )
    drop_overlap: bool = Field(
        default=False,
        description="Drop non-members that also occur among the members (with a warning) instead of failing.",
    )
    population_fraction: float = Field(
        default=0.5, gt=0, lt=1, description="Share of non-members held out as shadow data when no population is given."
    )
    recipe: TrainingRecipe | None = Field(default=None, description="How the target was trained (shadow/LiRA/RMIA).")
    reference_models: int = Field(default=16, ge=2, description="LiRA/RMIA reference models (each record IN for half).")
    shadow_models: int = Field(default=8, ge=2)
    fprs: list[float] = Field(default_factory=lambda: [0.001, 0.01], description="FPRs for TPR at low FPR.")
    shapr: ShaprParams = Field(default_factory=ShaprParams)
    batch_size: int = Field(default=256, ge=1)
    examples: int = Field(default=12, ge=0, description="Riskiest members (by SHAPr) kept for the report.")
    seed: int = 0

    @field_validator("attacks", mode="before")
    @classmethod
    def _names(cls, v: Any) -> Any:
        if isinstance(v, str):
            v = [s.strip() for s in v.split(",") if s.strip()]
        if isinstance(v, list):
            return [{"name": a} if isinstance(a, str) else a for a in v]
        return v

    @field_validator("members", "nonmembers", "population", mode="before")
    @classmethod
    def _source(cls, v: Any) -> Any:
        if v is None or _is_dataset(v):
            return v
        if isinstance(v, str):
            return DataSource(source=v)
        if isinstance(v, dict):
            return DataSource(**v)
        if isinstance(v, DataSource):
            return v
        raise ValueError(
            f"expected a dataset source (string or {{source, options}}) or a Dataset, got {type(v).__name__}"
        )

    @field_validator("fprs")
    @classmethod
    def _fprs(cls, v: list[float]) -> list[float]:
        if not v or any(not 0 < f < 1 for f in v):
            raise ValueError(f"each FPR must lie in (0, 1), got {v}")
        return sorted(set(v))

    @field_serializer("members", "nonmembers", "population")
    def _ser_source(self, v: Any) -> Any:
        if v is None:
            return None
        if isinstance(v, DataSource):
            return v.model_dump()
        info = v.info
        return {"dataset": info.name, "digest": info.digest, "source": info.source}


class TprSummary(Summary):
    """TPR at one target FPR; ``value`` (and ``ci``) None when the non-members are too few to resolve it."""

    fpr: float
    value: float | None
    ci: IntervalSummary | None
    achieved_fpr: float | None
    threshold: float | None
    needed_nonmembers: int
    reason: str


class RocSummary(Summary):
    """The ROC curve's points."""

    fpr: list[float]
    tpr: list[float]


class MembershipAttackSummary(Summary):
    """One membership attack: AUC and balanced accuracy with CIs, TPR at each FPR (keyed ``f"{fpr:g}"``),
    per-class rows (dicts: ``class``, ``name``, ``auc``, ...) and the ROC."""

    key: str
    attack: str
    summary: str
    """The attack's one-line description."""
    paper: str
    params: dict[str, Any]
    n_members: int
    n_nonmembers: int
    auc: float
    auc_ci: IntervalSummary
    balanced_accuracy: float
    balanced_accuracy_ci: IntervalSummary
    tpr_at_fpr: dict[str, TprSummary]
    per_class: list[dict[str, Any]]
    warnings: list[str]
    roc: RocSummary
    seconds: float
    queries: int
    info: dict[str, Any]


class RiskyMember(Summary):
    """A member with one of the highest SHAPr values."""

    index: int
    label: int
    value: float


class ShaprSummary(Summary):
    """SHAPr: the mean per-member value (the AI-SEC score) with its CI, how many members are at risk
    (value > 0), quantiles and the riskiest members."""

    score: float
    score_ci: IntervalSummary
    at_risk: int
    at_risk_fraction: float
    n: int
    test_samples: int
    k: int
    quantiles: dict[str, float]
    max: float
    min: float
    riskiest: list[RiskyMember]
    seconds: float


class WorstAttack(Summary):
    """The attack with the highest AUC."""

    key: str
    auc: float


class PrivacySummary(Summary):
    """Members and non-members (sources, accuracy, gap), one entry per membership attack, SHAPr (None when
    disabled or without probabilities) and the attack with the highest AUC."""

    members: int
    nonmembers: int
    member_source: str
    nonmember_source: str
    member_accuracy: float
    nonmember_accuracy: float
    generalization_gap: float
    attacks: list[MembershipAttackSummary]
    shapr: ShaprSummary | None
    classes: list[str]
    fprs: list[float]
    worst: WorstAttack | None
    population: int | None
    """Records held out as shadow data (None when no shadow attack ran)."""


def _is_dataset(v: Any) -> bool:
    return hasattr(v, "info") and hasattr(v, "batches") and hasattr(v, "__len__")


def load_source(src: DataSource) -> Dataset:
    """Load a dataset source through aisec's loader, or a built-in when the loader is absent."""
    try:
        from aisec.data.loading import load_dataset
    except ImportError:
        from aisec.data.builtin import load_builtin

        opts = dict(src.options)
        split = opts.pop("split", None)
        if opts:
            raise ConfigError(f"options {sorted(opts)} need aisec.data.loading, which is not installed") from None
        return load_builtin(src.source, split)
    return load_dataset(src.source, **src.options)


def _rows(x: torch.Tensor) -> np.ndarray:
    """Each sample's bytes as one opaque value, so set operations compare whole records exactly."""
    a = np.ascontiguousarray(x.detach().cpu().numpy().reshape(x.shape[0], -1))
    return a.view(np.dtype((np.void, a.dtype.itemsize * a.shape[1]))).ravel()


def overlap(a: torch.Tensor, b: torch.Tensor) -> np.ndarray:
    """Indices into ``a`` of records whose content also occurs in ``b``."""
    ra, rb = _rows(a), _rows(b)
    return np.nonzero(np.isin(ra, rb))[0]


# Built-in datasets with a train/test split, and the number of features per sample (to skip
# loading the ones that cannot match).
_SPLIT_BUILTINS = {"digits": 64, "breast-cancer": 30, "fashion-mnist": 784, "mnist": 784}


def _load_split(name: str, split: str) -> Dataset:
    try:
        from aisec.data.loading import load_dataset
    except ImportError:
        from aisec.data.builtin import load_builtin

        return load_builtin(name, split)
    return load_dataset(name, split=split)


def complementary_split(data: Dataset, x: torch.Tensor) -> tuple[Dataset, str] | None:
    """If every member lies in one split of a built-in dataset, the other split (and its name).

    Membership is decided by content (byte-identical samples), so subsets of a split qualify.
    """
    rows = _rows(x)
    features = int(np.prod(x.shape[1:]))
    for name, size in _SPLIT_BUILTINS.items():
        if size != features:
            continue
        for split, other in (("train", "test"), ("test", "train")):
            try:
                part = _load_split(name, split)
                xs, _ = take(part)
            except AisecError:  # not installed here (e.g. Fashion-MNIST without its package)
                break
            if tuple(xs.shape[1:]) != tuple(x.shape[1:]) or xs.dtype != x.dtype:
                break
            if np.isin(rows, _rows(xs)).all():
                return _load_split(name, other), f"{name} ({other} split, complement of the members' {split} split)"
    return None


@register_check("privacy")
class PrivacyCheck:
    """Membership privacy: MIA AUC, balanced accuracy and TPR at low FPR with CIs; SHAPr per member."""

    Params = PrivacyParams
    flags: ClassVar[tuple[Flag, ...]] = (
        Flag("--nonmembers", "Privacy: held-out records of the same distribution (a dataset like --data, read "
             "with the same --text-column/--label-column/--max-bytes; default for built-ins: the other split)."),
        Flag("--nonmembers-split", "Privacy: split of --nonmembers (e.g. test)."),
        Flag("--mia-attacks", "Privacy: membership attacks, e.g. loss,confidence,gap,lira (default: all that "
             "the target and recipe allow).", kind="list"),
        Flag("--mia-recipe", "Privacy: the architecture the model was trained with (zoo name such as digits-cnn, "
             "or module:Class): the training recipe that lets shadow, LiRA and RMIA train models like it."),
        Flag("--mia-epochs", "Privacy: training epochs of the recipe's models (with --mia-recipe).", kind="int"),
        Flag("--mia-lr", "Privacy: learning rate of the recipe's models (with --mia-recipe).", kind="float"),
        Flag("--reference-models", "Privacy: LiRA/RMIA reference models (default 16).", kind="int"),
        Flag("--shadow-models", "Privacy: shadow models of the shadow attack (default 8).", kind="int"),
    )

    @staticmethod
    def from_flags(p: dict[str, Any], f: Mapping[str, Any], data: Mapping[str, Any]) -> dict[str, Any]:
        """Non-members as a dataset source read like the members (text/table options carried over, so
        both byte tensors share a width), and the membership attacks to run."""
        if f["nonmembers"]:
            options = {k: v for k, v in (data.get("options") or {}).items() if k != "split"}
            if f["nonmembers_split"]:
                options["split"] = f["nonmembers_split"]
            p["nonmembers"] = {"source": f["nonmembers"], "options": options}
        elif f["nonmembers_split"]:
            raise ConfigError("--nonmembers-split needs --nonmembers")
        if f["mia_attacks"]:
            p["attacks"] = f["mia_attacks"]
        recipe = dict(p.get("recipe") or {})
        if f.get("mia_recipe"):
            recipe["architecture"] = f["mia_recipe"]
        for flag, key in (("mia_epochs", "epochs"), ("mia_lr", "lr")):
            if f.get(flag) is not None:
                if "architecture" not in recipe:
                    raise ConfigError(f"--{flag.replace('_', '-')} needs --mia-recipe (the model's architecture)")
                recipe[key] = f[flag]
        if recipe:
            p["recipe"] = recipe
        for flag in ("reference_models", "shadow_models"):
            if f.get(flag) is not None:
                p[flag] = f[flag]
        return p

    def run(
        self,
        target: Target,
        data: Dataset,
        params: PrivacyParams,
        *,
        progress: Progress = no_progress,
    ) -> Result:
        t0 = time.perf_counter()
        spec = target.spec
        if params.members is not None:
            data = load_source(params.members) if isinstance(params.members, DataSource) else params.members
        require_same_classes(target, data, role="member dataset")
        attacks = self._attacks(target, params)
        x_in_all, y_in_all = take(data)
        nonmembers, nm_source = self._nonmembers(data, x_in_all, params)
        # Texts travel as zero-padded UTF-8 bytes (aisec.data.text): two files' widths differ with their
        # longest text, and padding the narrower set with zeros loses nothing.
        byte_texts = (data.info.modality is Modality.TEXT and nonmembers.info.modality is Modality.TEXT
                      and len(data.info.sample_shape) == 1 and len(nonmembers.info.sample_shape) == 1)
        if tuple(nonmembers.info.sample_shape) != tuple(data.info.sample_shape) and not byte_texts:
            raise ShapeError(
                f"members ('{data.info.name}') have per-sample shape {tuple(data.info.sample_shape)} but "
                f"non-members ('{nonmembers.info.name}') have {tuple(nonmembers.info.sample_shape)}; both must "
                "come from the same distribution and feature space"
            )
        require_same_classes(target, nonmembers, role="non-member dataset")
        x_out_all, y_out_all = take(nonmembers)
        if byte_texts and x_in_all.shape[1] != x_out_all.shape[1]:
            width = max(x_in_all.shape[1], x_out_all.shape[1])
            x_in_all = torch.nn.functional.pad(x_in_all, (0, width - x_in_all.shape[1]))
            x_out_all = torch.nn.functional.pad(x_out_all, (0, width - x_out_all.shape[1]))
        warnings: list[str] = []
        caps = spec.capabilities
        if params.attacks is None and (
            Capability.LABELS_ONLY in caps or not caps & {Capability.PROBABILITIES, Capability.LOGITS}
        ):
            warnings.append(
                f"target '{spec.name}' returns labels only: score-based membership attacks (loss, "
                "confidence, shadow, LiRA, RMIA) were skipped; ran the label-only ones: "
                + ", ".join(info.name for _, info in attacks)
            )
        out_index = np.arange(x_out_all.shape[0])  # positions in the non-member dataset
        both = overlap(x_in_all, x_out_all)
        if both.size and params.drop_overlap:
            dup = overlap(x_out_all, x_in_all)
            keep = np.setdiff1d(np.arange(x_out_all.shape[0]), dup)
            x_out_all, y_out_all, out_index = x_out_all[keep], y_out_all[keep], keep
            warnings.append(f"dropped {dup.size} non-member record(s) that also occur among the members")
        elif both.size:
            raise DataError(
                f"{both.size} record(s) occur among both the members ('{data.info.name}') and the non-members "
                f"('{nonmembers.info.name}'), e.g. member index {int(both[0])}; a record cannot be both. Remove "
                "the duplicates from the non-member set, de-duplicate the data before splitting, or set "
                "drop_overlap: true"
            )
        gen = torch.Generator().manual_seed(params.seed)
        idx_in = _subsample(x_in_all.shape[0], params.samples, gen)
        idx_out = _subsample(x_out_all.shape[0], params.samples, gen)
        x_in, y_in = x_in_all[idx_in], y_in_all[idx_in]
        x_out, y_out = x_out_all[idx_out], y_out_all[idx_out]
        if x_in.shape[0] < 2 or x_out.shape[0] < 2:
            raise DataError(f"need at least 2 members and 2 non-members, got {x_in.shape[0]} and {x_out.shape[0]}")
        if spec.modality is Modality.TEXT and isinstance(target, TextTarget) and x_in.dtype == torch.uint8:
            from aisec.attacks.text.base import to_token_ids  # text datasets hold UTF-8 bytes; the model takes ids

            x_in, x_out = to_token_ids(target, x_in).cpu(), to_token_ids(target, x_out).cpu()
        check_inputs(spec, x_in, what=f"members '{data.info.name}'")
        check_inputs(spec, x_out, what=f"non-members '{nonmembers.info.name}'")

        population, pop_index = self._population(params, x_in_all, x_out, y_out, gen, attacks)
        task = MembershipTask(
            target=target, x_in=x_in.cpu(), y_in=y_in.cpu(), x_out=x_out.cpu(), y_out=y_out.cpu(),
            recipe=params.recipe, population=population, reference_models=params.reference_models,
            shadow_models=params.shadow_models, batch_size=params.batch_size, seed=params.seed, progress=progress,
        )
        n1, n0 = int(x_in.shape[0]), int(x_out.shape[0])
        measurements: list[Measurement] = []
        acc = self._accuracy(task, measurements)
        warnings += self._sanity_warnings(acc, y_in.cpu().numpy(), y_out.cpu().numpy(), spec.num_classes)

        table: dict[str, np.ndarray] = {
            "set": np.array(["member"] * n1 + ["nonmember"] * n0),
            "index": np.concatenate([idx_in.numpy(), out_index[idx_out.numpy()]]),
            "label": np.concatenate([y_in.cpu().numpy(), y_out.cpu().numpy()]),
            "pred": np.concatenate([acc["pred_in"], acc["pred_out"]]),
        }
        summaries: list[MembershipAttackSummary] = []
        missing: dict[float, list[str]] = {}
        classes = list(data.info.classes)
        for i, (a, info) in enumerate(attacks):
            key = a.key()
            progress(f"membership attack {key}", i, len(attacks))
            ta = time.perf_counter()
            q0 = target.queries
            impl = info.cls()
            scores: MembershipScores = impl.run(task, info.cls.Params(**a.params))
            s_in = scores.members.double().cpu().numpy()
            s_out_full = scores.nonmembers.double().cpu().numpy()
            sel = scores.nonmember_index.numpy() if scores.nonmember_index is not None else None
            if info.name == "shadow" and pop_index is not None:
                sel = pop_index
                s_out = s_out_full[sel]
            else:
                s_out = s_out_full
            m = membership_metrics(
                s_in, s_out, labels_members=y_in.cpu().numpy(),
                labels_nonmembers=(y_out.cpu().numpy() if sel is None else y_out.cpu().numpy()[sel]),
                class_names=classes, fprs=params.fprs, seed=params.seed,
            )
            col = np.full(n1 + n0, np.nan)
            col[:n1] = s_in
            if sel is None:
                col[n1:] = s_out
            else:
                col[n1 + sel] = s_out
            table[f"score:{key}"] = col
            pp = {"attack": info.name, "key": key, **a.params}
            if info.needs_recipe and params.recipe is not None:
                pp["models"] = params.shadow_models if info.name == "shadow" else params.reference_models
            measurements += _attack_measurements(m, pp, params.fprs)
            for f, t in m.tpr_at.items():
                if t.value is None:
                    missing.setdefault(f, []).append(f"{key}: {m.n_nonmembers}")
            summaries.append(MembershipAttackSummary.model_validate({
                "key": key, "attack": info.name, "summary": info.summary, "paper": info.paper, "params": a.params,
                **m.as_dict(), "seconds": time.perf_counter() - ta, "queries": target.queries - q0,
                "info": scores.info,
            }))
        progress("membership attacks", len(attacks), len(attacks))
        for f, which in missing.items():
            need = math.ceil(1.0 / f - 1e-9)
            warnings.append(
                f"TPR at {f * 100:g}% FPR is not reported: resolving a single false positive at that rate needs at "
                f"least {need} non-members, and the attacks had fewer ({'; '.join(which)}). Give more non-members, "
                "or read the TPR at a higher FPR"
            )
        if any(s.attack == "lira" and s.params.get("online", True) and not s.params.get("fixed_variance")
               for s in summaries) and params.reference_models < 16:
            warnings.append(
                f"online LiRA with {params.reference_models} reference models estimates a variance per record "
                "from few samples; the paper recommends fixed_variance below about 64 models"
            )

        images: dict[str, dict[str, np.ndarray]] = {}
        shapr_summary = None
        if params.shapr.enabled:
            shapr_summary = self._shapr(task, params, measurements, table, images, data, acc, progress)

        worst = max(summaries, key=lambda s: s.auc) if summaries else None
        summary = PrivacySummary(
            members=n1, nonmembers=n0, member_source=data.info.name, nonmember_source=nm_source,
            member_accuracy=acc["in"], nonmember_accuracy=acc["out"],
            generalization_gap=acc["in"] - acc["out"], attacks=summaries, shapr=shapr_summary,
            classes=classes, fprs=params.fprs,
            worst=WorstAttack(key=worst.key, auc=worst.auc) if worst else None,
            population=None if population is None else int(population[0].shape[0]),
        )
        return Result(
            check="privacy", measurements=measurements, params=params.model_dump(mode="json"),
            summary=summary, tables={"samples": table}, images=images, warnings=warnings,
            seconds=time.perf_counter() - t0, threats=ATLAS_MEMBERSHIP,
        )

    # -- steps ---------------------------------------------------------------------------------

    def _attacks(self, target: Target, params: PrivacyParams) -> list[tuple[InferenceSpec, InferenceAttackInfo]]:
        caps = target.spec.capabilities
        scores_ok = Capability.PROBABILITIES in caps or Capability.LOGITS in caps
        if params.attacks is None:
            if not scores_ok or Capability.LABELS_ONLY in caps:
                specs = [InferenceSpec(name="gap")]
                if target.spec.modality is not Modality.TEXT:  # label_only perturbs inputs with noise
                    specs.append(InferenceSpec(name="label_only"))
            else:
                specs = [InferenceSpec(name="loss"), InferenceSpec(name="confidence"), InferenceSpec(name="gap")]
                if params.recipe is not None:
                    specs += [
                        InferenceSpec(name="shadow"), InferenceSpec(name="lira"),
                        InferenceSpec(name="lira", params={"online": False}), InferenceSpec(name="rmia"),
                    ]
        else:
            specs = params.attacks
        if not specs:
            raise ConfigError("no membership attacks requested")
        out = []
        keys: set[str] = set()
        for s in specs:
            info = get_inference_attack(s.name)
            if target.spec.modality is Modality.TEXT and (info.needs_recipe or info.name == "label_only"):
                why = ("trains copies of the target from a TrainingRecipe, which builds image and tabular models only"
                       if info.needs_recipe else "adds Gaussian noise to the inputs, which has no meaning for text")
                raise ConfigError(
                    f"membership attack '{info.name}' cannot assess text target '{target.spec.name}': it {why}. "
                    "Use 'loss', 'confidence' or 'gap' (the default for text targets)"
                )
            try:
                info.cls.Params(**s.params)
            except Exception as exc:
                raise ConfigError(f"invalid parameters for membership attack '{info.name}': {exc}") from exc
            if info.requires:
                require(target, info.requires, what=f"membership attack '{info.name}'",
                        alternatives="'gap' or 'label_only', which need predicted labels only")
            if info.needs_recipe and params.recipe is None:
                raise ConfigError(
                    f"membership attack '{info.name}' trains models like the target and needs its training "
                    "recipe: give --mia-recipe ARCH (with --mia-epochs/--mia-lr; in a plan: recipe), or drop it "
                    "from --mia-attacks"
                )
            k = s.key()
            if k in keys:
                raise ConfigError(f"membership attack '{k}' is listed twice; give one of them a label")
            keys.add(k)
            out.append((s, info))
        return out

    def _nonmembers(self, data: Dataset, x_in: torch.Tensor, params: PrivacyParams) -> tuple[Dataset, str]:
        nm = params.nonmembers
        if nm is None:
            found = complementary_split(data, x_in)
            if found is None:
                raise ConfigError(
                    f"the privacy check needs non-members (held-out records of the same distribution as "
                    f"'{data.info.name}'): give --nonmembers DATA (e.g. a test folder or file; in a plan: "
                    "nonmembers) — only members drawn from a built-in dataset's split get the complementary split "
                    "by default"
                )
            return found
        if isinstance(nm, DataSource):
            ds = load_source(nm)
            return ds, f"{nm.source} {nm.options}" if nm.options else nm.source
        return nm, nm.info.name

    def _population(
        self, params: PrivacyParams, x_in_all: torch.Tensor, x_out: torch.Tensor, y_out: torch.Tensor,
        gen: torch.Generator, attacks: list[tuple[InferenceSpec, InferenceAttackInfo]],
    ) -> tuple[tuple[torch.Tensor, torch.Tensor] | None, np.ndarray | None]:
        """Shadow data: the given population, or a held-out share of the non-members (whose
        indices are then excluded when the shadow attack is scored)."""
        if not any(info.name == "shadow" for _, info in attacks):
            return None, None
        if params.population is not None:
            pop = load_source(params.population) if isinstance(params.population, DataSource) else params.population
            xp, yp = take(pop)
            bad = overlap(xp, x_in_all)
            if bad.size:
                raise DataError(
                    f"{bad.size} population record(s) are also members; shadow data must be disjoint from the "
                    "target's training set"
                )
            return (xp.cpu(), yp.cpu()), None
        n0 = x_out.shape[0]
        k = round(n0 * params.population_fraction)
        if k < 4 or n0 - k < 2:
            raise DataError(f"{n0} non-members are too few to hold out shadow data; give population=<source>")
        perm = torch.randperm(n0, generator=gen)
        held, rest = perm[:k], perm[k:]
        return (x_out[held].cpu(), y_out[held].cpu()), np.sort(rest.numpy())

    def _accuracy(self, task: MembershipTask, measurements: list[Measurement]) -> dict[str, Any]:
        pred_in, pred_out = (t.numpy() for t in task.target_predictions())
        k_in = int((pred_in == task.y_in.numpy()).sum())
        k_out = int((pred_out == task.y_out.numpy()).sum())
        n1, n0 = pred_in.size, pred_out.size
        measurements += [
            Measurement(metric="privacy.member_accuracy", value=k_in / n1, unit="fraction", higher_is_better=True,
                        interval=wilson(k_in, n1), sample_count=n1, parameters={}, raw_key="samples"),
            Measurement(metric="privacy.nonmember_accuracy", value=k_out / n0, unit="fraction",
                        higher_is_better=True, interval=wilson(k_out, n0), sample_count=n0, parameters={},
                        raw_key="samples"),
        ]
        return {"in": k_in / n1, "out": k_out / n0, "pred_in": pred_in, "pred_out": pred_out}

    @staticmethod
    def _sanity_warnings(acc: dict[str, Any], y_in: np.ndarray, y_out: np.ndarray, k: int) -> list[str]:
        out = []
        n1, n0 = y_in.size, y_out.size
        pooled = (acc["in"] * n1 + acc["out"] * n0) / (n1 + n0)
        se = float(np.sqrt(max(pooled * (1 - pooled), 1e-12) * (1 / n1 + 1 / n0)))
        if (acc["out"] - acc["in"]) / se > 1.645:  # one-sided two-proportion z-test at 5%
            out.append(
                f"members are classified less accurately ({acc['in']:.3f}) than non-members ({acc['out']:.3f}); "
                "are these records really the model's training data (and the non-members held out)?"
            )
        c_in = np.bincount(y_in, minlength=k)
        c_out = np.bincount(y_out, minlength=k)
        table = np.stack([c_in, c_out])
        table = table[:, table.sum(0) > 0]
        if table.shape[1] > 1:
            p = float(stats.chi2_contingency(table)[1])
            if p < 1e-3:
                out.append(
                    f"members and non-members have different class proportions (χ² p = {p:.2g}); attack scores "
                    "that depend on the class then separate them without any leakage — compare per-class AUCs"
                )
        return out

    def _shapr(
        self, task: MembershipTask, params: PrivacyParams, measurements: list[Measurement],
        table: dict[str, np.ndarray], images: dict[str, dict[str, np.ndarray]], data: Dataset,
        acc: dict[str, Any], progress: Progress,
    ) -> ShaprSummary | None:
        if Capability.PROBABILITIES not in task.target.spec.capabilities:
            return None
        lp_in, lp_out = task.target_log_probs()
        m = lp_out.shape[0] if params.shapr.test_samples is None else min(params.shapr.test_samples, lp_out.shape[0])
        ts = time.perf_counter()
        res = shapr_result(lp_in.exp(), task.y_in, lp_out[:m].exp(), task.y_out[:m], k=params.shapr.k,
                           progress=progress)
        vals = res.values
        n1 = vals.size
        col = np.full(table["label"].shape[0], np.nan)
        col[:n1] = vals
        table["shapr"] = col
        kk = params.shapr.k
        if kk == 1:
            succ = round(float(res.utility.sum()))
            score_ci: Interval = wilson(succ, m)
        else:
            u = res.utility
            half = float(stats.t.ppf(0.975, max(m - 1, 1)) * u.std(ddof=1) / np.sqrt(m)) if m > 1 else 1.0
            score_ci = Interval(low=max(0.0, res.score - half), high=min(1.0, res.score + half), method="t")
        at_risk = int((vals > 1e-9).sum())
        pp = {"k": kk, "test_samples": m, "distance": "euclidean", "normalisation": "art"}
        measurements += [
            Measurement(metric="privacy.shapr_score", value=res.score, unit="fraction", higher_is_better=False,
                        interval=score_ci, sample_count=n1, parameters={**pp, "statistic": "mean"},
                        raw_key="samples"),
            Measurement(metric="privacy.shapr_at_risk_fraction", value=at_risk / n1, unit="fraction",
                        higher_is_better=False, interval=wilson(at_risk, n1), sample_count=n1,
                        parameters={**pp, "statistic": "fraction > 0"}, raw_key="samples"),
        ]
        order = np.argsort(-vals, kind="stable")
        top = order[: params.examples]
        if params.examples and data.info.modality is Modality.IMAGE and task.x_in.ndim == 4:
            images["shapr_riskiest"] = {
                "x": task.x_in[top].numpy(), "label": task.y_in[top].numpy(), "pred": acc["pred_in"][top],
                "value": vals[top], "index": table["index"][top],
            }
        qs = {q: float(np.quantile(vals, q)) for q in (0.01, 0.25, 0.5, 0.75, 0.99)}
        return ShaprSummary(
            score=res.score, score_ci=IntervalSummary.from_interval(score_ci), at_risk=at_risk,
            at_risk_fraction=at_risk / n1, n=n1, test_samples=m, k=kk,
            quantiles={f"{q:g}": v for q, v in qs.items()}, max=float(vals.max()), min=float(vals.min()),
            riskiest=[RiskyMember(index=int(table["index"][i]), label=int(task.y_in[i]), value=float(vals[i]))
                      for i in top],
            seconds=time.perf_counter() - ts,
        )


def _subsample(n: int, k: int | None, gen: torch.Generator) -> torch.Tensor:
    if k is None or n <= k:
        return torch.arange(n)
    return torch.sort(torch.randperm(n, generator=gen)[:k]).values


def _attack_measurements(m: Any, pp: dict[str, Any], fprs: list[float]) -> list[Measurement]:
    out = [
        Measurement(metric="privacy.mia_auc", value=m.auc, unit="fraction", higher_is_better=False,
                    interval=m.auc_ci, sample_count=m.n_members + m.n_nonmembers, parameters=pp, raw_key="samples"),
        Measurement(metric="privacy.mia_balanced_accuracy", value=m.balanced_accuracy, unit="fraction",
                    higher_is_better=False, interval=m.balanced_accuracy_ci,
                    sample_count=m.n_members + m.n_nonmembers, parameters={**pp, "threshold": "2-fold cross-fitted"},
                    raw_key="samples"),
    ]
    for f in fprs:
        t = m.tpr_at[float(f)]
        if t.value is None:  # too few non-members: no number rather than a meaningless one
            continue
        out.append(Measurement(
            metric=f"privacy.mia_tpr_at_{fpr_label(f)}_fpr", value=t.value, unit="fraction", higher_is_better=False,
            interval=t.interval, sample_count=m.n_members,
            parameters={**pp, "fpr": f, "achieved_fpr": t.achieved_fpr, "nonmembers": m.n_nonmembers},
            raw_key="samples",
        ))
    return out


__all__ = ["DataSource", "InferenceSpec", "MembershipAttackSummary", "PrivacyCheck", "PrivacyParams",
           "PrivacySummary", "RiskyMember", "RocSummary", "ShaprParams", "ShaprSummary", "TprSummary", "WorstAttack"]
