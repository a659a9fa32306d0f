"""PyTorch targets: an ``nn.Module`` (given in Python, TorchScript, or weights + architecture).

White box: ``logits`` is differentiable and runs on the target's device. Normalisation declared
in the spec is applied inside ``logits``, so callers always work in the natural data range.

Speed: on the CPU, a convolutional image model that aisec loaded itself (a model file or a built-in:
nobody else holds the module) runs in the channels-last memory format when that gives the same outputs
(``memory_format="auto"``). A module handed to :class:`TorchTarget` in Python is left in its layout
unless asked, since switching it would change the strides of the caller's own tensors (``safetensors``
refuses to save those). oneDNN's poolings and convolutions are much faster in that layout: on the digits
CNN, 1 thread (measured on a loaded machine, so as ratios), a forward of 50 images takes 5.4 ms instead
of 9.5 ms and a forward + backward 25 ms instead of 28 ms (256 images: 23 vs 61 ms, 65 vs 105 ms);
``bench/bench_autoattack.py`` shows what it gives a whole ensemble. Only strides change, never a value:
on first use the target runs the batch both ways and keeps channels-last only if it runs and agrees to
float tolerance (a model that calls ``.view`` on its activations fails there and stays as given), and
input gradients are handed back contiguous, as in the default layout.

Forwards without gradients (a black-box attack's queries, FAB's checks, predictions) run, where the same
rule allows it, on a frozen TorchScript copy of the module (``torch.jit.freeze`` +
``optimize_for_inference``: weights prepacked for oneDNN, ReLUs in place, convolutions fused with their
activation) instead of eager PyTorch, which repacks every convolution's weights and allocates every
activation afresh on each call. On advertorch's MNIST LeNet5, 90 images, 1 thread: 9.5 ms per forward
instead of 21 ms, and the same logits to the last bit. The copy is made on the first gradient-free call after
the output check, and used only if tracing raised no ``TracerWarning`` (no data-dependent Python control flow)
and it gives the eager module's logits again, to float tolerance, on that batch and on a one-row slice of it
(a stochastic model fails there and stays eager). Forwards that need gradients always run the eager module.
Once the module's weights or buffers change (training through the target, ``load_state_dict``) or it is set
to training mode, the copy is dropped for good and every call is eager: the copy never answers for weights it
was not made from. ``frozen_inference=False`` turns it off.

Forwards that need gradients run, under the same rule, on an exact rewrite of the module where one applies
(:mod:`aisec.targets._rewrite`: max-pooling before the ReLU that precedes it, the same values and input
gradients for a quarter of the ReLU work; on the LeNet5 a forward and backward pass takes 36 ms instead of
46 ms). It is used only after it has given the module's logits and input gradients again on the first batch,
and dropped for good if a submodule or parameter of the module is replaced or the module is set to training.
``exact_rewrites=False`` turns it off.
"""

from __future__ import annotations

import hashlib
import warnings
from typing import Any, Literal

import torch
from torch import nn
from torch.jit._trace import TracerWarning

from aisec.core.errors import ConfigError, OutputError, ShapeError
from aisec.core.target import Normalization, TargetSpec
from aisec.core.types import Access, Capability, Modality, OutputKind

MemoryFormat = Literal["auto", "channels_last", "contiguous"]

_WHITE_BOX = frozenset(
    {Capability.GRADIENTS, Capability.LOGITS, Capability.PROBABILITIES}
)


def state_dict_digest(module: nn.Module) -> str:
    """sha256 of a module's parameters and buffers, in key order (stable across saves)."""
    h = hashlib.sha256()
    for key, value in module.state_dict().items():
        h.update(key.encode())
        t = value.detach().cpu().contiguous()
        h.update(f"{t.dtype}{tuple(t.shape)}".encode())
        h.update(t.reshape(-1).view(torch.uint8).numpy().tobytes())
    return h.hexdigest()


class TorchTarget:
    """A PyTorch classifier as a white-box target.

    Args:
        module: maps a batch ``(N, *input_shape)`` to logits ``(N, num_classes)``.
        input_shape: shape of one sample, e.g. ``(1, 28, 28)``.
        num_classes: number of classes; checked against the model's output on first use.
        normalization: mean/std the model expects; applied inside ``logits``.
        output: set to ``probabilities`` if the module ends in a softmax.
        memory_format: ``auto`` lets the target switch the module (in place) to channels-last where that is
            faster and changes no output (see the module's docstring); ``contiguous`` leaves it as given.
        frozen_inference: serve gradient-free forwards from a verified, frozen TorchScript copy (see the
            module's docstring). None (default): where ``memory_format`` is ``auto`` (a model aisec loaded
            itself) and the model is a convolutional image model on the CPU; True: any model on the CPU.
        exact_rewrites: run forwards with gradients on a verified rewrite of the module that changes no value
            (see the module's docstring). None (default): as ``frozen_inference``; True: any model.

    >>> target = TorchTarget(net, input_shape=(1, 8, 8), num_classes=10)
    >>> target.predict(x).shape
    torch.Size([N, 10])
    """

    def __init__(
        self,
        module: nn.Module,
        *,
        input_shape: tuple[int, ...],
        num_classes: int,
        name: str | None = None,
        modality: Modality = Modality.IMAGE,
        class_names: tuple[str, ...] | list[str] | None = None,
        value_range: tuple[float, float] = (0.0, 1.0),
        normalization: Normalization | dict[str, tuple[float, ...]] | None = None,
        output: OutputKind = OutputKind.LOGITS,
        device: str | torch.device | None = None,
        digest: str | None = None,
        memory_format: MemoryFormat = "contiguous",
        frozen_inference: bool | None = None,
        exact_rewrites: bool | None = None,
    ) -> None:
        if memory_format not in ("auto", "channels_last", "contiguous"):
            raise ConfigError(f"memory_format must be auto, channels_last or contiguous, got {memory_format!r}")
        dev = _device(device) if device is not None else _default_device()
        self.module = module.to(dev).eval()
        #: channels-last wanted: asked for, or auto on the CPU for a convolutional model of image inputs
        self._try_cl = memory_format == "channels_last" or (
            memory_format == "auto" and dev.type == "cpu" and len(tuple(input_shape)) == 3
            and any(isinstance(m, nn.Conv2d) for m in module.modules()))
        self._cl = False
        #: the frozen copy: "untried", "on" (``self._frozen`` serves no-grad forwards) or "off" for good
        want_frozen = self._try_cl and memory_format == "auto" if frozen_inference is None else frozen_inference
        self._frozen_state = "untried" if want_frozen and dev.type == "cpu" else "off"
        self._frozen: torch.jit.ScriptModule | None = None
        self._frozen_state_of: _ModuleState | None = None
        #: the rewritten module for forwards with gradients (None: the module as given)
        self._want_rewrite = self._try_cl and memory_format == "auto" if exact_rewrites is None else exact_rewrites
        self._rewritten: nn.Module | None = None
        self._rewritten_of: _ModuleState | None = None
        norm = Normalization(**normalization) if isinstance(normalization, dict) else normalization
        self._spec = TargetSpec(
            name=name or type(module).__name__,
            modality=modality,
            input_shape=tuple(input_shape),
            num_classes=num_classes,
            class_names=tuple(class_names) if class_names is not None else None,
            value_range=value_range,
            access=Access.WHITE,
            output=output,
            capabilities=_WHITE_BOX,
            normalization=norm,
            device=str(dev),
            digest=digest or state_dict_digest(module),
        )
        self._queries = 0
        self._checked = False
        if norm is not None:
            shape = (1, -1) + (1,) * (len(input_shape) - 1)
            self._mean = torch.tensor(norm.mean, device=dev).view(shape)
            self._std = torch.tensor(norm.std, device=dev).view(shape)
        for p in self.module.parameters():
            p.requires_grad_(False)

    @property
    def spec(self) -> TargetSpec:
        return self._spec

    @property
    def queries(self) -> int:
        return self._queries

    @property
    def device(self) -> torch.device:
        return torch.device(self._spec.device)

    def logits(self, x: torch.Tensor) -> torch.Tensor:
        """Differentiable logits (log-probabilities if the module outputs probabilities)."""
        x = x.to(self.device)
        self._queries += int(x.shape[0])
        inp = (x - self._mean) / self._std if self._spec.normalization else x
        frozen = None
        if self._checked and self._frozen_state != "off" and not torch.is_grad_enabled():
            frozen = self._frozen_forward(inp)
        if frozen is not None:
            z: torch.Tensor = frozen
        elif self._checked:
            z = self._graph_module()(_ContiguousGrad.apply(inp) if self._cl else inp)  # type: ignore[no-untyped-call]
        else:
            try:
                z = self.module(inp)
            except RuntimeError as exc:  # first call: turn a shape failure into a clear error
                raise ShapeError(
                    f"model '{self._spec.name}' failed on a batch of shape {tuple(x.shape)} (declared "
                    f"per-sample input shape {self._spec.input_shape}): {exc}"
                ) from exc
            self._check_output(z, x)
            if self._try_cl and inp.ndim == 4:
                self._cl = self._channels_last_agrees(inp.detach(), z.detach())
            if self._want_rewrite:
                self._rewritten = self._rewrite(inp.detach())
                self._rewritten_of = _ModuleState(self.module)
        if self._spec.output is OutputKind.PROBABILITIES:
            z = torch.log(z.clamp_min(1e-12))
        return z

    @property
    def rewritten(self) -> bool:
        """True while forwards with gradients run on the exact rewrite of the module."""
        return self._rewritten is not None

    def _graph_module(self) -> nn.Module:
        """The rewritten module while it still stands for the module, else the module itself."""
        if self._rewritten is None:
            return self.module
        if self.module.training or self._rewritten_of is None or not self._rewritten_of.same(versions=False):
            self._rewritten = None  # a replaced submodule or weight, or training: the module as given from now on
            return self.module
        return self._rewritten

    def _rewrite(self, inp: torch.Tensor) -> nn.Module | None:
        """:func:`~aisec.targets._rewrite.pool_before_relu` of the module, if it gives the same logits and
        input gradients on ``inp`` and on a one-row slice of it (else None)."""
        from aisec.targets._rewrite import pool_before_relu

        gm = pool_before_relu(self.module)
        if gm is None:
            return None
        if self._cl and inp.ndim == 4:
            inp = inp.contiguous(memory_format=torch.channels_last)
        try:
            with torch.enable_grad():  # the first call may come from a gradient-free predict
                for probe in (inp, inp[:1]):
                    if not self._same_logits_and_gradients(self.module, gm, probe):
                        return None
        except RuntimeError:
            return None
        return gm

    @staticmethod
    def _same_logits_and_gradients(a: nn.Module, b: nn.Module, probe: torch.Tensor) -> bool:
        """Do ``a`` and ``b`` give the same logits and input gradients (of a fixed mix of the logits) on ``probe``?"""
        outs = []
        for mod in (a, b):
            xr = probe.detach().clone().requires_grad_(True)
            z = mod(xr)
            weights = torch.linspace(-1.0, 1.0, z.numel(), device=z.device).view_as(z)
            (g,) = torch.autograd.grad((z * weights).sum(), xr)
            outs.append((z.detach(), g))
        (z0, g0), (z1, g1) = outs
        scale_z, scale_g = float(z0.abs().max()) or 1.0, float(g0.abs().max()) or 1.0
        return z1.shape == z0.shape and bool(torch.allclose(z1, z0, rtol=1e-4, atol=1e-5 * scale_z)) and bool(
            torch.allclose(g1, g0, rtol=1e-4, atol=1e-5 * scale_g))

    @property
    def frozen_inference(self) -> bool:
        """True while gradient-free forwards run on the frozen TorchScript copy."""
        return self._frozen_state == "on"

    def _frozen_forward(self, inp: torch.Tensor) -> torch.Tensor | None:
        """The frozen copy's logits for ``inp``, or None where the eager module must answer."""
        if self.module.training:
            self._drop_frozen()
            return None
        if self._frozen_state == "untried":
            self._frozen = self._freeze(inp)
            self._frozen_state = "on" if self._frozen is not None else "off"
            self._frozen_state_of = _ModuleState(self.module)
        if self._frozen is None or self._frozen_state_of is None or not self._frozen_state_of.same(versions=True):
            self._drop_frozen()
            return None
        try:
            out: torch.Tensor = self._frozen(inp.contiguous(memory_format=torch.channels_last) if self._cl
                                             and inp.ndim == 4 else inp)
        except RuntimeError:  # an input the trace did not foresee: eager from now on
            self._drop_frozen()
            return None
        return out

    def _drop_frozen(self) -> None:
        self._frozen, self._frozen_state = None, "off"

    def _freeze(self, inp: torch.Tensor) -> torch.jit.ScriptModule | None:
        """A frozen, inference-optimised trace of the module, if it reproduces the eager logits (else None)."""
        mods = list(self.module.modules())
        if any(m._forward_hooks or m._forward_pre_hooks for m in mods):
            return None  # hooks run Python the trace would not replay
        ex = inp.detach()
        if self._cl and ex.ndim == 4:
            ex = ex.contiguous(memory_format=torch.channels_last)
        try:
            with warnings.catch_warnings(record=True) as caught, torch.no_grad():
                warnings.simplefilter("always")
                traced = torch.jit.trace(self.module, ex, check_trace=False)
                frozen = torch.jit.optimize_for_inference(torch.jit.freeze(traced))
                if any(issubclass(w.category, TracerWarning) for w in caught):
                    return None  # data-dependent control flow or constants baked in: not safe to replay
                for probe in (ex, ex[:1]):
                    want, got = self.module(probe), frozen(probe)
                    if not isinstance(got, torch.Tensor) or got.shape != want.shape:
                        return None
                    scale = float(want.abs().max()) or 1.0
                    if not torch.allclose(got, want, rtol=1e-4, atol=1e-5 * scale):
                        return None
        except Exception:  # any failure to trace or freeze just means: stay eager
            return None
        return frozen

    @property
    def memory_format(self) -> str:
        """``channels_last`` once the target runs its model in that layout, else ``contiguous``."""
        return "channels_last" if self._cl else "contiguous"

    def _channels_last_agrees(self, inp: torch.Tensor, z: torch.Tensor) -> bool:
        """Switch the module to channels-last if it runs there and gives ``z`` again (else leave it as it was)."""
        try:
            self.module.to(memory_format=torch.channels_last)  # type: ignore[call-overload]
            with torch.no_grad():
                z2 = self.module(inp.contiguous(memory_format=torch.channels_last))
            scale = float(z.abs().max()) or 1.0
            same = z2.shape == z.shape and bool(torch.allclose(z2, z, rtol=1e-4, atol=1e-5 * scale))
        except RuntimeError:
            same = False
        if not same:
            self.module.to(memory_format=torch.contiguous_format)  # type: ignore[call-overload]
        return same

    def predict(self, x: torch.Tensor) -> torch.Tensor:
        with torch.no_grad():
            z = self.logits(x)
            p = torch.softmax(z.float(), dim=1)
        if not torch.isfinite(p).all():
            raise OutputError(
                f"model '{self._spec.name}' produced NaN/inf outputs for "
                f"{int((~torch.isfinite(p)).any(1).sum())} of {p.shape[0]} samples"
            )
        return p

    def _check_output(self, z: torch.Tensor, x: torch.Tensor) -> None:
        k = self._spec.num_classes
        if z.ndim != 2 or z.shape[0] != x.shape[0]:
            raise OutputError(
                f"model '{self._spec.name}' returned shape {tuple(z.shape)} for a batch of "
                f"{x.shape[0]}; a classifier must return (N, num_classes)"
            )
        if z.shape[1] != k:
            raise ShapeError(
                f"model '{self._spec.name}' has {z.shape[1]} outputs but {k} classes were declared "
                f"(expected {k}, got {z.shape[1]}). Check the dataset's classes or --classes."
            )
        if not torch.isfinite(z).all():
            raise OutputError(f"model '{self._spec.name}' produced NaN/inf outputs")
        self._checked = True


class _ModuleState:
    """What a module's tree held when a copy or rewrite was made of it: every submodule, parameter and buffer
    slot with the object in it and that tensor's in-place version counter.

    ``same()`` is a few dictionary lookups per tensor, cheap enough for every call (walking ``parameters()``
    each time cost 0.2 ms per forward on the digits CNN); it notices a replaced submodule or parameter
    (``module.fc = ...``, ``module.fc.weight = ...``) and, with ``versions``, any in-place change of a weight
    (an optimiser step, ``load_state_dict``).
    """

    def __init__(self, module: nn.Module) -> None:
        self._slots: list[tuple[dict[str, Any], str, Any, int]] = []
        for m in module.modules():
            for table in (m._modules, m._parameters, m._buffers):
                for name, obj in table.items():
                    self._slots.append((table, name, obj, obj._version if isinstance(obj, torch.Tensor) else 0))
        self._sizes = [(m._modules, m._parameters, m._buffers, len(m._modules) + len(m._parameters) + len(m._buffers))
                       for m in module.modules()]

    def same(self, *, versions: bool) -> bool:
        for a, b, c, size in self._sizes:  # a slot added or removed
            if len(a) + len(b) + len(c) != size:
                return False
        for table, name, obj, version in self._slots:
            now = table.get(name)
            if now is not obj or (versions and isinstance(obj, torch.Tensor) and obj._version != version):
                return False
        return True


class _ContiguousGrad(torch.autograd.Function):
    """Identity forward; the gradient passed back is made contiguous (a channels-last model would hand back
    channels-last input gradients, which the attacks' ``view`` calls do not take)."""

    @staticmethod
    def forward(ctx: Any, x: torch.Tensor) -> torch.Tensor:
        return x.view_as(x)

    @staticmethod
    def backward(ctx: Any, grad: torch.Tensor) -> torch.Tensor:
        return grad.contiguous()


def _device(device: str | torch.device) -> torch.device:
    """``device`` as a torch device that exists on this machine; a ConfigError naming the way out otherwise."""
    try:
        dev = torch.device(device)
    except (RuntimeError, TypeError, ValueError) as exc:
        raise ConfigError(f"unknown device {device!r}: {exc}; use cpu, cuda, cuda:N or mps") from exc
    if dev.type == "cuda":
        count = torch.cuda.device_count() if torch.cuda.is_available() else 0
        if count == 0:
            raise ConfigError(f"device '{device}' was asked for but CUDA is not available here; use --device cpu")
        if dev.index is not None and dev.index >= count:
            raise ConfigError(f"device '{device}' does not exist: this machine has {count} CUDA device(s), "
                              f"cuda:0 to cuda:{count - 1}")
    elif dev.type == "mps" and not torch.backends.mps.is_available():
        raise ConfigError(f"device '{device}' was asked for but MPS is not available here; use --device cpu")
    return dev


def _default_device() -> torch.device:
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")
