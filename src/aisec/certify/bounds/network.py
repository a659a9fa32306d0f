"""A white-box model read as a chain of layers that interval and linear bounds can pass through.

IBP and CROWN need to see every layer of the network: :func:`read_module` walks an ``nn.Sequential``
(nested ones too) or, for any other module, traces its ``forward`` with ``torch.fx`` and accepts it when
it is a plain chain (each layer takes the previous layer's output). Every layer becomes one :class:`Op`:

* :class:`Affine` — ``Linear``, ``Conv1d``/``Conv2d``, ``BatchNorm1d``/``2d`` in eval mode, ``Flatten`` and
  reshapes, ``AvgPool2d``/``AdaptiveAvgPool2d``, and the target's declared input normalisation. Bounds pass
  through them exactly (intervals through ``|W|``, linear bounds through ``W^T``).
* :class:`Relu` and :class:`MaxPool` — the nonlinear layers, each with its interval map and (in
  :mod:`aisec.certify.bounds.crown`) its linear relaxation.

A layer of any other kind is a :class:`~aisec.core.errors.CapabilityError` that names the layer and its
type. ``Dropout`` and ``Identity`` are skipped (eval mode); a final ``Softmax``/``LogSoftmax`` of a model
that outputs probabilities is dropped, because the margins of log-probabilities equal the margins of
the logits before it.
"""

from __future__ import annotations

import operator
from collections.abc import Callable
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import fx, nn

from aisec.core.errors import CapabilityError
from aisec.core.target import Normalization, Target
from aisec.core.types import OutputKind

SUPPORTED = ("Linear, Conv1d, Conv2d, ReLU, BatchNorm1d/2d (eval), Flatten/reshape, AvgPool2d, "
             "AdaptiveAvgPool2d, MaxPool2d, Dropout/Identity")
"""The layer kinds the bounds understand, for error messages and the docs."""


class Op:
    """One layer of the chain: its interval map and its name in the model (for messages)."""

    name: str

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def interval(self, lo: torch.Tensor, hi: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Elementwise bounds of the output given elementwise bounds ``lo <= x <= hi`` of the input."""
        raise NotImplementedError


class Affine(Op):
    """``x -> W x + b`` for some linear ``W``: ``fn`` applies it, ``abs_fn`` applies ``|W|`` without ``b``."""

    def __init__(self, name: str, fn: Callable[[torch.Tensor], torch.Tensor],
                 abs_fn: Callable[[torch.Tensor], torch.Tensor], weight: Callable[[], torch.Tensor] | None = None,
                 transpose: Callable[[torch.Tensor, tuple[int, ...]], torch.Tensor] | None = None):
        self.name = name
        self.fn = fn
        self.abs_fn = abs_fn
        self.weight = weight
        """For a ``Linear`` layer the matrix itself (the backward pass is then a matmul, not autograd)."""
        self.transpose = transpose
        """For a convolution: ``W^T`` applied to a batch, given the input shape (a transposed convolution)."""
        self.in_shape: tuple[int, ...] = ()
        self.out_shape: tuple[int, ...] = ()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fn(x)

    def interval(self, lo: torch.Tensor, hi: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        mid = self.fn((lo + hi) / 2)
        rad = self.abs_fn((hi - lo) / 2)
        return mid - rad, mid + rad

    def offset(self, like: torch.Tensor) -> torch.Tensor:
        """``b``: the layer's output at 0, shape ``(1, *out_shape)``."""
        return self.fn(torch.zeros((1, *self.in_shape), dtype=like.dtype, device=like.device))

    def backward(self, a: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``(A W, A b)`` for coefficients ``A`` of shape ``(B, S, *out_shape)`` on this layer's output."""
        b, s = a.shape[:2]
        bias = a.flatten(2) @ self.offset(a).flatten()
        if self.weight is not None:
            return a @ self.weight(), bias
        if self.transpose is not None:
            back = self.transpose(a.reshape(b * s, *self.out_shape), self.in_shape)
            return back.reshape(b, s, *self.in_shape), bias
        # W^T A by autograd: the gradient of <A, W z + b> with respect to z does not depend on z.
        keep = torch.is_grad_enabled()  # training through the bound: keep the graph to the weights
        with torch.enable_grad():
            z = torch.zeros((b * s, *self.in_shape), dtype=a.dtype, device=a.device, requires_grad=True)
            (g,) = torch.autograd.grad(self.fn(z), z, a.reshape(b * s, *self.out_shape), create_graph=keep)
        return g.reshape(b, s, *self.in_shape), bias


class Relu(Op):
    """``max(x, 0)``."""

    def __init__(self, name: str) -> None:
        self.name = name

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.relu(x)

    def interval(self, lo: torch.Tensor, hi: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return F.relu(lo), F.relu(hi)


class MaxPool(Op):
    """``MaxPool2d``: monotone, so its interval map is the pool of each end."""

    def __init__(self, name: str, module: nn.MaxPool2d) -> None:
        self.name = name
        self.module = module
        self.in_shape: tuple[int, ...] = ()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out: torch.Tensor = self.module(x)
        return out

    def interval(self, lo: torch.Tensor, hi: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return self.forward(lo), self.forward(hi)


@dataclass
class Network:
    """The chain of :class:`Op` a model reads as, with the per-sample input shape of each (``shapes[i]`` is
    the input of ``ops[i]``; ``shapes[-1]`` the logits)."""

    ops: list[Op]
    shapes: list[tuple[int, ...]]
    name: str = "model"

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for op in self.ops:
            x = op.forward(x)
        return x

    @property
    def num_outputs(self) -> int:
        return self.shapes[-1][0]


def _unsupported(name: str, what: str, hint: str = "") -> CapabilityError:
    return CapabilityError(
        f"IBP/CROWN bounds cannot pass layer '{name}' ({what}); they support {SUPPORTED}.{hint}")


def _linear(name: str, m: nn.Linear) -> Affine:
    return Affine(name, m, lambda r: F.linear(r, m.weight.abs()), weight=lambda: m.weight)


def _conv(name: str, m: nn.Conv1d | nn.Conv2d) -> Affine:
    if m.padding_mode != "zeros":
        raise _unsupported(name, f"{type(m).__name__} with padding_mode='{m.padding_mode}'")
    conv: Callable[..., torch.Tensor] = F.conv1d if isinstance(m, nn.Conv1d) else F.conv2d

    def abs_fn(r: torch.Tensor) -> torch.Tensor:
        return conv(r, m.weight.abs(), None, m.stride, m.padding, m.dilation, m.groups)

    if isinstance(m, nn.Conv1d):
        return Affine(name, m, abs_fn)

    def transpose(a: torch.Tensor, in_shape: tuple[int, ...]) -> torch.Tensor:
        out = a.shape[-2:]
        extra = tuple(int(in_shape[1 + d] - ((out[d] - 1) * m.stride[d] - 2 * int(m.padding[d])
                                              + m.dilation[d] * (m.kernel_size[d] - 1) + 1)) for d in range(2))
        return F.conv_transpose2d(a, m.weight, None, m.stride, m.padding, extra, m.groups, m.dilation)  # type: ignore[arg-type]

    return Affine(name, m, abs_fn, transpose=transpose if isinstance(m.padding, tuple) else None)


def _batchnorm(name: str, m: nn.BatchNorm1d | nn.BatchNorm2d) -> Affine:
    if m.training or m.running_mean is None or m.running_var is None:
        raise _unsupported(name, f"{type(m).__name__} without running statistics or in training mode",
                           " Put the model in eval mode with tracked running statistics.")
    mean, var = m.running_mean, m.running_var

    def scale() -> torch.Tensor:
        s = 1 / torch.sqrt(var + m.eps)
        return s * m.weight if m.weight is not None else s

    def shaped(v: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        return v.view((1, -1) + (1,) * (x.ndim - 2))

    def fn(x: torch.Tensor) -> torch.Tensor:
        out = (x - shaped(mean, x)) * shaped(scale(), x)
        return out + shaped(m.bias, x) if m.bias is not None else out

    return Affine(name, fn, lambda r: r * shaped(scale().abs(), r))


def _normalization(norm: Normalization, ndim: int, device: torch.device) -> Affine:
    shape = (1, -1) + (1,) * (ndim - 1)
    mean = torch.tensor(norm.mean, device=device).view(shape)
    std = torch.tensor(norm.std, device=device).view(shape)
    return Affine("input normalisation", lambda x: (x - mean) / std, lambda r: r / std)


def _flatten(name: str, start_dim: int = 1, end_dim: int = -1) -> Affine:
    if start_dim != 1:
        raise _unsupported(name, f"flatten from dimension {start_dim}", " Flatten from dimension 1 (keep the batch).")

    def fn(x: torch.Tensor) -> torch.Tensor:
        return torch.flatten(x, start_dim, end_dim)

    return Affine(name, fn, fn)


def _leaf(name: str, m: nn.Module) -> list[Op]:
    """The op of one ``torch.nn`` layer (empty for a layer that does nothing in eval mode)."""
    if isinstance(m, nn.Linear):
        return [_linear(name, m)]
    if isinstance(m, nn.Conv1d | nn.Conv2d):
        return [_conv(name, m)]
    if isinstance(m, nn.ReLU):
        return [Relu(name)]
    if isinstance(m, nn.BatchNorm1d | nn.BatchNorm2d):
        return [_batchnorm(name, m)]
    if isinstance(m, nn.Flatten):
        return [_flatten(name, m.start_dim, m.end_dim)]
    if isinstance(m, nn.AvgPool2d | nn.AdaptiveAvgPool2d):  # nonnegative weights: |W| = W
        return [Affine(name, m, m)]
    if isinstance(m, nn.MaxPool2d):
        return [MaxPool(name, m)]
    if isinstance(m, nn.Dropout | nn.Identity):
        return []
    raise _unsupported(name, f"{type(m).__module__}.{type(m).__name__}")


_OUTPUT_MAPS = (nn.Softmax, nn.LogSoftmax)
_RELU_FUNCTIONS = {torch.relu, F.relu}
_FLATTEN_FUNCTIONS = {torch.flatten}
_SHAPE_HELPERS: set[object] = {getattr, operator.getitem, "size", "dim"}


def _layers(module: nn.Module, name: str) -> list[tuple[str, nn.Module]]:
    """The leaf layers of ``module`` in order, with their qualified names."""
    if isinstance(module, nn.Sequential):
        out: list[tuple[str, nn.Module]] = []
        for child_name, child in module.named_children():
            out += _layers(child, f"{name}.{child_name}" if name else child_name)
        return out
    if type(module).__module__.startswith("torch.nn"):
        return [(name or type(module).__name__, module)]
    return _traced(module, name)


def _traced(module: nn.Module, name: str) -> list[tuple[str, nn.Module]]:
    """The layers of a custom module whose ``forward`` is a plain chain, read from its ``torch.fx`` graph."""
    label = name or type(module).__name__
    try:
        graph = fx.symbolic_trace(module).graph
    except Exception as exc:  # fx raises many kinds on data-dependent control flow
        raise CapabilityError(
            f"IBP/CROWN bounds cannot read '{label}' ({type(module).__name__}) as a chain of layers: torch.fx "
            f"could not trace its forward ({type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}). "
            "Give the model as an nn.Sequential.") from exc
    out: list[tuple[str, nn.Module]] = []
    current: fx.Node | None = None
    for node in graph.nodes:
        qual = f"{name}.{node.target}" if name and isinstance(node.target, str) else str(node.target)
        if node.op == "placeholder":
            if current is not None:
                raise _unsupported(label, "a forward with more than one input")
            current = node
            continue
        if node.op == "get_attr":
            raise _unsupported(qual, "a parameter used directly in forward")
        if node.op == "output":
            if node.args[0] is not current:
                raise _unsupported(label, "a forward whose output is not its last layer's")
            continue
        if node.target in _SHAPE_HELPERS and not (node.target is operator.getitem and node.args[0] is current):
            continue  # x.shape, x.size(0), x.shape[0]: arguments of a reshape (but x[...] slices the tensor)
        if not node.args or node.args[0] is not current:
            raise _unsupported(qual, "a layer that does not take the previous layer's output: the network is not "
                                     "a chain (skip connections and branches are not supported)")
        if node.op == "call_module":
            sub = str(node.target)
            out += _layers(module.get_submodule(sub), f"{name}.{sub}" if name else sub)
        elif node.target in _RELU_FUNCTIONS or node.target == "relu":
            out.append((qual, nn.ReLU()))
        elif node.target in _FLATTEN_FUNCTIONS or node.target == "flatten":
            start = node.args[1] if len(node.args) > 1 else node.kwargs.get("start_dim", 0)
            end = node.args[2] if len(node.args) > 2 else node.kwargs.get("end_dim", -1)
            out.append((qual, nn.Flatten(int(start), int(end))))
        elif node.target in ("view", "reshape") and len(node.args) == 3 and node.args[2] == -1:
            out.append((qual, nn.Flatten()))  # x.view(x.shape[0], -1); checked against the model's logits
        else:
            raise _unsupported(qual, f"{node.op} {getattr(node.target, '__name__', node.target)}")
        current = node
    return out


def read_module(module: nn.Module, input_shape: tuple[int, ...], *, normalization: Normalization | None = None,
                outputs_probabilities: bool = False, name: str | None = None) -> Network:
    """``module`` (in eval mode) as a :class:`Network`; a :class:`CapabilityError` naming the first layer the
    bounds cannot pass. The ops use the module's live parameters, so bounds are differentiable (IBP training)."""
    label = name or type(module).__name__
    layers = _layers(module, "")
    if layers and isinstance(layers[-1][1], _OUTPUT_MAPS):
        if not outputs_probabilities and isinstance(layers[-1][1], nn.Softmax):
            raise _unsupported(layers[-1][0], "a final Softmax of a model declared to output logits",
                               " Declare output='probabilities' or drop the softmax.")
        layers = layers[:-1]  # log-probability margins are logit margins
    elif outputs_probabilities:
        raise CapabilityError(f"model '{label}' outputs probabilities but its last layer is not a Softmax, so the "
                              "logits the bounds need are not visible; give the model without its output map")
    first = next(iter(module.parameters()), None)
    device = first.device if first is not None else torch.device("cpu")
    dtype = first.dtype if first is not None else torch.float32
    ops: list[Op] = [_normalization(normalization, len(input_shape), device)] if normalization else []
    for layer_name, layer in layers:
        ops += _leaf(layer_name, layer)
    shapes = [tuple(input_shape)]
    x = torch.zeros((2, *input_shape), device=device, dtype=dtype)
    with torch.no_grad():
        for op in ops:
            try:
                y = op.forward(x)
            except RuntimeError as exc:
                raise CapabilityError(f"layer '{op.name}' of '{label}' failed on its input of per-sample shape "
                                      f"{tuple(x.shape[1:])}: {str(exc).splitlines()[0]}") from exc
            if isinstance(op, Affine | MaxPool):
                op.in_shape = tuple(x.shape[1:])
            if isinstance(op, Affine):
                op.out_shape = tuple(y.shape[1:])
            x = y
            shapes.append(tuple(x.shape[1:]))
    if len(shapes[-1]) != 1:
        raise CapabilityError(f"model '{label}' read as a chain of layers ends in per-sample shape {shapes[-1]}, "
                              "not a vector of logits")
    return Network(ops, shapes, label)


def read_network(target: Target) -> Network:
    """The network of a white-box PyTorch target (:class:`~aisec.targets.torch.TorchTarget`), its declared
    input normalisation first."""
    module = getattr(target, "module", None)
    if not isinstance(module, nn.Module):
        raise CapabilityError(
            f"IBP/CROWN bounds need the layers of the network; target '{target.spec.name}' "
            f"({type(target).__name__}) does not expose a PyTorch module. Load it as a PyTorch model, or use "
            "the 'smoothing' certifier.")
    return read_module(module, target.spec.input_shape, normalization=target.spec.normalization,
                       outputs_probabilities=target.spec.output is OutputKind.PROBABILITIES, name=target.spec.name)


__all__ = ["SUPPORTED", "Affine", "MaxPool", "Network", "Op", "Relu", "read_module", "read_network"]
