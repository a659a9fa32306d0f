"""Training recipes: how to train a model like the target, once or many times at once.

A :class:`TrainingRecipe` names an architecture (a zoo name such as ``digits-cnn`` or an import
path ``package.module:Class``) with its keyword arguments and the optimiser settings. Privacy
attacks use it to train shadow and reference models the way the target was trained; the poisoning
check uses it to train victims on poisoned data.

``mode`` says where training starts: ``retrain`` (the default) builds a freshly initialised model
from the architecture; ``finetune`` starts from a deep copy of a given model (``init=``, e.g. the
target's module) and usually wants fewer epochs and a smaller learning rate. The given model is
never modified: only copies are trained.

:meth:`TrainingRecipe.train_many` trains K copies in one loop: the K models' parameters are
stacked (``torch.func.stack_module_state``) and one forward/backward pass runs all of them with
``torch.vmap`` over ``torch.func.functional_call``. Each model sees its own subset of the data
through a (K, N) membership mask; batches keep a static shape by interleaving zero-weight padding,
so the work per step is the same for every model. Adam, AdamW and SGD are element-wise, so one
optimiser over the stacked tensors is exactly K independent optimisers.

Users with their own training loop pass a callable instead (:meth:`TrainingRecipe.from_trainer`);
it is then called once per model.

>>> recipe = TrainingRecipe(architecture="digits-cnn", epochs=30, lr=1e-3)
>>> model = recipe.train(x, y)                     # one nn.Module
>>> stack = recipe.train_many(x, y, keep)          # keep: (K, N) bool; stack.logits(x) -> (K, N, C)
>>> tuned = TrainingRecipe(architecture="digits-cnn", mode="finetune", epochs=3, lr=5e-4).train(x, y, init=net)
"""

from __future__ import annotations

import copy
import inspect
import math
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal

import torch
import torch.nn.functional as F
from pydantic import BaseModel, ConfigDict, Field, PrivateAttr, field_validator
from torch import nn

from aisec.core.errors import ConfigError
from aisec.core.progress import Progress, no_progress
from aisec.core.safety import resolve_class

Trainer = Callable[..., nn.Module]
"""A user training function: ``(x, y, seed) -> trained nn.Module`` (in eval mode); for
``mode="finetune"`` it is called as ``(x, y, seed, init)`` with a copy of the model to start from."""


class RecipeDivergedError(ConfigError, FloatingPointError):
    """Training with the recipe produced a NaN/inf loss (a ``ConfigError``: the recipe is at fault).

    Also a ``FloatingPointError`` for callers that caught the bare error before it had a type.
    """

Builder = Callable[[], nn.Module]


def resolve_architecture(name: str) -> Callable[..., nn.Module]:
    """A zoo name (``digits-cnn``, ``DigitsCNN``, ``tabular-mlp``) or ``package.module:Class``.

    An import path must name an ``nn.Module`` subclass of aisec, of a module in the current folder,
    or of a package the user allowed (``--allow-module``; see :func:`aisec.core.safety.resolve_class`):
    a recipe in a shared plan cannot make aisec call ``os:system`` or import arbitrary modules.
    """
    from aisec.models import zoo

    known = sorted(a for a, o in vars(zoo).items() if isinstance(o, type) and issubclass(o, nn.Module)
                   and o.__module__ == zoo.__name__)
    if ":" in name or "." in name:
        cls: type[nn.Module] = resolve_class(name, what="recipe architecture", zoo=known)
        return cls
    want = re.sub(r"[-_ ]", "", name).lower()
    for attr, obj in vars(zoo).items():
        if isinstance(obj, type) and issubclass(obj, nn.Module) and attr.lower() == want:
            return obj
    raise ConfigError(f"unknown architecture '{name}'; zoo: {', '.join(known)}, or give package.module:Class")


class TrainingRecipe(BaseModel):
    """How a model is built and trained (architecture, optimiser, schedule, seed)."""

    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)

    architecture: str = Field(description="Zoo name (e.g. 'digits-cnn') or 'package.module:Class'.")
    kwargs: dict[str, Any] = Field(
        default_factory=dict,
        description="Constructor arguments; num_classes and in_features are filled from the data if omitted.",
    )
    mode: Literal["retrain", "finetune"] = Field(
        default="retrain",
        description="retrain: fresh initialisation from the architecture; finetune: continue from a copy of the "
        "given model (init=..., e.g. the target's weights).",
    )
    optimizer: Literal["adam", "adamw", "sgd"] = "adam"
    lr: float = Field(default=1e-3, gt=0)
    momentum: float = Field(default=0.9, ge=0, description="SGD only.")
    epochs: int = Field(default=30, ge=1)
    batch_size: int = Field(default=64, ge=1)
    weight_decay: float = Field(default=0.0, ge=0)
    seed: int = 0

    @field_validator("architecture")
    @classmethod
    def _resolvable(cls, v: str) -> str:
        """An import path is resolved now (safely: see :func:`resolve_architecture`), so that a plan naming
        ``os:system`` or a missing class is refused before any output is written."""
        if (":" in v or "." in v) and not v.startswith(("callable:", "copy-of:")):
            resolve_architecture(v)
        return v

    _builder: Builder | None = PrivateAttr(default=None)
    _trainer: Trainer | None = PrivateAttr(default=None)

    @classmethod
    def from_builder(cls, builder: Builder, **fields: Any) -> TrainingRecipe:
        """A recipe whose fresh model comes from ``builder()`` (Python API only; not serialisable)."""
        r = cls(architecture=fields.pop("architecture", f"callable:{_qualname(builder)}"), **fields)
        r._builder = builder
        return r

    @classmethod
    def from_trainer(cls, trainer: Trainer, **fields: Any) -> TrainingRecipe:
        """A recipe backed by the user's own training function ``trainer(x, y, seed) -> nn.Module``."""
        r = cls(architecture=fields.pop("architecture", f"callable:{_qualname(trainer)}"), **fields)
        r._trainer = trainer
        return r

    @property
    def custom(self) -> bool:
        """True when a user callable trains the models (no batched training)."""
        return self._trainer is not None

    def build(self, x: torch.Tensor | None = None, num_classes: int | None = None) -> nn.Module:
        """A freshly initialised model (uses the global RNG; seed it first for reproducibility)."""
        if self._builder is not None:
            return self._builder()
        if self.architecture.startswith("callable:"):
            raise ConfigError(
                f"recipe architecture '{self.architecture}' was a Python callable and cannot be rebuilt "
                "from its description; pass the recipe object itself, or an importable 'package.module:Class'"
            )
        cls = resolve_architecture(self.architecture)
        kwargs = dict(self.kwargs)
        try:
            sig = inspect.signature(cls)
            names = set(sig.parameters)
        except (TypeError, ValueError):
            names = set()
        if num_classes is not None and "num_classes" in names and "num_classes" not in kwargs:
            kwargs["num_classes"] = num_classes
        if x is not None and "in_features" in names and "in_features" not in kwargs:
            kwargs["in_features"] = int(math.prod(x.shape[1:]))
        try:
            model = cls(**kwargs)
        except TypeError as exc:
            raise ConfigError(f"architecture '{self.architecture}' rejected kwargs {kwargs}: {exc}") from exc
        if not isinstance(model, nn.Module):
            raise ConfigError(f"architecture '{self.architecture}' built a {type(model).__name__}, not an nn.Module")
        return model

    def train(
        self, x: torch.Tensor, y: torch.Tensor, *, seed: int | None = None, num_classes: int | None = None,
        device: str | torch.device | None = None, init: nn.Module | None = None,
    ) -> nn.Module:
        """Train one model on ``(x, y)``; deterministic for a given seed.

        The loop matches :func:`aisec.models.train.fit` (seed the global RNG, build, then per epoch
        a seeded permutation), so the demo model is reproduced exactly by its recipe. With
        ``mode="finetune"`` training starts from a deep copy of ``init`` (which is left untouched).
        """
        s = self.seed if seed is None else seed
        k = num_classes if num_classes is not None else int(y.max()) + 1
        self._check_init(init)
        if self._trainer is not None:
            if self.mode == "finetune":
                return self._trainer(x, y, s, self._start(init)).eval()
            return self._trainer(x, y, s).eval()
        torch.manual_seed(s)
        model = self._start(init) if self.mode == "finetune" else self.build(x, k)
        dev = torch.device(device) if device is not None else x.device
        model = model.to(dev)
        x, y = x.to(dev), y.to(dev)
        g = torch.Generator().manual_seed(s)
        opt = self._optimizer(list(model.parameters()))
        model.train()
        n = x.shape[0]
        for _ in range(self.epochs):
            perm = torch.randperm(n, generator=g).to(dev)
            for i in range(0, n, self.batch_size):
                idx = perm[i : i + self.batch_size]
                opt.zero_grad(set_to_none=True)
                loss = F.cross_entropy(model(x[idx]), y[idx])
                if not torch.isfinite(loss):
                    raise self._diverged()
                loss.backward()
                opt.step()
        return model.eval()

    def train_many(
        self,
        x: torch.Tensor,
        y: torch.Tensor,
        keep: torch.Tensor,
        *,
        num_classes: int | None = None,
        seed: int | None = None,
        device: str | torch.device | None = None,
        progress: Progress = no_progress,
        task: str = "training models",
        init: nn.Module | None = None,
    ) -> ModelStack:
        """Train ``K = keep.shape[0]`` models, model k on the samples where ``keep[k]`` is True.

        Models are batched with ``torch.vmap`` when the architecture allows it (no buffers such as
        BatchNorm running statistics, no user trainer); otherwise they are trained one after
        another. Each model gets its own initialisation (seed + k) and its own data order; with
        ``mode="finetune"`` every model starts from the same copy of ``init``.
        """
        self._check_init(init)
        if keep.ndim != 2 or keep.shape[1] != x.shape[0]:
            raise ConfigError(f"keep must have shape (K, {x.shape[0]}), got {tuple(keep.shape)}")
        keep = keep.to(torch.bool).cpu()
        kk = int(keep.shape[0])
        if kk == 0:
            raise ConfigError("train_many needs at least one model")
        sizes = keep.sum(1)
        if int(sizes.min()) == 0:
            raise ConfigError("a model in train_many would be trained on no samples")
        s = self.seed if seed is None else seed
        k_cls = num_classes if num_classes is not None else int(y.max()) + 1
        dev = torch.device(device) if device is not None else x.device
        torch.manual_seed(s)
        probe = None if self._trainer is not None else (
            init if self.mode == "finetune" else self.build(x[:1], k_cls))
        if probe is None or any(True for _ in probe.buffers()):
            models = []
            for j in range(kk):
                idx = keep[j].nonzero().squeeze(1).to(x.device)
                models.append(self.train(x[idx], y[idx], seed=s + j, num_classes=k_cls, device=dev, init=init))
                progress(task, j + 1, kk)
            return ModelStack.from_modules(models)
        return self._train_vmapped(x.to(dev), y.to(dev), keep, k_cls, s, dev, progress, task, init)

    def _check_init(self, init: nn.Module | None) -> None:
        if self.mode == "finetune" and init is None:
            raise ConfigError(
                "recipe mode 'finetune' needs the model to start from (init=...); use mode 'retrain' to train "
                "from a fresh initialisation"
            )

    def _start(self, init: nn.Module | None) -> nn.Module:
        """A trainable deep copy of ``init``: fine-tuning never touches the caller's model."""
        if init is None:  # guarded by _check_init; kept for the type checker
            raise ConfigError("recipe mode 'finetune' needs init=")
        m = copy.deepcopy(init)
        for p in m.parameters():
            p.requires_grad_(True)
        return m.train()

    def _diverged(self) -> RecipeDivergedError:
        return RecipeDivergedError(
            f"training loss became NaN/inf with the recipe ({self.mode}, {self.optimizer}, lr={self.lr:g}, "
            f"epochs={self.epochs}); lower the learning rate"
        )

    def _optimizer(self, params: list[torch.Tensor]) -> torch.optim.Optimizer:
        if self.optimizer == "adam":
            return torch.optim.Adam(params, lr=self.lr, weight_decay=self.weight_decay)
        if self.optimizer == "adamw":
            return torch.optim.AdamW(params, lr=self.lr, weight_decay=self.weight_decay)
        return torch.optim.SGD(params, lr=self.lr, momentum=self.momentum, weight_decay=self.weight_decay)

    def _train_vmapped(
        self, x: torch.Tensor, y: torch.Tensor, keep: torch.Tensor, num_classes: int, seed: int,
        dev: torch.device, progress: Progress, task: str, init: nn.Module | None = None,
    ) -> ModelStack:
        from torch.func import functional_call, stack_module_state

        kk = keep.shape[0]
        models = []
        for j in range(kk):
            torch.manual_seed(seed + j)
            # finetune: K stacked copies of the same starting weights
            start = self._start(init) if self.mode == "finetune" else self.build(x[:1], num_classes)
            models.append(start.to(dev))
        params, _ = stack_module_state(models)
        params = {k: v.detach().clone().requires_grad_(True) for k, v in params.items()}
        base = models[0].to("meta")
        opt = self._optimizer(list(params.values()))

        def loss_one(p: dict[str, torch.Tensor], xb: torch.Tensor) -> torch.Tensor:
            out: torch.Tensor = functional_call(base, p, (xb,))
            return out

        batched = torch.vmap(loss_one, in_dims=(0, 0), randomness="different")
        sizes = keep.sum(1)
        m = int(sizes.max())
        bs = self.batch_size
        steps = math.ceil(m / bs)
        g = torch.Generator().manual_seed(seed)
        base.train()
        for epoch in range(self.epochs):
            idx, w = _interleaved_order(keep, sizes, m, g)
            idx, w = idx.to(dev), w.to(dev)
            for i in range(steps):
                bi, bw = idx[:, i * bs : (i + 1) * bs], w[:, i * bs : (i + 1) * bs]
                xb, yb = x[bi], y[bi]
                logits = batched(params, xb)
                ce = F.cross_entropy(logits.reshape(-1, logits.shape[-1]), yb.reshape(-1), reduction="none")
                per_model = (ce.view_as(bw) * bw).sum(1) / bw.sum(1).clamp_min(1.0)
                loss = per_model.sum()
                if not torch.isfinite(loss):
                    raise self._diverged()
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()
            progress(task, epoch + 1, self.epochs)
        base.eval()
        return ModelStack(base, {k: v.detach() for k, v in params.items()}, {})


def _interleaved_order(
    keep: torch.Tensor, sizes: torch.Tensor, m: int, g: torch.Generator
) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-model sample order of static length ``m``: a random permutation of the model's own
    samples with zero-weight padding spread evenly, so no batch is all padding.

    Returns index ``(K, m)`` into the data and weight ``(K, m)`` (1 real, 0 padding).
    """
    kk, n = keep.shape
    r = torch.rand(kk, n, generator=g)
    r[~keep] += 2.0  # members first, in random order; then non-members (used as padding)
    order = torch.argsort(r, dim=1)[:, :m]
    j = torch.arange(m, dtype=torch.float64).unsqueeze(0).expand(kk, m)
    sz = sizes.to(torch.float64).unsqueeze(1)
    real = j < sz
    pad_count = (m - sz).clamp_min(1.0)
    # Real slot j sits at fraction (j + .5)/size, padding slot at (j - size + .5)/pad_count.
    key = torch.where(real, (j + 0.5) / sz, (j - sz + 0.5) / pad_count)
    pos = torch.argsort(key, dim=1, stable=True)
    idx = torch.gather(order, 1, pos)
    w = torch.gather(real.to(torch.float32), 1, pos)
    idx = torch.where(w > 0, idx, torch.gather(order, 1, torch.zeros_like(pos)))  # pad with a member, weight 0
    return idx, w


@dataclass
class ModelStack:
    """K models of one architecture with stacked parameters; evaluates all of them in one pass."""

    base: nn.Module
    params: dict[str, torch.Tensor]
    buffers: dict[str, torch.Tensor]
    modules: list[nn.Module] | None = None

    @classmethod
    def from_modules(cls, modules: list[nn.Module]) -> ModelStack:
        return cls(modules[0], {}, {}, modules=[m.eval() for m in modules])

    def __len__(self) -> int:
        if self.modules is not None:
            return len(self.modules)
        return int(next(iter(self.params.values())).shape[0])

    @torch.no_grad()
    def logits(self, x: torch.Tensor, *, batch_size: int = 1024) -> torch.Tensor:
        """Logits of every model on every sample: ``(K, N, num_classes)`` on the CPU."""
        outs = []
        if self.modules is not None:
            for m in self.modules:
                dev = next(m.parameters()).device
                outs.append(torch.cat([m(x[i : i + batch_size].to(dev)).cpu()
                                       for i in range(0, x.shape[0], batch_size)]))
            return torch.stack(outs)
        from torch.func import functional_call

        dev = next(iter(self.params.values())).device
        base = self.base

        def one(p: dict[str, torch.Tensor], xb: torch.Tensor) -> torch.Tensor:
            out: torch.Tensor = functional_call(base, p, (xb,))
            return out

        fn = torch.vmap(one, in_dims=(0, None))
        for i in range(0, x.shape[0], batch_size):
            outs.append(fn(self.params, x[i : i + batch_size].to(dev)).cpu())
        return torch.cat(outs, dim=1)

    def module(self, k: int) -> nn.Module:
        """Model k as a standalone ``nn.Module`` (for inspection or saving)."""
        if self.modules is not None:
            return self.modules[k]
        import copy

        m = copy.deepcopy(self.base).to_empty(device=next(iter(self.params.values())).device)
        m.load_state_dict({name: p[k] for name, p in self.params.items()}, strict=False)
        return m.eval()


def _qualname(fn: Callable[..., Any]) -> str:
    return f"{getattr(fn, '__module__', '?')}:{getattr(fn, '__qualname__', type(fn).__name__)}"
