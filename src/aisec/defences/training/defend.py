"""Train a defended copy of a target and write it as a file ``aisec assess`` loads without running code.

:func:`train_defended` trains (the target's module is never modified: a copy is trained) and
:func:`save_defended` writes two files:

- ``OUT.safetensors``: the trained state_dict, with the architecture in the safetensors metadata
  (``aisec.arch``, ``aisec.arch_kwargs``), so ``aisec assess -m OUT.safetensors`` finds it without
  ``--arch`` (an ``--arch`` given still wins). safetensors holds tensors only: loading it runs no code.
- ``OUT.defence.json``: the :class:`DefenceRecord` — recipe, input model and data digests, clean
  accuracy before and after, the loss of each epoch, time and throughput.

An existing output is refused unless ``force``; the input model file is never overwritten, even
with ``force``.
"""

from __future__ import annotations

import json
import math
import os
import platform
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import torch
from pydantic import BaseModel, ConfigDict, Field
from torch import nn

from aisec.core.dataset import Dataset, take
from aisec.core.errors import CapabilityError, ConfigError
from aisec.core.evidence import file_sha256
from aisec.core.progress import Progress, no_progress
from aisec.core.target import Target
from aisec.core.version import __version__
from aisec.defences.training.base import Forward, start_model, train_defence
from aisec.defences.training.recipe import DefenceRecipe, parse_recipe
from aisec.targets.loading import META_ARCH, META_ARCH_KWARGS

#: safetensors metadata key holding the recipe (the architecture keys are the loader's).
META_DEFENCE = "aisec.defence"


class DataDigest(BaseModel):
    """A dataset as the record names it."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    name: str
    digest: str
    samples: int


class DefenceRecord(BaseModel):
    """What ``aisec defend`` did: enough to trust and to repeat it."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    tool: str = "aisec"
    version: str = __version__
    created: str = Field(description="UTC time the training finished (ISO 8601).")
    defence: str
    recipe: str = Field(description="The recipe as text: name and the parameters that differ from the defaults.")
    params: dict[str, Any] = Field(description="Every parameter of the defence, defaults included.")
    seed: int
    device: str
    model_name: str
    model_digest: str = Field(description="sha256 of the input model file or weights.")
    arch: str | None
    arch_kwargs: dict[str, Any] = Field(default_factory=dict)
    train_data: DataDigest
    eval_data: DataDigest = Field(description="Where clean accuracy was measured (the training data if no other).")
    clean_accuracy_before: float
    clean_accuracy_after: float
    epoch_loss: list[float]
    seconds: float = Field(description="Wall time of the training loop.")
    epochs_per_minute: float
    output: str = ""
    output_sha256: str = ""
    torch_version: str = torch.__version__
    platform: str = platform.platform()


@dataclass
class Defended:
    """A trained defended module (eval mode, on the CPU) and its record (``output`` not yet set)."""

    module: nn.Module
    record: DefenceRecord


def _forward(net: nn.Module, target: Target) -> Forward:
    norm = target.spec.normalization
    if norm is None:
        return net
    dev = next(net.parameters()).device
    shape = (1, -1) + (1,) * (len(target.spec.input_shape) - 1)
    mean = torch.tensor(norm.mean, device=dev).view(shape)
    std = torch.tensor(norm.std, device=dev).view(shape)

    def forward(x: torch.Tensor) -> torch.Tensor:
        out: torch.Tensor = net((x - mean) / std)
        return out

    return forward


@torch.no_grad()
def _accuracy(forward: Forward, x: torch.Tensor, y: torch.Tensor, batch: int = 1024) -> float:
    hits = sum(int((forward(x[i : i + batch]).argmax(1) == y[i : i + batch]).sum()) for i in range(0, len(x), batch))
    return hits / max(len(x), 1)


def _digest(data: Dataset) -> DataDigest:
    return DataDigest(name=data.info.name, digest=data.info.digest, samples=len(data))


def arch_of(module: nn.Module, given: str | None) -> str | None:
    """The architecture to record: ``given``, else the zoo name or import path of the module's class
    (None for a class defined in ``__main__`` or a local scope: it cannot be imported back)."""
    if given:
        return given
    from aisec.targets.loading import ZOO_ARCHS
    cls = type(module)
    ref = f"{cls.__module__}:{cls.__qualname__}"
    for name, path in ZOO_ARCHS.items():
        if path == ref:
            return name
    if cls.__module__ == "__main__" or "<locals>" in cls.__qualname__:
        return None
    return ref


def train_defended(
    target: Target,
    data: Dataset,
    recipe: str | dict[str, Any] | DefenceRecipe,
    *,
    eval_data: Dataset | None = None,
    arch: str | None = None,
    arch_kwargs: dict[str, Any] | None = None,
    seed: int = 0,
    progress: Progress = no_progress,
) -> Defended:
    """Train a defended copy of ``target``'s torch module on ``data`` with ``recipe``.

    Args:
        target: a white-box torch target (its module is copied; the copy is trained).
        data: the training data, in the target's input range.
        recipe: ``pgd-at:eps=0.1,epochs=5``, ``{"name": "pgd-at", "eps": 0.1}`` or a :class:`DefenceRecipe`.
        eval_data: held-out data for clean accuracy before and after (default: ``data``).
        arch: the architecture to record for loading (default: inferred from the module's class).
        seed: seeds the initialisation (``mode=retrain``), the batch order and the attacks' random starts.

    Raises:
        ConfigError: a bad recipe, or data whose shape or classes do not fit the target.
        CapabilityError: the target exposes no torch module.
        DefenceDivergedError: the training loss became NaN/inf.
    """
    r = parse_recipe(recipe)
    module = getattr(target, "module", None)
    if not isinstance(module, nn.Module):
        raise CapabilityError(
            f"training defences train the model's torch module (white box); target '{target.spec.name}' "
            f"({target.spec.access.value} box) does not expose one. Load the model as torch weights with --arch.")
    spec = target.spec
    if tuple(data.info.sample_shape) != tuple(spec.input_shape):
        raise ConfigError(f"training data '{data.info.name}' has samples of shape {data.info.sample_shape}, the "
                          f"model takes {spec.input_shape}; use the data the model was trained on")
    dev = next(module.parameters()).device
    x, y = take(data, device=dev)
    x = x.float()
    y = y.long()
    if int(y.max()) >= spec.num_classes or int(y.min()) < 0:
        raise ConfigError(f"training data '{data.info.name}' has labels up to {int(y.max())}, the model has "
                          f"{spec.num_classes} classes")
    ev = eval_data if eval_data is not None else data
    xe, ye = take(ev, device=dev)
    xe, ye = xe.float(), ye.long()
    before = _accuracy(_forward(module, target), xe, ye)
    defence = r.info.obj()
    compose = getattr(defence, "compose", None)
    if callable(compose):  # a defence that puts something in front of the model (the denoiser)
        net, composed_kwargs = compose(module, r.params, seed)
        rec_arch, rec_kwargs = arch_of(net, None), dict(composed_kwargs)
        net = net.to(dev)
    else:
        net = start_model(module, r.params, seed)
        rec_arch, rec_kwargs = arch_of(module, arch), dict(arch_kwargs or {})
    forward = _forward(net, target)
    lo, hi = spec.value_range
    log = train_defence(defence, r.params, net, forward, x, y, value_range=(float(lo), float(hi)), seed=seed,
                        progress=progress, task=f"defend {r.name}")
    after = _accuracy(forward, xe, ye)
    record = DefenceRecord(
        created=datetime.now(UTC).isoformat(timespec="seconds"), defence=r.name, recipe=r.label(),
        params=r.params.model_dump(mode="json"), seed=seed, device=str(dev), model_name=spec.name,
        model_digest=spec.digest, arch=rec_arch, arch_kwargs=rec_kwargs,
        train_data=_digest(data), eval_data=_digest(ev), clean_accuracy_before=before,
        clean_accuracy_after=after, epoch_loss=log.epoch_loss, seconds=log.seconds,
        epochs_per_minute=r.params.epochs / log.seconds * 60 if log.seconds > 0 else math.inf,
    )
    return Defended(module=net.cpu().eval(), record=record)


def record_path(out: str | os.PathLike[str]) -> Path:
    """Where the record of the model written to ``out`` goes: ``defended.safetensors`` → ``defended.defence.json``."""
    p = Path(out)
    return p.with_name(p.name.removesuffix(".safetensors") + ".defence.json")


def check_out(out: str | os.PathLike[str], *, force: bool = False, inputs: tuple[str | os.PathLike[str], ...] = ()
              ) -> Path:
    """The output path, refused before any training when it would overwrite something it must not.

    Raises:
        ConfigError: not a ``.safetensors`` name; it (or its record) exists and ``force`` is not set; it is
            one of ``inputs`` (the model being defended: never overwritten, not even with ``force``); its
            folder does not exist.
    """
    p = Path(out).expanduser()
    if p.suffix.lower() != ".safetensors":
        raise ConfigError(f"the defended model is written as safetensors; name the output *.safetensors, got '{out}'")
    for src in inputs:
        s = Path(src).expanduser()
        if s.exists() and p.exists() and s.resolve() == p.resolve():
            raise ConfigError(f"refusing to overwrite the input model {src} with the defended one (not even with "
                              "--force); choose another output name")
    if p.is_dir():
        raise ConfigError(f"output {p} is a directory; give a file name ending in .safetensors")
    if not p.parent.exists():
        raise ConfigError(f"output folder {p.parent} does not exist; create it first")
    rec = record_path(p)
    if not force:
        for existing in (p, rec):
            if existing.exists():
                raise ConfigError(f"{existing} already exists; choose another output or pass --force (force=True) "
                                  "to replace it")
    return p


def save_defended(defended: Defended, out: str | os.PathLike[str], *, force: bool = False,
                  inputs: tuple[str | os.PathLike[str], ...] = ()) -> DefenceRecord:
    """Write the defended weights (safetensors, architecture in its metadata) and the record next to them.

    Both files are written to a temporary name first and then renamed, so a crash never leaves half a
    model under the output name. Returns the record with ``output`` and ``output_sha256`` set.
    """
    from safetensors.torch import save_file

    p = check_out(out, force=force, inputs=inputs)
    rec = defended.record
    meta = {META_DEFENCE: rec.recipe}
    if rec.arch:
        meta[META_ARCH] = rec.arch
        meta[META_ARCH_KWARGS] = json.dumps(rec.arch_kwargs, sort_keys=True)
    state = {k: v.detach().cpu().contiguous() for k, v in defended.module.state_dict().items()}
    tmp = p.with_name(p.name + ".tmp")
    save_file(state, str(tmp), metadata=meta)
    tmp.replace(p)
    final = rec.model_copy(update={"output": str(p), "output_sha256": file_sha256(p)})
    rtmp = record_path(p).with_name(record_path(p).name + ".tmp")
    rtmp.write_text(final.model_dump_json(indent=2) + "\n")
    rtmp.replace(record_path(p))
    return final
