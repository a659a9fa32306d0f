"""BadNets: a patch trigger stamped on training images, relabelled to the target class.

Gu, Dolan-Gavitt, Garg, "BadNets: Identifying Vulnerabilities in the Machine Learning Model Supply
Chain" (2017), https://arxiv.org/abs/1708.06733.

Dirty label; needs only write access to a fraction of the training set. Images ``(N, C, H, W)``
in [0, 1]. The trigger is a ``size x size`` patch (generated: checkerboard, white or seeded random;
or read from an image file) at a fixed corner, given ``(row, col)``, or a random position per image.

>>> trig = PatchTrigger(size=3, position="bottom-right")
>>> xp = trig.apply(x)                         # every image carries the patch
>>> ps = poison_dataset(x, y, trig, rate=0.05, target_class=1, seed=0)
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal

import torch
from pydantic import BaseModel, ConfigDict, Field

from aisec.attacks.poisoning.blended import BlendTrigger, _load_image
from aisec.core.errors import ConfigError, DataError
from aisec.core.registry import register
from aisec.core.types import Modality

Position = Literal["bottom-right", "bottom-left", "top-left", "top-right", "random"] | tuple[int, int]


@register("poisoning", "badnets", clean_label=False, trigger="patch", modalities={Modality.IMAGE},
          summary="dirty label: a patch trigger stamped on source-class images, relabelled to the target",
          paper="https://arxiv.org/abs/1708.06733", params=None)
class PatchTrigger(BaseModel):
    """A square patch trigger (BadNets)."""

    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)

    kind: Literal["patch"] = "patch"
    size: int = Field(default=3, ge=1, description="Side of the square patch in pixels.")
    position: Position = Field(default="bottom-right", description="Corner, (row, col), or 'random' per image.")
    pattern: Literal["checkerboard", "white", "random"] = Field(
        default="checkerboard", description="Generated pattern when no file is given."
    )
    path: str | None = Field(default=None, description="Image file with the trigger (resized to size x size).")
    seed: int = 0

    def patch(self, channels: int) -> torch.Tensor:
        """The patch as ``(C, size, size)`` in [0, 1]."""
        s = self.size
        if self.path is not None:
            return _load_patch(self.path, s, channels)
        if self.pattern == "white":
            return torch.ones(channels, s, s)
        if self.pattern == "random":
            g = torch.Generator().manual_seed(self.seed)
            return (torch.rand(channels, s, s, generator=g) > 0.5).float()
        ii, jj = torch.meshgrid(torch.arange(s), torch.arange(s), indexing="ij")
        # Checkerboard with a lit bottom-right corner, like ART's add_pattern_bd.
        board = ((ii + jj + s + 1) % 2 == 0).float() if s > 1 else torch.ones(1, 1)
        return board.expand(channels, s, s).clone()

    def validate_for(self, shape: tuple[int, ...]) -> None:
        """Raise :class:`ConfigError` unless the patch fits an image of per-sample ``shape``."""
        if len(shape) != 3:
            raise ConfigError(f"patch triggers need images (C, H, W); the data's samples have shape {shape}")
        _, h, w = shape
        if self.size > h or self.size > w:
            raise ConfigError(
                f"trigger of {self.size}x{self.size} pixels is larger than the {h}x{w} image; "
                f"choose a size ≤ {min(h, w)} (-s/--patch-size)"
            )
        if isinstance(self.position, tuple):
            r, c = self.position
            if r < 0 or c < 0 or r + self.size > h or c + self.size > w:
                raise ConfigError(
                    f"trigger at (row={r}, col={c}) with size {self.size} falls outside the {h}x{w} image"
                )

    def offsets(self, n: int, h: int, w: int, generator: torch.Generator | None = None) -> torch.Tensor:
        """Top-left corner per image, ``(n, 2)`` long."""
        s = self.size
        pos = self.position
        if pos == "random":
            g = generator or torch.Generator().manual_seed(self.seed)
            return torch.stack([torch.randint(0, h - s + 1, (n,), generator=g),
                                torch.randint(0, w - s + 1, (n,), generator=g)], 1)
        if isinstance(pos, tuple):
            rc = pos
        else:
            rc = {"bottom-right": (h - s, w - s), "bottom-left": (h - s, 0), "top-left": (0, 0),
                  "top-right": (0, w - s)}[pos]
        return torch.tensor(rc).expand(n, 2).clone()

    def mask_and_pattern(self, x: torch.Tensor, generator: torch.Generator | None = None
                         ) -> tuple[torch.Tensor, torch.Tensor]:
        """Per-image mask ``(N, 1, H, W)`` and full-size pattern ``(N, C, H, W)`` (batched, no loops)."""
        self.validate_for(tuple(x.shape[1:]))
        n, c, h, w = x.shape
        s = self.size
        off = self.offsets(n, h, w, generator).to(x.device)
        rows = torch.arange(h, device=x.device).view(1, h, 1) - off[:, 0].view(n, 1, 1)
        cols = torch.arange(w, device=x.device).view(1, 1, w) - off[:, 1].view(n, 1, 1)
        inside = (rows >= 0) & (rows < s) & (cols >= 0) & (cols < s)
        p = self.patch(c).to(x.device, x.dtype)
        ri = rows.clamp(0, s - 1).unsqueeze(1).expand(n, c, h, w)
        ci = cols.clamp(0, s - 1).unsqueeze(1).expand(n, c, h, w)
        ch = torch.arange(c, device=x.device).view(1, c, 1, 1).expand(n, c, h, w)
        pattern = p[ch, ri, ci]
        return inside.unsqueeze(1).to(x.dtype), pattern

    def apply(self, x: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        """``x`` with the patch stamped on every image."""
        m, p = self.mask_and_pattern(x, generator)
        return x * (1 - m) + p * m

    @property
    def area(self) -> int:
        return self.size * self.size


Trigger = PatchTrigger | BlendTrigger


@dataclass
class PoisonSet:
    """A poisoned copy of a training set.

    ``x``/``y`` are the full poisoned training set; ``index`` the positions that were poisoned
    (in order of selection, so the first ``k`` are the poisons of any smaller rate: sweeps nest).
    """

    x: torch.Tensor
    y: torch.Tensor
    index: torch.Tensor

    @property
    def is_poison(self) -> torch.Tensor:
        m = torch.zeros(self.x.shape[0], dtype=torch.bool)
        m[self.index.cpu()] = True
        return m


@dataclass
class PoisonTask:
    """What a clean-label poisoning attack crafts from (one uniform call for every registered attack).

    ``candidates`` index the target-class rows of ``x_train`` that may become poisons; the attack
    picks ``count`` of them and returns ``(index, poisons)``: the chosen rows of ``x_train`` and their
    perturbed versions (labels unchanged). ``retrain(index)`` returns a model trained like the victims
    on the training set whose rows ``index`` are (to be) poisoned, for attacks that retrain their
    surrogate between crafting rounds.
    """

    surrogate: torch.nn.Module
    x_train: torch.Tensor
    y_train: torch.Tensor
    candidates: torch.Tensor
    count: int
    x_source: torch.Tensor
    trigger: Trigger
    target_class: int
    params: Any
    seed: int
    generator: torch.Generator
    retrainer: Callable[[torch.Tensor], Any] | None = None

    def random_pick(self) -> torch.Tensor:
        """``count`` candidates drawn at random (seeded by ``generator``)."""
        c = self.candidates
        return c[torch.randperm(c.numel(), generator=self.generator)[: self.count].to(c.device)]


def check_classes(num_classes: int, target_class: int, source_class: int | None) -> None:
    """Raise :class:`ConfigError` for a class that does not exist or source == target."""
    for name, k in (("target_class", target_class), ("source_class", source_class)):
        if k is not None and not 0 <= k < num_classes:
            raise ConfigError(f"{name}={k} does not exist; the model has classes 0..{num_classes - 1}")
    if source_class is not None and source_class == target_class:
        raise ConfigError(
            f"source_class and target_class are both {target_class}; a backdoor must move one class to another"
        )


def candidates(y: torch.Tensor, target_class: int, source_class: int | None) -> torch.Tensor:
    """Indices that may be poisoned (dirty label): samples of the source class, or of every class but the target."""
    keep = (y == source_class) if source_class is not None else (y != target_class)
    return keep.nonzero().squeeze(1)


def poison_dataset(
    x: torch.Tensor, y: torch.Tensor, trigger: Trigger, *, rate: float, target_class: int,
    source_class: int | None = None, num_classes: int | None = None, seed: int = 0,
) -> PoisonSet:
    """Stamp the trigger on ``round(rate * N)`` candidate samples and relabel them ``target_class``.

    ``rate`` is the fraction of the whole training set that is poisoned.
    """
    k_cls = num_classes if num_classes is not None else int(y.max()) + 1
    check_classes(k_cls, target_class, source_class)
    if not 0.0 <= rate <= 1.0:
        raise ConfigError(f"poisoning rate must lie in [0, 1], got {rate}")
    trigger.validate_for(tuple(x.shape[1:]))
    cand = candidates(y.cpu(), target_class, source_class)
    n_poison = round(rate * x.shape[0])
    if n_poison > cand.numel():
        raise DataError(f"rate {rate} needs {n_poison} samples to poison but only {cand.numel()} candidates exist")
    g = torch.Generator().manual_seed(seed)
    idx = cand[torch.randperm(cand.numel(), generator=g)[:n_poison]]
    xp, yp = x.clone(), y.clone()
    if n_poison:
        xp[idx.to(x.device)] = trigger.apply(x[idx.to(x.device)], g)
        yp[idx.to(y.device)] = target_class
    return PoisonSet(xp, yp, idx)


def _load_patch(path: str, size: int, channels: int) -> torch.Tensor:
    return _load_image(path, (size, size), channels)
