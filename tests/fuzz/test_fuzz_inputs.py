"""A corpus of hostile and broken inputs for ``aisec assess``: models, data, plans, policies, endpoints, flags.

Every case builds its bad file(s) in ``tmp_path`` and runs the CLI in-process. Each must end with the
promised exit code and one error line (no traceback), within the time limit, without running code
from the input (malicious payloads would create a marker file) and without a half-written report.
The tally (cases tried / clear error / traceback / hang / code executed / data lost) is printed at
the end of the run (``tests/fuzz/conftest.py``).
"""

from __future__ import annotations

import json
import os
import pickle
import struct
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from click.testing import CliRunner, Result

from aisec.cli.main import main

HANG_S = 60.0
pytestmark = [pytest.mark.filterwarnings("ignore::ResourceWarning"),
              pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning")]
MARKER = "PWNED"


# ------------------------------------------------------------------------------ payloads


class _Run:
    """Unpickling this runs a shell command that creates the marker file."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple[Any, ...]:
        return (os.system, (f"touch '{self.marker}'",))


def _png(path: Path, size: tuple[int, int] = (8, 8), mode: str = "L", value: int = 128) -> Path:
    from PIL import Image

    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new(mode, size, value).save(path)
    return path


def _folder(tmp: Path, rows: list[tuple[str, str]], *, images: bool = True, classes: list[str] | None = None) -> Path:
    root = tmp / "ds"
    (root / "images").mkdir(parents=True, exist_ok=True)
    for name, _ in rows:
        if images and "/" not in name and not name.startswith("/"):
            _png(root / "images" / name)
    (root / "labels.csv").write_text("filename,label\n" + "".join(f"{n},{lab}\n" for n, lab in rows))
    if classes is not None:
        (root / "classes.txt").write_text("\n".join(classes) + "\n")
    return root


def _ten(tmp: Path, **kw: Any) -> Path:
    return _folder(tmp, [(f"{i}.png", str(i)) for i in range(10)], **kw)


def _weights(tmp: Path) -> Path:
    from aisec.models.zoo import DigitsCNN

    p = tmp / "w.pt"
    torch.save(DigitsCNN().state_dict(), p)
    return p


def _shared_list(depth: int = 40) -> list[Any]:
    x: list[Any] = [1]
    for _ in range(depth):
        x = [x, x]
    return x


def _cifar(tmp: Path, batch: Any, meta: Any = None) -> Path:
    d = tmp / "cifar-10-batches-py"
    d.mkdir(parents=True, exist_ok=True)
    (d / "test_batch").write_bytes(batch if isinstance(batch, bytes) else pickle.dumps(batch, protocol=2))
    if meta is not None:
        (d / "batches.meta").write_bytes(pickle.dumps(meta, protocol=2))
    return d


def _good_batch(n: int = 4) -> dict[bytes, Any]:
    return {b"data": np.zeros((n, 3072), np.uint8), b"labels": list(range(n))}


def _onnx_two_dynamic(tmp: Path) -> Path:
    import onnx
    from onnx import TensorProto, helper

    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 1, "H", "W"])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", None])
    graph = helper.make_graph([helper.make_node("Flatten", ["x"], ["y"])], "g", [x], [y])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8
    p = tmp / "two-dynamic.onnx"
    onnx.save(model, p)
    return p


def _write(tmp: Path, name: str, text: str | bytes) -> Path:
    p = tmp / name
    p.parent.mkdir(parents=True, exist_ok=True)
    if isinstance(text, bytes):
        p.write_bytes(text)
    else:
        p.write_text(text)
    return p


def _plan(tmp: Path, text: str) -> list[str]:
    return ["--plan", str(_write(tmp, "plan.yaml", text))]


ALIAS_BOMB = "a: &a [x, x, x, x, x, x, x, x, x]\n" + "".join(
    f"{chr(98 + i)}: &{chr(98 + i)} [" + ", ".join([f"*{chr(97 + i)}"] * 9) + "]\n" for i in range(8)
)
PY_TAG = "!!python/object/apply:os.system"
PLAN_HEAD = "model: digits-cnn\ndata: digits\n"
DEEP_YAML = "[" * 5000 + "]" * 5000 + "\n"
GOOD_PLAN = "model: digits-cnn\ndata: digits\nchecks:\n  robustness: {attacks: [fgsm], eps: [0.1], samples: 2}\n"


def _policy(tmp: Path, text: str) -> list[str]:
    return ["-m", "digits-cnn", "-d", "digits", "-a", "fgsm", "--eps", "0.1", "-c", "2", "--clever-samples", "0",
            "--policy", str(_write(tmp, "policy.yaml", text))]


# ------------------------------------------------------------------------------ hostile endpoint


class _Hostile(BaseHTTPRequestHandler):
    def log_message(self, *args: Any) -> None:
        pass

    def _reply(self, body: bytes, status: int = 200, length: int | None = None) -> None:
        self.send_response(status)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(body) if length is None else length))
        self.end_headers()
        self.wfile.write(body)

    def do_POST(self) -> None:
        raw = self.rfile.read(int(self.headers.get("content-length", 0)))
        try:
            n = len(json.loads(raw)["instances"])
        except Exception:
            n = 1
        kind = self.path.strip("/")
        if kind == "deep":
            self._reply(b"[" * 100_000 + b"]" * 100_000)
        elif kind == "negative":
            self._reply(json.dumps({"predictions": [[-5.0] * 10] * n}).encode())
        elif kind == "huge-scores":
            self._reply(json.dumps({"predictions": [[1e30] * 10] * n}).encode())
        elif kind == "nan":
            self._reply(b'{"predictions": [' + b",".join([b"[NaN" + b", 0.1" * 9 + b"]"] * n) + b"]}")
        elif kind == "not-json":
            self._reply(b"<html>hello</html>")
        elif kind == "shape":
            self._reply(json.dumps({"predictions": [[0.5, 0.5]] * n}).encode())
        elif kind == "error":
            self._reply(b"boom", status=500)
        elif kind == "lying-length":
            self._reply(b"{", length=10**12)
        elif kind == "labels":
            self._reply(json.dumps({"predictions": [99] * n}).encode())
        elif kind == "drip":
            self.send_response(200)
            self.send_header("content-length", "100000")
            self.end_headers()
            for _ in range(40):
                try:
                    self.wfile.write(b" ")
                    self.wfile.flush()
                except OSError:
                    return
                time.sleep(0.25)
        else:
            self._reply(json.dumps({"predictions": [[0.1] * 10] * n}).encode())


@pytest.fixture(scope="module")
def endpoint() -> Any:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Hostile)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()


def _http(kind: str, *extra: str) -> Callable[[Path, str], list[str]]:
    def build(tmp: Path, url: str) -> list[str]:
        return ["-m", f"{url}/{kind}", "--protocol", "json", "-d", "digits", "-a", "square", "--eps", "0.1",
                "-c", "2", "--clever-samples", "0", "--timeout", "1", *extra]
    return build


# ------------------------------------------------------------------------------ the corpus


@dataclass(frozen=True)
class Case:
    id: str
    area: str
    build: Callable[..., list[str]]
    code: int = 2
    says: str | None = None
    early: bool = True  # refused before anything is written to -o


def _m(args: list[str]) -> list[str]:
    """A model/data case: a tiny attack so that a case which loads fine still ends fast."""
    return [*args, "-a", "fgsm", "--eps", "0.1", "-c", "2", "--clever-samples", "0"]


def _digits(*model: str) -> list[str]:
    return _m([*model, "-d", "digits"])


def _w(t: Path) -> list[str]:
    """An untrained digits CNN as a weights file: loads in milliseconds, nothing to train."""
    return ["-m", str(_weights(t)), "--arch", "digits-cnn"]


def _flag(*extra: str) -> Callable[[Path], list[str]]:
    """A flag case: the tiny run on digits with ``extra`` flags added."""
    return lambda t: [*_digits(*_w(t)), *extra]


def _on(data: Callable[[Path], Path]) -> Callable[[Path], list[str]]:
    """A data case: the tiny run on the dataset ``data(t)`` builds."""
    return lambda t: _m([*_w(t), "-d", str(data(t))])


CASES: list[Case] = [
    # ---- models
    Case("pickle-pkl", "model", lambda t: _digits("-m", str(_write(t, "m.pkl", pickle.dumps(_Run(t / MARKER)))))),
    Case("pickle-joblib", "model",
         lambda t: _digits("-m", str(_write(t, "m.joblib", pickle.dumps(_Run(t / MARKER)))))),
    Case("pickle-pt", "model", lambda t: (torch.save(_Run(t / MARKER), t / "m.pt"), _digits("-m", str(t / "m.pt")))[1],
         says="--trust-model-code"),
    Case("pickle-raw-pt", "model", lambda t: _digits("-m", str(_write(t, "m.pt", pickle.dumps(_Run(t / MARKER)))))),
    Case("pickle-bin", "model", lambda t: _digits("-m", str(_write(t, "m.bin", pickle.dumps(_Run(t / MARKER), 0))))),
    Case("empty-pt", "model", lambda t: _digits("-m", str(_write(t, "m.pt", b"")), "--arch", "digits-cnn")),
    Case("random-pt", "model",
         lambda t: _digits("-m", str(_write(t, "m.pt", os.urandom(4096))), "--arch", "digits-cnn")),
    Case("truncated-zip-pt", "model",
         lambda t: _digits("-m", str(_write(t, "m.pt", _weights(t).read_bytes()[:600])), "--arch", "digits-cnn")),
    Case("safetensors-lying-length", "model",
         lambda t: _digits("-m", str(_write(t, "m.safetensors", struct.pack("<Q", 2**60) + b"{}")),
                           "--arch", "digits-cnn")),
    Case("safetensors-huge-shape", "model",
         lambda t: _digits("-m", str(_write(t, "m.safetensors", (lambda h: struct.pack("<Q", len(h)) + h + b"\0" * 8)(
             json.dumps({"w": {"dtype": "F32", "shape": [10**9, 10**9], "data_offsets": [0, 8]}}).encode()))),
             "--arch", "digits-cnn")),
    Case("safetensors-garbage-json", "model",
         lambda t: _digits("-m", str(_write(t, "m.safetensors", struct.pack("<Q", 4) + b"{{{{")),
                           "--arch", "digits-cnn")),
    Case("model-is-folder", "model", lambda t: (t.joinpath("mdir").mkdir(), _digits("-m", str(t / "mdir")))[1]),
    Case("model-missing", "model", lambda t: _digits("-m", str(t / "nope.pt"))),
    Case("onnx-garbage", "model", lambda t: _digits("-m", str(_write(t, "m.onnx", b"\x08\x07garbage")))),
    Case("onnx-two-dynamic-dims", "model", lambda t: _digits("-m", str(_onnx_two_dynamic(t))), early=False),
    Case("weights-wrong-arch", "model", lambda t: _digits("-m", str(_weights(t)), "--arch", "lenet5")),
    Case("weights-no-arch", "model", lambda t: _digits("-m", str(_weights(t)))),
    Case("arch-os-system", "model", lambda t: _digits("-m", str(_weights(t)), "--arch", "os:system"),
         says="--allow-module"),
    Case("arch-popen", "model", lambda t: _digits("-m", str(_weights(t)), "--arch", "subprocess:Popen"),
         says="--allow-module"),
    Case("arch-this", "model", lambda t: _digits("-m", str(_weights(t)), "--arch", "this:s"), says="--allow-module"),
    Case("arch-builtins-print", "model", lambda t: _digits("-m", str(_weights(t)), "--arch", "builtins:print")),
    Case("arch-allowed-but-function", "model",
         lambda t: _digits("-m", str(_weights(t)), "--arch", "os:system", "--allow-module", "os"),
         says="not an nn.Module"),
    Case("arch-zoo-missing-attr", "model",
         lambda t: _digits("-m", str(_weights(t)), "--arch", "aisec.models.zoo:Nope")),
    Case("arch-malformed", "model", lambda t: _digits("-m", str(_weights(t)), "--arch", "../../etc:passwd")),
    Case("arch-dotted-os-path", "model", lambda t: _digits("-m", str(_weights(t)), "--arch", "os.path.join")),
    Case("unknown-suffix", "model", lambda t: _digits("-m", str(_write(t, "m.xyz", b"hello")))),
    Case("state-dict-not-tensors", "model",
         lambda t: (torch.save({"a": 1}, t / "s.pt"), _digits("-m", str(t / "s.pt"), "--arch", "digits-cnn"))[1]),
    # ---- data
    Case("labels-traversal", "data",
         _on(lambda t: (_png(t / "secret.png"), _folder(t, [("../../secret.png", "0")]))[1]),
         says="outside the dataset folder"),
    Case("labels-absolute", "data",
         _on(lambda t: (_png(t / "abs.png"), _folder(t, [(str(t / "abs.png"), "0")]))[1]),
         says="--allow-outside-paths"),
    Case("labels-symlink-out", "data",
         _on(lambda t: _symlinked(t)), says="outside the dataset folder"),
    Case("label-huge", "data",
         _on(lambda t: _folder(t, [("a.png", "0"), ("b.png", "1000000000")])),
         says="line 3"),
    Case("label-dense-limit", "data",
         _on(lambda t: _folder(t, [("a.png", "0"), ("b.png", "99999")]))),
    Case("labels-empty", "data", _on(lambda t: _bare(t, ""))),
    Case("labels-header-only", "data", _on(lambda t: _bare(t, "filename,label\n"))),
    Case("labels-binary", "data", _on(lambda t: _bare(t, os.urandom(2000)))),
    Case("labels-missing-image", "data",
         _on(lambda t: _folder(t, [("x.png", "0")], images=False))),
    Case("png-decompression-bomb", "data", _on(lambda t: _bomb(t)),
         says="MAX_IMAGE_PIXELS"),
    Case("png-truncated", "data",
         _on(lambda t: _first_image(t, lambda p: p.write_bytes(p.read_bytes()[:30])))),
    Case("png-is-text", "data",
         _on(lambda t: _first_image(t, lambda p: p.write_text("not an image")))),
    Case("images-two-sizes", "data",
         _on(lambda t: _first_image(t, lambda p: _png(p, size=(9, 7))))),
    Case("classes-file-empty", "data", _on(lambda t: _ten(t, classes=[""]))),
    Case("cifar-malicious-pickle", "data",
         _on(lambda t: _cifar(t, {b"data": _Run(t / MARKER), b"labels": [0]}))),
    Case("cifar-shared-list-bomb", "data",
         _on(lambda t: _cifar(t, {**_good_batch(1), b"labels": _shared_list()})),
         says="MAX_UNPICKLED_ITEMS"),
    Case("cifar-label-names-bomb", "data",
         _on(lambda t: _cifar(t, _good_batch(), {b"label_names": [_shared_list()]}))),
    Case("cifar-label-names-nested", "data",
         _on(lambda t: _cifar(t, _good_batch(), {b"label_names": [[1, 2]] * 10}))),
    Case("cifar-wrong-shape", "data",
         _on(lambda t: _cifar(t, {b"data": np.zeros((2, 5), np.uint8), b"labels": [0, 1]}))),
    Case("cifar-truncated", "data",
         _on(lambda t: _cifar(t, pickle.dumps(_good_batch(), protocol=2)[:50]))),
    Case("cifar-labels-floats", "data",
         _on(lambda t: _cifar(t, {**_good_batch(2), b"labels": [0.5, 1e300]}))),
    Case("table-label-huge", "data",
         _on(lambda t: _write(t, "t.csv", "a,b,label\n1,2,0\n3,4,1000000000\n")),
         says="line"),
    Case("table-nan", "data", _on(lambda t: _write(t, "t.csv", "a,b,label\nnan,2,0\n"))),
    Case("table-inf", "data", _on(lambda t: _write(t, "t.csv", "a,b,label\ninf,2,0\n"))),
    Case("table-ragged", "data", _on(lambda t: _write(t, "t.csv", "a,b,label\n1,0\n"))),
    Case("table-empty", "data", _on(lambda t: _write(t, "t.csv", ""))),
    Case("idx-lying-header", "data", _on(lambda t: _idx(t))),
    Case("jsonl-deep", "data",
         _on(lambda t: _write(t, "t.jsonl", '{"text": ' + "[" * 100000 + "]" * 100000
                                                            + ', "label": 0}\n'))),
    Case("data-missing", "data", _on(lambda t: t / "nope")),
    # ---- plans
    Case("plan-alias-bomb", "plan", lambda t: _plan(t, GOOD_PLAN + ALIAS_BOMB), says="aliases"),
    Case("plan-deep", "plan", lambda t: _plan(t, DEEP_YAML)),
    Case("plan-recipe-os-system", "plan",
         lambda t: _plan(t, "model: digits-cnn\ndata: digits\nchecks:\n  poisoning:\n    samples: 40\n    recipe:\n"
                            f"      architecture: 'os:system'\n      kwargs: {{command: \"touch '{t / MARKER}'\"}}\n"),
         says="--allow-module"),
    Case("plan-recipe-popen-privacy", "plan",
         lambda t: _plan(t, "model: digits-cnn\ndata: digits\nchecks:\n  privacy:\n    attacks: [{name: lira}]\n"
                            "    recipe: {architecture: 'subprocess:Popen', "
                            f"kwargs: {{args: ['touch', '{t / MARKER}']}}}}\n"),
         early=False),
    Case("plan-model-arch-os", "plan",
         lambda t: _plan(t, f"model: {{path: '{_weights(t)}', arch: 'os:system'}}\ndata: digits\n"),
         says="--allow-module"),
    Case("plan-model-arch-this", "plan",
         lambda t: _plan(t, f"model: {{path: '{_weights(t)}', arch: 'this:s'}}\ndata: digits\n")),
    Case("plan-python-tag", "plan", lambda t: _plan(t, f"{PY_TAG} [\"touch '{t / MARKER}'\"]\n")),
    Case("plan-list", "plan", lambda t: _plan(t, "- a\n- b\n")),
    Case("plan-unknown-key", "plan", lambda t: _plan(t, GOOD_PLAN + "bogus: 1\n")),
    Case("plan-samples-negative", "plan",
         lambda t: _plan(t, "model: digits-cnn\ndata: digits\nchecks: {robustness: {samples: -1}}\n")),
    Case("plan-eps-nan", "plan", lambda t: _plan(t, f"{PLAN_HEAD}checks: {{robustness: {{eps: [.nan]}}}}\n")),
    Case("plan-eps-inf", "plan", lambda t: _plan(t, f"{PLAN_HEAD}checks: {{robustness: {{eps: [.inf]}}}}\n")),
    Case("plan-attack-steps-zero", "plan",
         lambda t: _plan(t, "model: digits-cnn\ndata: digits\nchecks: {robustness: {attacks: "
                            "[{name: pgd, params: {steps: 0}}]}}\n")),
    Case("plan-attack-bpda-unknown", "plan",
         lambda t: _plan(t, f"{PLAN_HEAD}checks: {{robustness: {{attacks: [{{name: pgd, bpda: nosuch}}]}}}}\n"),
         says="known: bit-depth"),
    Case("plan-attack-bpda-bad-argument", "plan",
         lambda t: _plan(t, f"{PLAN_HEAD}checks: {{robustness: {{attacks: [{{name: pgd, bpda: 'bit-depth:x'}}]}}}}\n"),
         says="bpda"),
    Case("plan-attack-eot-zero", "plan",
         lambda t: _plan(t, f"{PLAN_HEAD}checks: {{robustness: {{attacks: [{{name: pgd, eot: 0}}]}}}}\n"), says="eot"),
    Case("plan-query-budget-negative", "plan",
         lambda t: _plan(t, "model: {path: digits-cnn, query_budget: -1}\ndata: digits\n")),
    Case("plan-std-zero", "plan",
         lambda t: _plan(t, "model: {path: digits-cnn, normalization: {mean: [0.5], std: [0]}}\ndata: digits\n")),
    Case("plan-allow-outside-paths", "plan",
         lambda t: _plan(t, "model: digits-cnn\ndata: {source: digits, options: {allow_outside_paths: true}}\n"),
         says="--allow-outside-paths"),
    Case("plan-bad-yaml", "plan", lambda t: _plan(t, "model: [digits-cnn\n")),
    Case("plan-binary", "plan", lambda t: ["--plan", str(_write(t, "plan.yaml", os.urandom(3000)))]),
    Case("plan-unknown-check", "plan", lambda t: _plan(t, "model: digits-cnn\ndata: digits\nchecks: [nosuch]\n")),
    Case("plan-too-big", "plan", lambda t: _plan(t, GOOD_PLAN + "#" * (5 * 2**20) + "\n"), says="MAX_YAML_BYTES"),
    Case("plan-recipe-lr-nan", "plan",
         lambda t: _plan(t, "model: digits-cnn\ndata: digits\nchecks: {poisoning: {recipe: {architecture: target, "
                            "lr: .nan}}}\n")),
    # ---- policies
    Case("policy-alias-bomb", "policy", lambda t: _policy(t, "rules: []\n" + ALIAS_BOMB), says="aliases"),
    Case("policy-target-nan", "policy",
         lambda t: _policy(t, "rules:\n  - {metric: adversarialRobustnessScore, operator: '>=', target: .nan}\n")),
    Case("policy-target-inf", "policy",
         lambda t: _policy(t, "rules:\n  - {metric: adversarialRobustnessScore, operator: '>=', target: .inf}\n")),
    Case("policy-bad-operator", "policy",
         lambda t: _policy(t, "rules:\n  - {metric: adversarialRobustnessScore, operator: '=>', target: 1}\n")),
    Case("policy-list", "policy", lambda t: _policy(t, "- 1\n- 2\n")),
    Case("policy-bad-yaml", "policy", lambda t: _policy(t, "rules: [\n")),
    Case("policy-deep", "policy", lambda t: _policy(t, DEEP_YAML)),
    Case("policy-python-tag", "policy", lambda t: _policy(t, f"{PY_TAG} [\"touch '{t / MARKER}'\"]\n")),
    Case("policy-unknown-metric", "policy",
         lambda t: _policy(t, "rules:\n  - {metric: nosuch.metric, operator: '>=', target: 1}\n")),
    # ---- endpoints (a hostile server; they fail during the first check, after plan.yaml is written)
    Case("endpoint-deep-json", "endpoint", _http("deep"), says="nested deeper", early=False),
    Case("endpoint-negative-probabilities", "endpoint", _http("negative"), says="logits", early=False),
    Case("endpoint-huge-probabilities", "endpoint", _http("huge-scores"), early=False),
    Case("endpoint-nan", "endpoint", _http("nan"), early=False),
    Case("endpoint-not-json", "endpoint", _http("not-json"), early=False),
    Case("endpoint-wrong-shape", "endpoint", _http("shape"), early=False),
    Case("endpoint-500", "endpoint", _http("error"), early=False),
    Case("endpoint-lying-length", "endpoint", _http("lying-length"), early=False),
    Case("endpoint-labels-out-of-range", "endpoint", _http("labels", "--output-kind", "labels"), early=False),
    Case("endpoint-drip", "endpoint", _http("drip"), says="deadline", early=False),
    Case("endpoint-timeout-zero", "endpoint", lambda t, u: [*_http("ok")(t, u), "--timeout", "0"], says="--timeout"),
    Case("endpoint-timeout-nan", "endpoint", lambda t, u: [*_http("ok")(t, u), "--timeout", "nan"]),
    Case("endpoint-query-budget-zero", "endpoint", lambda t, u: [*_http("ok")(t, u), "--query-budget", "0"],
         says="--query-budget"),
    # ---- CLI values
    *[Case(f"flag-eps-{v}", "flag", (lambda v: _flag("--eps", v))(v), says="--eps")
      for v in ("1/0", "1e308", "inf", "nan", "-1", "abc", "-inf")],
    Case("flag-eps-l2-negative", "flag", _flag("-a", "pgd", "--norm", "l2",
                                                                                  "--eps-l2", "-1")),
    Case("flag-count-zero", "flag", _flag("-c", "0"), says="--count"),
    Case("flag-bpda-unknown", "flag", _flag("-a", "pgd", "--bpda", "nosuch"), says="known: bit-depth"),
    Case("flag-eot-zero", "flag", _flag("-a", "pgd", "--eot", "0"), says="eot"),
    Case("flag-count-negative", "flag", _flag("-c", "-1"), says="--count"),
    Case("flag-steps-zero", "flag", _flag("-a", "pgd", "--steps", "0"), says="--steps"),
    Case("flag-batch-size-zero", "flag", _flag("--batch-size", "0"),
         says="--batch-size"),
    Case("flag-clever-samples-negative", "flag", _flag("--clever-samples", "-1")),
    Case("flag-query-budget-negative", "flag", _flag("--query-budget", "-1"),
         says="--query-budget"),
    Case("flag-input-shape-abc", "flag", _flag("--input-shape", "abc"),
         says="--input-shape"),
    Case("flag-input-shape-zero", "flag", _flag("--input-shape", "0,8,8"),
         says="--input-shape"),
    Case("flag-input-shape-huge", "flag", _flag("--input-shape", "100000,100000"),
         says="--input-shape"),
    Case("flag-std-zero", "flag", _flag("--mean", "0.5", "--std", "0"),
         says="--mean/--std"),
    Case("flag-std-nan", "flag", _flag("--mean", "0.5", "--std", "nan"), says="--std"),
    Case("flag-mean-inf", "flag", _flag("--mean", "inf", "--std", "1"), says="--mean"),
    Case("flag-device-bogus", "flag", _flag("--device", "tpu:9"), says="--device"),
    Case("flag-device-cuda-missing", "flag", _flag("--device", "cuda:99")),
    Case("flag-out-under-file", "flag",
         lambda t: [*_digits(*_w(t)), "-o", str(_write(t, "afile", "x") / "rep")], says="-o"),
    Case("flag-out-is-file", "flag", lambda t: [*_digits(*_w(t)), "-o", str(_write(t, "afile", "x"))]),
    Case("flag-poison-rate-above-one", "flag",
         lambda t: [*_w(t), "-d", "digits", "-t", "poisoning", "--poison-rates", "2"],
         says="--poison-rates"),
    Case("flag-poison-rate-nan", "flag",
         lambda t: [*_w(t), "-d", "digits", "-t", "poisoning", "--poison-rates", "nan"]),
    Case("flag-train-lr-zero", "flag",
         lambda t: [*_w(t), "-d", "digits", "-t", "poisoning", "--train-lr", "0"], says="--train-lr"),
    Case("flag-train-epochs-zero", "flag",
         lambda t: [*_w(t), "-d", "digits", "-t", "poisoning", "--train-epochs", "0"]),
    Case("flag-explain-samples-zero", "flag",
         lambda t: [*_w(t), "-d", "digits", "-t", "explainability", "--explain-samples", "0"],
         says="--explain-samples"),
    Case("flag-num-samples-zero", "flag",
         lambda t: [*_w(t), "-d", "digits", "-t", "explainability", "--num-samples", "0"]),
    Case("flag-checks-unknown", "flag", lambda t: [*_w(t), "-d", "digits", "-t", "nosuch"]),
    # ---- inputs that must work: hostile-looking but valid
    Case("class-names-mathtext", "data",
         _on(lambda t: _ten(t, classes=[f"$\\frac{{{i}$" for i in range(10)])),
         code=0, early=False),
]


def _symlinked(t: Path) -> Path:
    _png(t / "outside.png")
    root = _folder(t, [("link.png", "0")], images=False)
    (root / "images" / "link.png").symlink_to(t / "outside.png")
    return root


def _bare(t: Path, labels: str | bytes) -> Path:
    root = t / "ds"
    root.mkdir()
    _write(root, "labels.csv", labels)
    return root


def _bomb(t: Path) -> Path:
    from PIL import Image

    root = _folder(t, [("bomb.png", "0")], images=False)
    Image.new("1", (8200, 8200)).save(root / "images" / "bomb.png")
    return root


def _first_image(t: Path, spoil: Callable[[Path], Any]) -> Path:
    root = _ten(t)
    spoil(root / "images" / "0.png")
    return root


def _idx(t: Path) -> Path:
    d = t / "idx"
    d.mkdir()
    (d / "t10k-images-idx3-ubyte").write_bytes(struct.pack(">IIII", 0x803, 10**9, 28, 28) + b"\0" * 100)
    (d / "t10k-labels-idx1-ubyte").write_bytes(struct.pack(">II", 0x801, 10**9) + b"\0" * 10)
    return d


# ------------------------------------------------------------------------------ the harness


def _invoke(args: list[str]) -> Result | None:
    box: dict[str, Result] = {}

    def go() -> None:
        box["res"] = CliRunner().invoke(main, args, catch_exceptions=True)

    th = threading.Thread(target=go, daemon=True)
    th.start()
    th.join(HANG_S)
    return box.get("res")


def _half_written(out: Path) -> list[str]:
    """Files in ``out`` that are incomplete: temp files, unparsable JSON, a report cut short."""
    bad = [str(p) for p in out.rglob("*.tmp")] if out.exists() else []
    if (out / "result.json").exists():
        try:
            json.loads((out / "result.json").read_text())
        except ValueError:
            bad.append("result.json")
    if (out / "evidence.jsonl").exists():
        for line in (out / "evidence.jsonl").read_text().splitlines():
            try:
                json.loads(line)
            except ValueError:
                bad.append("evidence.jsonl")
                break
    if (out / "report.html").exists() and not (out / "report.html").read_text().rstrip().endswith("</html>"):
        bad.append("report.html")
    return bad


def _message_lines(res: Result) -> list[str]:
    """The error lines: stderr without click's usage preamble."""
    lines = [ln for ln in res.stderr.splitlines() if ln.strip()]
    return [ln for ln in lines if not ln.startswith(("Usage:", "Try '"))]


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_bad_input(case: Case, tmp_path: Path, endpoint: str, aisec_cache: str, monkeypatch: pytest.MonkeyPatch,
                   fuzz_tally: Counter[str]) -> None:
    TALLY = fuzz_tally
    monkeypatch.chdir(tmp_path)
    work = tmp_path / "in"
    work.mkdir()
    args = case.build(work, endpoint) if case.area == "endpoint" else case.build(work)
    out = tmp_path / "out"
    if "-o" not in args:
        args = [*args, "-o", str(out)]
    t0 = time.perf_counter()
    res = _invoke(["assess", "-q", *args])
    TALLY["tried"] += 1
    if res is None:
        TALLY["hang"] += 1
        pytest.fail(f"{case.id}: no answer within {HANG_S:g} s")
    executed = (work / MARKER).exists() or (tmp_path / MARKER).exists()
    traced = (res.exception is not None and not isinstance(res.exception, SystemExit)) or "Traceback" in res.output
    half = _half_written(out)
    lines = _message_lines(res)
    TALLY["code executed"] += executed
    TALLY["traceback"] += traced
    TALLY["data lost"] += bool(half)
    assert not executed, f"{case.id}: the input ran code (marker file created)"
    assert not traced, f"{case.id}: traceback\n{res.output}\n{res.exception!r}"
    assert not half, f"{case.id}: half-written output {half}"
    if case.code == 0:
        ok = res.exit_code == 0 and (out / "report.html").exists()
        TALLY["ran fine" if ok else "unclear"] += 1
        assert ok, f"{case.id}: expected a complete run\n{res.output}"
        return
    clear = res.exit_code == case.code and len(lines) == 1 and (case.says is None or case.says in lines[0])
    if case.early:
        clear = clear and not out.exists()
    TALLY["clear error" if clear else "unclear"] += 1
    assert res.exit_code == case.code, f"{case.id}: exit {res.exit_code}, expected {case.code}\n{res.output}"
    assert len(lines) == 1, f"{case.id}: expected one error line, got\n{res.stderr}"
    if case.says is not None:
        assert case.says in lines[0], f"{case.id}: {lines[0]!r} does not mention {case.says!r}"
    if case.early:
        assert not out.exists(), f"{case.id}: refused input, yet {out} was created: {sorted(os.listdir(out))}"
    assert time.perf_counter() - t0 < HANG_S
