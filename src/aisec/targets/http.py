"""HTTP black-box targets: a plain JSON endpoint or the Open Inference Protocol v2.

Open Inference Protocol v2 (KServe, Triton, MLServer): ``POST {url}/v2/models/{model}/infer`` with
``{"inputs": [{"name", "shape", "datatype", "data"}]}``; the reply's ``outputs[k]`` holds
``shape`` and flat ``data``. A plain JSON endpoint takes a request template in which the string
``"{{inputs}}"`` is replaced by the batch as nested lists, and a dotted ``response_path``
(``"predictions"``, ``"outputs.0.data"``) that leads to an ``(N, K)`` array of scores.

Label-only endpoints (``output="labels"``) reply with one predicted class per sample instead: the
json protocol's ``response_path`` leads to ``N`` class indices or class-name strings (mapped through
``class_names``), the v2 protocol's output tensor holds ``N`` integers (datatype ``INT*``/``UINT*``).
Such a target offers :attr:`~aisec.core.types.Capability.LABELS_ONLY`, never probabilities;
``predict`` returns one-hot rows, which carry the label (``argmax``) and are *not* probabilities —
only decision-based attacks (HopSkipJump, Boundary) and label-only membership attacks may use them.

Every query is counted *before* it is sent, against a hard ``query_budget`` — each attempt,
retries included, since a server counts what it receives. Timeouts and 5xx/429 replies are
retried with exponential backoff; ``rate_limit`` caps requests per second; ``max_batch`` splits
big batches into requests. ``timeout`` bounds each network read and ``deadline`` (default: the
timeout) the whole request, so an endpoint that sends a byte a second cannot stall a run. Replies
are at most ``max_response_bytes`` long and nested at most :data:`~aisec.core.safety.MAX_DEPTH`
levels; "probabilities" must lie in [0, 1] and sum to 1 per row (``output="logits"`` otherwise).
Each request is appended to a JSONL log (time, samples, status,
latency, input digest, scores). A hostile endpoint gets a clear :class:`EndpointError` (or
:class:`~aisec.core.errors.OutputError`/:class:`~aisec.core.errors.ShapeError` for malformed
replies), carrying in ``.partial`` the scores of the requests that succeeded before it; those are
also in the log.

>>> target = HttpTarget("http://127.0.0.1:8080", protocol="v2", model="digits",
...                     input_shape=(1, 8, 8), num_classes=10, query_budget=10_000)
"""

from __future__ import annotations

import hashlib
import json
import threading
import time
from pathlib import Path
from typing import Any, Literal

import httpx
import numpy as np
import torch

from aisec.core.errors import CapabilityError, ConfigError, OutputError, ShapeError, TargetError
from aisec.core.safety import MAX_DEPTH, check_depth
from aisec.core.target import TargetSpec
from aisec.core.types import Access, Capability, Modality, OutputKind
from aisec.targets.budget import QueryMeter

PLACEHOLDER = "{{inputs}}"
_RETRY_STATUS = {429, 500, 502, 503, 504}


class EndpointError(TargetError):
    """The endpoint failed (timeouts, connection errors, HTTP errors) after the allowed retries.

    ``partial`` holds the scores ``(M, K)`` of the requests in the failing call that succeeded
    before the failure (``M`` may be 0).
    """

    def __init__(self, message: str, *, partial: torch.Tensor | None = None, status: int | None = None) -> None:
        super().__init__(message)
        self.partial = partial
        self.status = status


class HttpTarget:
    """A classifier behind an HTTP endpoint, as a black-box target.

    Args:
        url: base URL (v2) or the full endpoint URL (json).
        protocol: ``"v2"`` (Open Inference Protocol) or ``"json"``.
        model: v2 model name. ``input_name``/``output_name``: v2 tensor names (default: first output).
        request_template: json protocol body, e.g. ``{"instances": "{{inputs}}"}`` (the default).
        response_path: json protocol, dotted path to the scores, e.g. ``"predictions"``.
        output: whether the endpoint returns ``probabilities``, ``logits`` (softmax applied here) or
            ``labels`` (one class per sample: indices, or names listed in ``class_names``).
        timeout: seconds per network read; ``deadline``: seconds for a whole request (default:
            ``timeout``); ``retries`` extra attempts with ``backoff * 2**k`` s waits.
        rate_limit: requests per second at most. ``max_batch``: samples per request.
        max_response_bytes: replies larger than this are cut off with an :class:`OutputError`.
        log_path: JSONL file of every request. ``client``: an ``httpx.Client`` to use (tests).
    """

    def __init__(
        self,
        url: str,
        *,
        input_shape: tuple[int, ...],
        num_classes: int,
        protocol: Literal["v2", "json"] = "v2",
        model: str | None = None,
        input_name: str = "input-0",
        output_name: str | None = None,
        request_template: Any = None,
        response_path: str = "predictions",
        output: OutputKind | str = OutputKind.PROBABILITIES,
        name: str | None = None,
        modality: Modality = Modality.IMAGE,
        class_names: tuple[str, ...] | list[str] | None = None,
        value_range: tuple[float, float] = (0.0, 1.0),
        query_budget: int | None = None,
        timeout: float = 10.0,
        deadline: float | None = None,
        retries: int = 2,
        backoff: float = 0.2,
        rate_limit: float | None = None,
        max_batch: int = 256,
        max_response_bytes: int = 16 * 2**20,
        headers: dict[str, str] | None = None,
        log_path: str | Path | None = None,
        client: httpx.Client | None = None,
    ) -> None:
        if protocol not in ("v2", "json"):
            raise ConfigError(f"protocol must be 'v2' or 'json', got {protocol!r}")
        if protocol == "v2" and not model:
            raise ConfigError("the v2 protocol needs the model name (model=...)")
        if not url.startswith(("http://", "https://")):
            raise ConfigError(f"endpoint URL must start with http:// or https://, got {url!r}")
        _check_numbers(timeout=timeout, deadline=deadline, retries=retries, backoff=backoff, rate_limit=rate_limit,
                       max_batch=max_batch, max_response_bytes=max_response_bytes)
        kind = OutputKind(output)
        self.protocol = protocol
        self.url = url.rstrip("/")
        self.endpoint = f"{self.url}/v2/models/{model}/infer" if protocol == "v2" else url
        self.model = model
        self.input_name = input_name
        self.output_name = output_name
        self.template = request_template if request_template is not None else {"instances": PLACEHOLDER}
        if protocol == "json" and PLACEHOLDER not in json.dumps(self.template):
            raise ConfigError(f"request_template must contain the string {PLACEHOLDER!r} where the inputs go")
        self.response_path = response_path
        self.kind = kind
        self.timeout = timeout
        self.deadline = float(deadline) if deadline is not None else float(timeout)
        self.retries = retries
        self.backoff = backoff
        self.rate_limit = rate_limit
        self.max_batch = max_batch
        self.max_response_bytes = max_response_bytes
        self.log_path = Path(log_path) if log_path is not None else None
        self._client = client or httpx.Client(timeout=timeout, headers=headers or {})
        self._owns_client = client is None
        self._lock = threading.Lock()
        self._last_request = 0.0
        self._meter = QueryMeter(name or self.endpoint, query_budget)
        caps = {Capability.LABELS_ONLY if kind is OutputKind.LABELS else Capability.PROBABILITIES}
        if query_budget is not None:
            caps.add(Capability.QUERY_BUDGET)
        self._spec = TargetSpec(
            name=name or self.endpoint,
            modality=modality,
            input_shape=tuple(input_shape),
            num_classes=num_classes,
            class_names=tuple(class_names) if class_names is not None else None,
            value_range=value_range,
            access=Access.BLACK,
            output=kind,
            capabilities=frozenset(caps),
            query_budget=query_budget,
            device="cpu",
            digest="",
        )
        self.requests = 0
        self.seconds = 0.0

    @property
    def spec(self) -> TargetSpec:
        return self._spec

    @property
    def queries(self) -> int:
        return self._meter.used

    def logits(self, x: torch.Tensor) -> torch.Tensor:
        offers = "predicted labels" if self.kind is OutputKind.LABELS else "probabilities"
        raise CapabilityError(f"target '{self._spec.name}' is an HTTP black box: it offers {offers} only")

    def close(self) -> None:
        if self._owns_client:
            self._client.close()

    def __enter__(self) -> HttpTarget:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def predict(self, x: torch.Tensor) -> torch.Tensor:
        """Probabilities ``(N, K)``; for a label-only endpoint one-hot rows of the predicted labels
        (a carrier of the label for ``argmax``, not a probability)."""
        arr = x.detach().cpu().float().numpy()
        n = arr.shape[0]
        if tuple(arr.shape[1:]) != self._spec.input_shape:
            raise ShapeError(f"input has per-sample shape {arr.shape[1:]}; endpoint expects {self._spec.input_shape}")
        done: list[np.ndarray] = []
        for i in range(0, n, self.max_batch):
            chunk = arr[i : i + self.max_batch]
            try:
                done.append(self._request(chunk))
            except (EndpointError, OutputError, ShapeError) as exc:
                k = self._spec.num_classes
                part = torch.from_numpy(np.concatenate(done)) if done else torch.zeros(0, k)
                exc.partial = part  # type: ignore[union-attr]
                raise
        z = torch.from_numpy(np.concatenate(done)) if done else torch.zeros(0, self._spec.num_classes)
        return torch.softmax(z, dim=1) if self.kind is OutputKind.LOGITS else z

    # -- one request ---------------------------------------------------------------------------

    def _body(self, chunk: np.ndarray) -> dict[str, Any] | Any:
        if self.protocol == "v2":
            return {
                "inputs": [
                    {"name": self.input_name, "shape": list(chunk.shape), "datatype": "FP32",
                     "data": chunk.reshape(-1).tolist()}
                ]
            }
        return _fill(self.template, chunk.tolist())

    def _request(self, chunk: np.ndarray) -> np.ndarray:
        n = chunk.shape[0]
        body = json.dumps(self._body(chunk)).encode()
        digest = hashlib.sha256(chunk.tobytes()).hexdigest()[:16]
        last: str = ""
        status: int | None = None
        for attempt in range(self.retries + 1):
            self._meter.charge(n)  # raises BudgetExceeded before anything is sent
            self._throttle()
            t0 = time.perf_counter()
            try:
                status, raw = self._post(body)
            except httpx.TimeoutException as exc:
                late = isinstance(exc, _DeadlineExceeded)
                last, status = str(exc) if late else f"timed out after {self.timeout:g} s", None
            except httpx.TransportError as exc:
                last, status = f"connection failed: {type(exc).__name__}: {exc}", None
            else:
                dt = time.perf_counter() - t0
                self.seconds += dt
                if status < 400:
                    scores = self._parse(raw, n)
                    self._log(n, attempt, status, dt, digest, scores=scores)
                    return scores
                last = f"HTTP {status}: {raw[:200].decode(errors='replace')}"
                if status not in _RETRY_STATUS:
                    self._log(n, attempt, status, dt, digest, error=last)
                    raise EndpointError(f"endpoint {self.endpoint} refused the request: {last}", status=status)
            self._log(n, attempt, status, time.perf_counter() - t0, digest, error=last)
            if attempt < self.retries:
                time.sleep(self.backoff * 2**attempt)
        raise EndpointError(
            f"endpoint {self.endpoint} failed {self.retries + 1} times; last error: {last}", status=status
        )

    def _post(self, body: bytes) -> tuple[int, bytes]:
        """One POST that ends within ``deadline`` seconds, however slowly the endpoint sends.

        The request runs in a worker thread; at the deadline the caller gets a timeout while the
        worker stops at its next read (it checks the deadline between chunks, and every read is
        bounded by ``timeout``).
        """
        stop = time.monotonic() + self.deadline
        box: dict[str, Any] = {}

        def work() -> None:
            try:
                box["value"] = self._post_stream(body, stop)
            except BaseException as exc:  # handed to the caller's thread
                box["error"] = exc

        worker = threading.Thread(target=work, name="aisec-http", daemon=True)
        worker.start()
        worker.join(self.deadline + 0.05)
        if worker.is_alive():
            raise _DeadlineExceeded(f"no complete reply within the deadline of {self.deadline:g} s")
        if "error" in box:
            raise box["error"]
        value: tuple[int, bytes] = box["value"]
        return value

    def _post_stream(self, body: bytes, stop: float) -> tuple[int, bytes]:
        headers = {"content-type": "application/json"}
        with self._client.stream("POST", self.endpoint, content=body, headers=headers, timeout=self.timeout) as r:
            declared = r.headers.get("content-length")
            if declared is not None and declared.isdigit() and int(declared) > self.max_response_bytes:
                raise OutputError(
                    f"endpoint {self.endpoint} sent a {int(declared)}-byte reply; the limit is "
                    f"{self.max_response_bytes} bytes (max_response_bytes)"
                )
            buf = bytearray()
            for part in r.iter_bytes():
                buf.extend(part)
                if time.monotonic() > stop:
                    raise _DeadlineExceeded(f"no complete reply within the deadline of {self.deadline:g} s")
                if len(buf) > self.max_response_bytes:
                    raise OutputError(
                        f"endpoint {self.endpoint} sent more than {self.max_response_bytes} bytes; "
                        "reply cut off (raise max_response_bytes if this is expected)"
                    )
            return r.status_code, bytes(buf)

    def _parse(self, raw: bytes, n: int) -> np.ndarray:
        try:
            doc = json.loads(raw)
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise OutputError(f"endpoint {self.endpoint} did not return JSON ({exc}): {raw[:120]!r}") from exc
        except RecursionError as exc:
            doc = exc
        if isinstance(doc, RecursionError) or not check_depth(doc):
            raise OutputError(f"endpoint {self.endpoint} returned JSON nested deeper than {MAX_DEPTH} levels; "
                              f"a reply holds a few levels of scores. Reply starts {raw[:60]!r}")
        k = self._spec.num_classes
        if self.kind is OutputKind.LABELS:
            return self._parse_labels(doc, raw, n)
        try:
            if self.protocol == "v2":
                outs = doc["outputs"]
                out = next(o for o in outs if o.get("name") == self.output_name) if self.output_name else outs[0]
                arr = np.asarray(out["data"], dtype=np.float32).reshape(out.get("shape", (n, k)))
            else:
                arr = np.asarray(_walk(doc, self.response_path), dtype=np.float32)
        except (KeyError, IndexError, TypeError, StopIteration, ValueError) as exc:
            raise OutputError(
                f"endpoint {self.endpoint} returned JSON without the expected scores "
                f"({type(exc).__name__}: {exc}); reply starts {raw[:120]!r}"
            ) from exc
        if arr.shape != (n, k):
            raise ShapeError(f"endpoint {self.endpoint} returned scores of shape {arr.shape}; expected ({n}, {k})")
        if not np.isfinite(arr).all():
            raise OutputError(f"endpoint {self.endpoint} returned NaN/inf scores")
        if self.kind is OutputKind.PROBABILITIES and arr.size:
            lo, hi = float(arr.min()), float(arr.max())
            worst = float(np.abs(arr.sum(1) - 1).max())
            if lo < -_PROB_TOL or hi > 1 + _PROB_TOL or worst > _SUM_TOL:
                raise OutputError(
                    f"endpoint {self.endpoint} returned 'probabilities' in [{lo:.4g}, {hi:.4g}] with rows summing "
                    f"up to {worst:.3g} away from 1; probabilities lie in [0, 1] and sum to 1. If the endpoint "
                    "returns raw scores, pass --output-kind logits (output='logits')"
                )
        return arr

    def _parse_labels(self, doc: Any, raw: bytes, n: int) -> np.ndarray:
        """One-hot ``(n, K)`` rows from a label-only reply, after checking every label: an integer
        (not a float, not a bool) in ``[0, K)`` or a name from ``class_names``, exactly ``n`` of them."""
        try:
            if self.protocol == "v2":
                outs = doc["outputs"]
                out = next(o for o in outs if o.get("name") == self.output_name) if self.output_name else outs[0]
                dtype = str(out.get("datatype", "INT64")).upper()
                values = out["data"]
                shape = [int(s) for s in out.get("shape", [n])]
            else:
                values = _walk(doc, self.response_path)
        except (KeyError, IndexError, TypeError, StopIteration, ValueError) as exc:
            raise OutputError(
                f"endpoint {self.endpoint} returned JSON without the expected labels "
                f"({type(exc).__name__}: {exc}); reply starts {raw[:120]!r}"
            ) from exc
        if self.protocol == "v2":
            if not dtype.startswith(("INT", "UINT", "BYTES")):
                raise OutputError(
                    f"endpoint {self.endpoint} returned a {dtype} tensor where labels (INT*/UINT*, or BYTES "
                    "class names) were expected; if it returns scores, drop output='labels'"
                )
            if shape not in ([n], [n, 1]):
                raise ShapeError(f"endpoint {self.endpoint} returned a label tensor of shape {shape}; expected [{n}]")
        if not isinstance(values, list):
            raise OutputError(f"endpoint {self.endpoint} returned {type(values).__name__} where a list of "
                              f"{n} labels was expected")
        values = [v[0] if isinstance(v, list) and len(v) == 1 else v for v in values]  # (n, 1) -> (n,)
        if len(values) != n:
            raise ShapeError(f"endpoint {self.endpoint} returned {len(values)} labels for {n} samples")
        k = self._spec.num_classes
        names = {c: i for i, c in enumerate(self._spec.class_names or ())}
        labels = np.empty(n, dtype=np.int64)
        for i, v in enumerate(values):
            if isinstance(v, str):
                if v not in names:
                    known = ", ".join(repr(c) for c in list(names)[:10]) or "none (give class_names=...)"
                    raise OutputError(
                        f"endpoint {self.endpoint} returned the label {v!r} for sample {i}, which is not a "
                        f"known class name; known: {known}"
                    )
                labels[i] = names[v]
            elif isinstance(v, int) and not isinstance(v, bool):
                if not 0 <= v < k:
                    raise OutputError(
                        f"endpoint {self.endpoint} returned the label {v} for sample {i}; labels must lie in "
                        f"[0, {k}) for {k} classes"
                    )
                labels[i] = v
            else:
                raise OutputError(
                    f"endpoint {self.endpoint} returned {v!r} ({type(v).__name__}) for sample {i}; a label-only "
                    "endpoint must return integer class indices or class-name strings"
                )
        onehot = np.zeros((n, k), dtype=np.float32)
        onehot[np.arange(n), labels] = 1.0
        return onehot

    def _throttle(self) -> None:
        if not self.rate_limit:
            return
        with self._lock:
            wait = self._last_request + 1.0 / self.rate_limit - time.monotonic()
            if wait > 0:
                time.sleep(wait)
            self._last_request = time.monotonic()

    def _log(self, n: int, attempt: int, status: int | None, dt: float, digest: str, *,
             scores: np.ndarray | None = None, error: str | None = None) -> None:
        self.requests += 1
        if self.log_path is None:
            return
        rec: dict[str, Any] = {
            "time": time.time(), "endpoint": self.endpoint, "samples": n, "attempt": attempt,
            "status": status, "latency_ms": round(dt * 1000, 3), "inputs_sha256": digest,
            "queries_total": self._meter.used,
        }
        if scores is not None and self.kind is OutputKind.LABELS:
            rec["labels"] = scores.argmax(1).tolist()
        elif scores is not None:
            rec["scores"] = np.round(scores, 6).tolist()
        if error is not None:
            rec["error"] = error
        with self.log_path.open("a", encoding="utf-8") as fh:
            fh.write(json.dumps(rec) + "\n")


_PROB_TOL = 1e-4
_SUM_TOL = 1e-2


class _DeadlineExceeded(httpx.TimeoutException):
    """The whole request took longer than the target's ``deadline``."""

    def __init__(self, message: str) -> None:
        super().__init__(message)


def _check_numbers(**values: float | int | None) -> None:
    """Refuse nonsense endpoint options: a zero timeout, negative retries, NaN rate limits ..."""
    import math

    positive = {"timeout", "deadline", "rate_limit", "max_batch", "max_response_bytes"}
    for key, v in values.items():
        if v is None:
            continue
        ok = isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v) and (
            v > 0 if key in positive else v >= 0)
        if ok and key in ("retries", "max_batch", "max_response_bytes"):
            ok = float(v).is_integer()
        if not ok:
            want = "> 0" if key in positive else "≥ 0"
            raise ConfigError(f"HTTP target option {key} must be a finite number {want}, got {v!r}")


def _fill(template: Any, inputs: Any) -> Any:
    if template == PLACEHOLDER:
        return inputs
    if isinstance(template, dict):
        return {k: _fill(v, inputs) for k, v in template.items()}
    if isinstance(template, list):
        return [_fill(v, inputs) for v in template]
    return template


def _walk(doc: Any, path: str) -> Any:
    cur = doc
    for part in path.split(".") if path else []:
        cur = cur[int(part)] if isinstance(cur, list) else cur[part]
    return cur
