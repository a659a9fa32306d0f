"""ONNX targets: a model file run by onnxruntime, grey box (scores, no gradients) or black box.

Loading an ONNX file runs no Python from it: the graph holds only ONNX operators. The target
counts queries and, with ``query_budget``, refuses a batch that would exceed it before running it.
Graphs with a fixed batch dimension are fed in chunks of that size.

Graphs with several outputs, as sklearn-onnx classifiers export them (``label`` first, then
``probabilities``, a float tensor or a ZipMap sequence of ``{class: p}`` maps): the score output is
used, so the target offers probabilities and score-based attacks run (:func:`_pick_output`).
Label-only graphs (``output="labels"``, or detected when the only outputs are integer tensors): the
first integer output is read as one class per sample; the target offers
:attr:`~aisec.core.types.Capability.LABELS_ONLY` and ``predict`` returns one-hot rows — a carrier of
the label for ``argmax``, not probabilities.

>>> target = OnnxTarget("digits.onnx", input_shape=(1, 8, 8), num_classes=10)
>>> target.predict(x).shape
torch.Size([N, 10])
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch

from aisec.core.errors import CapabilityError, ConfigError, OutputError, ShapeError, TargetError
from aisec.core.evidence import file_sha256
from aisec.core.target import Normalization, TargetSpec
from aisec.core.types import Access, Capability, Modality, OutputKind
from aisec.targets.budget import QueryMeter

_NP_DTYPES = {
    "tensor(float)": np.float32,
    "tensor(double)": np.float64,
    "tensor(float16)": np.float16,
    "tensor(int64)": np.int64,
    "tensor(int32)": np.int32,
}


class OnnxTarget:
    """An ONNX classifier as a grey-box (default) or black-box target.

    Args:
        path: the ``.onnx`` file.
        input_shape: shape of one sample as aisec sees it (reshaped to the graph's input shape).
        num_classes: checked against the graph's output on first use.
        output: ``logits`` (softmax applied here), ``probabilities``, ``labels`` (an integer output
            of class indices), or ``None`` to detect it: a score output is preferred to a label output
            (a ``prob*``-named one or a ZipMap means probabilities, else the first batch decides:
            non-negative rows summing to one are probabilities); integer outputs alone mean labels.
        access: ``grey`` exposes logits (when the graph gives them); ``black`` only probabilities.
        normalization: mean/std applied before the graph, so attacks stay in the natural range.
        query_budget: hard cap on samples queried.
        threads: onnxruntime intra-op threads (default: onnxruntime's choice).
    """

    def __init__(
        self,
        path: str | Path,
        *,
        input_shape: tuple[int, ...],
        num_classes: int,
        name: str | None = None,
        modality: Modality = Modality.IMAGE,
        class_names: tuple[str, ...] | list[str] | None = None,
        value_range: tuple[float, float] = (0.0, 1.0),
        output: OutputKind | str | None = None,
        access: Access | str = Access.GREY,
        normalization: Normalization | dict[str, tuple[float, ...]] | None = None,
        query_budget: int | None = None,
        threads: int | None = None,
    ) -> None:
        try:
            import onnxruntime as ort
        except ImportError as exc:  # pragma: no cover - depends on the environment
            raise TargetError("ONNX models need onnxruntime: pip install 'aisec[onnx]'") from exc
        p = Path(path)
        if not p.is_file():
            raise TargetError(f"ONNX file not found: {p}")
        opts = ort.SessionOptions()
        if threads is not None:
            opts.intra_op_num_threads = threads
            opts.inter_op_num_threads = 1
        try:
            self._session = ort.InferenceSession(str(p), sess_options=opts, providers=["CPUExecutionProvider"])
        except Exception as exc:  # onnxruntime raises its own (non-aisec) exception types
            raise TargetError(f"cannot load ONNX model {p}: {exc}") from exc
        inputs = self._session.get_inputs()
        if len(inputs) != 1:
            raise TargetError(f"ONNX model {p.name} has {len(inputs)} inputs; aisec supports one")
        inp = inputs[0]
        self._input_name: str = inp.name
        self._dtype = _NP_DTYPES.get(inp.type)
        if self._dtype is None:
            raise TargetError(f"ONNX input '{inp.name}' has unsupported type {inp.type}")
        dims = list(inp.shape)
        self._fixed_batch = dims[0] if dims and isinstance(dims[0], int) and dims[0] > 0 else None
        self._graph_shape = tuple(d if isinstance(d, int) and d > 0 else -1 for d in dims[1:])
        if self._graph_shape.count(-1) > 1:  # numpy reshapes with one unknown size at most
            fits = len(self._graph_shape) == len(input_shape) and all(
                g in (-1, int(s)) for g, s in zip(self._graph_shape, input_shape, strict=True))
            if not fits:
                raise ShapeError(
                    f"ONNX model {p.name} takes samples of shape {tuple(dims[1:])} with several dynamic sizes, "
                    f"which input_shape {tuple(input_shape)} does not fill; give an input_shape of the same rank"
                )
            self._graph_shape = tuple(int(s) for s in input_shape)
        graph_size = int(np.prod([d for d in self._graph_shape if d > 0])) if self._graph_shape else 1
        if -1 not in self._graph_shape and graph_size != int(np.prod(input_shape)):
            raise ShapeError(
                f"ONNX model {p.name} takes samples of shape {self._graph_shape} but input_shape "
                f"{tuple(input_shape)} was declared"
            )
        outputs = self._session.get_outputs()
        acc = Access(access)
        self._kind = OutputKind(output) if output is not None else None
        self._output_name, self._zipmap, detected = _pick_output(p.name, outputs, self._kind)
        if self._kind is None:
            self._kind = detected
        norm = Normalization(**normalization) if isinstance(normalization, dict) else normalization
        self._norm = norm
        self._meter = QueryMeter(name or p.name, query_budget)
        self._args: dict[str, Any] = dict(
            name=name or p.name,
            modality=modality,
            input_shape=tuple(input_shape),
            num_classes=num_classes,
            class_names=tuple(class_names) if class_names is not None else None,
            value_range=value_range,
            access=acc,
            normalization=norm,
            query_budget=query_budget,
            device="cpu",
            digest=file_sha256(p),
        )
        self._spec = self._make_spec(self._kind or OutputKind.LOGITS)

    def _make_spec(self, kind: OutputKind) -> TargetSpec:
        caps = {Capability.LABELS_ONLY if kind is OutputKind.LABELS else Capability.PROBABILITIES}
        if kind is OutputKind.LOGITS and self._args["access"] is Access.GREY:
            caps.add(Capability.LOGITS)
        if self._args["query_budget"] is not None:
            caps.add(Capability.QUERY_BUDGET)
        return TargetSpec(output=kind, capabilities=frozenset(caps), **self._args)

    @property
    def spec(self) -> TargetSpec:
        return self._spec

    @property
    def queries(self) -> int:
        return self._meter.used

    def logits(self, x: torch.Tensor) -> torch.Tensor:
        offers = "predicted labels only" if self._kind is OutputKind.LABELS else "scores but no gradients"
        raise CapabilityError(
            f"target '{self._spec.name}' is an ONNX graph: it offers {offers} "
            "(use a black-box attack, or a transfer attack via the extraction check)"
        )

    def raw_scores(self, x: torch.Tensor) -> np.ndarray:
        """The graph's raw output ``(N, K)`` (logits or probabilities), counted as queries."""
        if self._kind is OutputKind.LABELS:
            raise CapabilityError(f"target '{self._spec.name}' is a label-only ONNX graph: it has no scores")
        n = int(x.shape[0])
        z = self._forward(x)
        k = self._spec.num_classes
        if z.ndim != 2 or z.shape[0] != n:
            raise OutputError(f"ONNX model '{self._spec.name}' returned shape {z.shape} for {n} samples")
        if z.shape[1] != k:
            raise ShapeError(f"ONNX model '{self._spec.name}' has {z.shape[1]} outputs but {k} classes were "
                             "declared (the data's, or --classes)")
        if not np.isfinite(z).all():
            raise OutputError(f"ONNX model '{self._spec.name}' produced NaN/inf outputs")
        return z.astype(np.float32, copy=False)

    def labels(self, x: torch.Tensor) -> torch.Tensor:
        """Predicted labels ``(N,)`` of a label-only graph, counted as queries and checked: integers
        in ``[0, num_classes)``, one per sample."""
        n = int(x.shape[0])
        z = self._forward(x)
        name, k = self._spec.name, self._spec.num_classes
        if z.ndim == 2 and z.shape[1] == 1:
            z = z[:, 0]
        if z.shape != (n,):
            raise ShapeError(f"ONNX model '{name}' returned labels of shape {z.shape} for {n} samples; expected ({n},)")
        if not np.issubdtype(z.dtype, np.integer):
            raise OutputError(f"ONNX model '{name}' returned {z.dtype} labels; a label output must be integer")
        if n and (int(z.min()) < 0 or int(z.max()) >= k):
            raise OutputError(
                f"ONNX model '{name}' returned labels in [{int(z.min())}, {int(z.max())}]; they must lie in "
                f"[0, {k}) for {k} declared classes"
            )
        return torch.from_numpy(z.astype(np.int64, copy=False))

    def _forward(self, x: torch.Tensor) -> np.ndarray:
        """The selected graph output for ``x``, charged to the query budget first."""
        n = int(x.shape[0])
        self._meter.charge(n)
        arr = x.detach().cpu().float()
        if self._norm is not None:
            shape = (1, -1) + (1,) * (arr.ndim - 2)
            arr = (arr - torch.tensor(self._norm.mean).view(shape)) / torch.tensor(self._norm.std).view(shape)
        a = arr.numpy().astype(self._dtype, copy=False).reshape((n, *self._graph_shape))
        step = self._fixed_batch or max(n, 1)
        outs = []
        for i in range(0, n, step):
            chunk = a[i : i + step]
            if self._fixed_batch and chunk.shape[0] < self._fixed_batch:
                pad = np.zeros((self._fixed_batch - chunk.shape[0], *chunk.shape[1:]), dtype=chunk.dtype)
                outs.append(self._run(np.concatenate([chunk, pad]))[: chunk.shape[0]])
            else:
                outs.append(self._run(chunk))
        if outs:
            return np.concatenate(outs)
        if self._kind is OutputKind.LABELS:
            return np.zeros((0,), np.int64)
        return np.zeros((0, self._spec.num_classes), np.float32)

    def _run(self, a: np.ndarray) -> np.ndarray:
        try:
            out = self._session.run([self._output_name], {self._input_name: a})[0]
        except Exception as exc:
            raise ShapeError(
                f"ONNX model '{self._spec.name}' failed on a batch of shape {a.shape}: {exc}"
            ) from exc
        if self._zipmap:
            return _unzip(self._spec.name, out, self._spec.num_classes)
        arr = np.asarray(out)
        if arr.ndim == 0:
            raise OutputError(f"ONNX model '{self._spec.name}' returned one number for a batch of {a.shape[0]} samples")
        return arr

    def predict(self, x: torch.Tensor) -> torch.Tensor:
        """Probabilities ``(N, K)``; for a label-only graph one-hot rows of the predicted labels
        (a carrier of the label for ``argmax``, not a probability)."""
        if self._kind is OutputKind.LABELS:
            lab = self.labels(x)
            return torch.nn.functional.one_hot(lab, self._spec.num_classes).float()
        z = torch.from_numpy(self.raw_scores(x))
        if self._kind is None and z.shape[0] > 0:
            is_prob = bool((z >= 0).all() and torch.allclose(z.sum(1), torch.ones(z.shape[0]), atol=1e-3))
            self._kind = OutputKind.PROBABILITIES if is_prob else OutputKind.LOGITS
            self._spec = self._make_spec(self._kind)
        if self._kind is OutputKind.PROBABILITIES:
            return z
        return torch.softmax(z, dim=1)


_INT_TYPES = ("tensor(int64)", "tensor(int32)")


def _pick_output(file: str, outputs: list[Any], kind: OutputKind | None) -> tuple[str, bool, OutputKind | None]:
    """The graph output to read, whether it is a ZipMap (``seq(map(...))``), and the kind it implies.

    Scores beat labels: sklearn-onnx puts the ``label`` output first and the probabilities second, and a
    target reading the labels would offer label-only attacks where score-based ones can run. ``kind``
    (given by the user) forces the choice; ``None`` detects it: a float tensor or ZipMap output is used
    (probabilities when it is a ZipMap or its name starts with ``prob``, else the first batch decides);
    integer outputs alone mean a label-only graph.
    """
    ints = [o for o in outputs if o.type in _INT_TYPES]
    scores = [o for o in outputs if o.type not in _INT_TYPES and (o.type.startswith("tensor(")
                                                                   or o.type.startswith("seq(map("))]
    if kind is OutputKind.LABELS or (kind is None and ints and not scores):
        if not ints:
            raise ConfigError(
                f"ONNX model {file} has no integer output to read labels from (outputs: "
                f"{', '.join(f'{o.name}: {o.type}' for o in outputs)}); drop output='labels' for scores"
            )
        return ints[0].name, False, OutputKind.LABELS
    if not scores:
        return outputs[0].name, False, None  # read and checked on the first batch (a clear shape error there)
    # a probability-named or (N, K)-shaped output first: sklearn's ``label`` is a float tensor for some models
    out = min(scores, key=lambda o: (not _prob_named(o.name), len(getattr(o, "shape", None) or ()) != 2))
    zipmap = out.type.startswith("seq(map(")
    if kind is None and (zipmap or _prob_named(out.name)):
        return out.name, zipmap, OutputKind.PROBABILITIES
    return out.name, zipmap, None


def _prob_named(name: str) -> bool:
    return name.lower().startswith(("prob", "output_prob"))


def _unzip(name: str, out: Any, k: int) -> np.ndarray:
    """A ZipMap output (one ``{class: probability}`` dict per sample) as an ``(N, K)`` array, classes in order."""
    rows = list(out)
    if not rows:
        return np.zeros((0, k), np.float32)
    keys = sorted(rows[0])
    if any(sorted(r) != keys for r in rows):
        raise OutputError(f"ONNX model '{name}' returned probability maps with different classes per sample")
    return np.asarray([[float(r[c]) for c in keys] for r in rows], dtype=np.float32)
