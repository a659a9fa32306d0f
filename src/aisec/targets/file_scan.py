"""Scan a model file or folder for code it would run when loaded, without loading it.

aisec refuses to unpickle untrusted files (see :mod:`aisec.targets.loading`); this module says
*why* a file is dangerous, as evidence an auditor can keep (Clouditor ``vulnerabilities``). It reads
bytes only: pickles are disassembled, never unpickled.

What is looked at, per format:

- **pickles** — plain ``.pkl``/``.joblib``, legacy torch files, ``data.pkl`` inside torch zip and
  TorchScript archives, object arrays inside ``.npy``/``.npz``, pickled ``pytorch_model.bin``: every
  global the pickle imports is classified (:data:`DENY` = code execution, critical; not on
  :data:`ALLOW` = arbitrary classes or functions run at load time, medium; only allow-listed = a
  pickle, info). The globals come from :mod:`pickletools` (exact, stdlib); the maintained scanner
  `fickling <https://github.com/trailofbits/fickling>`_ (Trail of Bits) gives a second, independent
  verdict on the same bytes, which escalates a file to *high* when it names a global outside
  :data:`ALLOW` that :data:`DENY` does not know yet.
- **Hugging Face folders** — ``auto_map`` in ``config.json`` or ``*.py`` files next to the weights
  mean ``trust_remote_code`` would run them (high); pickled weights are scanned as pickles.
- **ONNX** — external-data paths that leave the model's folder (high), custom operator domains
  that need a native library (low).
- **safetensors** — a header that lies about its size or offsets (high).

Why fickling and not modelscan (``bench/bench_model_scan.py``, the corpus of
:mod:`aisec.testing.model_files`): on 13 malicious and 11 benign real files, fickling alone at its
"likely overtly malicious" level flags 11/13 with 1 false alarm (joblib's numpy wrapper), modelscan
0.8.8 flags 9/13 with 0 false alarms but misses a payload in a legacy torch file, a joblib file
(parse error) and an object ``.npy`` (crashes on numpy 2), pins ``rich<15`` (aisec needs 15) and
is a CLI at ~1 s per file. This module (allow-list + fickling) flags 13/13 with 0 false alarms.

>>> report = scan_model_path("model.pt")
>>> report.max_severity, [f.summary for f in report.findings]
"""

from __future__ import annotations

import io
import json
import pickletools
import struct
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from aisec.core.errors import DataError

Severity = Literal["info", "low", "medium", "high", "critical"]
SEVERITIES: tuple[Severity, ...] = ("info", "low", "medium", "high", "critical")

#: Globals whose import in a pickle means code execution (module, or (module, name)).
DENY_MODULES = frozenset({
    "os", "posix", "nt", "subprocess", "pty", "socket", "shutil", "sys", "runpy", "importlib", "imp",
    "webbrowser", "code", "codeop", "ctypes", "multiprocessing", "asyncio", "signal", "pickle", "_pickle",
    "marshal", "dill", "cloudpickle", "pdb", "bdb", "timeit", "platform", "commands", "popen2", "urllib",
    "requests", "httpx", "http", "ftplib", "smtplib", "telnetlib", "tempfile", "glob", "pathlib", "io",
    "zipimport", "pkgutil", "site", "sysconfig", "distutils", "setuptools", "pip", "torch.hub",
    "torch.serialization", "torch._dynamo", "torch.jit", "numpy.testing", "operator",
})
DENY = frozenset({
    ("builtins", n) for n in ("eval", "exec", "compile", "open", "__import__", "getattr", "setattr", "delattr",
                              "globals", "locals", "vars", "input", "breakpoint", "apply", "execfile", "help")
} | {("__builtin__", n) for n in ("eval", "exec", "compile", "open", "__import__", "getattr", "apply",
                                  "execfile", "file")}
   | {("types", "FunctionType"), ("types", "CodeType"), ("functools", "partial"), ("numpy", "load"),
      ("torch", "load"), ("torch", "from_file"), ("numpy", "fromfile"), ("joblib", "load")})

#: Globals that the formats aisec reads legitimately import (what torch's ``weights_only`` unpickler,
#: numpy and scikit-learn/joblib files need). Prefix entries end with a dot.
ALLOW = frozenset({
    "collections.OrderedDict", "collections.defaultdict", "builtins.set", "builtins.frozenset",
    "builtins.slice", "builtins.complex", "builtins.bytearray", "builtins.range", "builtins.dict",
    "builtins.list", "builtins.tuple", "builtins.int", "builtins.float", "builtins.bool", "builtins.object",
    "builtins.bytes", "builtins.str",
    "copyreg._reconstructor", "__builtin__.set", "_codecs.encode",
    "torch._utils.", "torch.storage._load_from_bytes", "torch.FloatStorage", "torch.DoubleStorage",
    "torch.HalfStorage", "torch.BFloat16Storage", "torch.LongStorage", "torch.IntStorage", "torch.ShortStorage",
    "torch.CharStorage", "torch.ByteStorage", "torch.BoolStorage", "torch.UntypedStorage", "torch.Size",
    "torch.device", "torch.dtype", "torch.float32", "torch.float16", "torch.bfloat16", "torch.int64",
    "torch._tensor._rebuild_from_type_v2", "torch.nn.parameter.Parameter", "torch.Tensor",
    "numpy.core.multiarray.", "numpy._core.multiarray.", "numpy.ndarray", "numpy.dtype", "numpy.core.numeric.",
    "numpy._core.numeric.", "numpy.random.", "numpy.dtypes.", "numpy.int64", "numpy.float64", "numpy.float32",
    "joblib.numpy_pickle.NumpyArrayWrapper", "joblib.numpy_pickle.NDArrayWrapper",
    "sklearn.", "scipy.sparse.", "_operator.getitem",
    "__torch__.",  # TorchScript's own class names in an archive's data.pkl: resolved by TorchScript, not imported
})

_PICKLE_SUFFIXES = {".pkl", ".pickle", ".joblib", ".pt", ".pth", ".bin", ".ckpt", ".dat", ".p", ".sav", ".model"}
_MAX_PICKLE_BYTES = 512 * 1024 * 1024  # a pickle larger than this is not disassembled (reported as such)


@dataclass(frozen=True)
class Finding:
    """One thing found in a model file: how bad, where, and what it means."""

    severity: Severity
    kind: str  # unsafe-global, unknown-global, pickle, remote-code, external-data, custom-op, bad-header, unreadable
    file: str
    summary: str
    detail: str = ""


@dataclass
class ScanReport:
    """What :func:`scan_model_path` found in a file or folder."""

    path: str
    files: list[str] = field(default_factory=list)
    findings: list[Finding] = field(default_factory=list)
    scanner: str = "aisec allow-list + fickling"
    scanner_version: str = ""

    @property
    def max_severity(self) -> Severity | None:
        """The worst finding's severity; None when nothing was found."""
        if not self.findings:
            return None
        return max((f.severity for f in self.findings), key=SEVERITIES.index)

    def count(self, at_least: Severity) -> int:
        """Findings of severity ``at_least`` or worse."""
        floor = SEVERITIES.index(at_least)
        return sum(1 for f in self.findings if SEVERITIES.index(f.severity) >= floor)

    @property
    def safe_to_unpickle(self) -> bool:
        """No finding of medium or worse: every pickle imports only allow-listed globals."""
        return self.count("medium") == 0


def classify_global(module: str, name: str) -> Severity:
    """critical: a known code-execution gadget; info: allow-listed; medium: anything else (runs on load)."""
    top = module.split(".")[0]
    if (module, name) in DENY or module in DENY_MODULES or top in DENY_MODULES or \
            any(module.startswith(m + ".") for m in DENY_MODULES):
        return "critical"
    dotted = f"{module}.{name}"
    if dotted in ALLOW or any(a.endswith(".") and dotted.startswith(a) for a in ALLOW):
        return "info"
    return "medium"


class _Inert:
    """Stands in for every global outside :data:`_REAL`: takes calls, state, items and attributes and runs
    nothing, so a scan can walk a whole pickle (and the arrays joblib interleaves with it) safely."""

    def __init__(self, *args: object, **kwargs: object) -> None:
        pass

    def __call__(self, *args: object, **kwargs: object) -> _Inert:
        return _Inert()

    def __setstate__(self, state: object) -> None:
        pass

    def __setitem__(self, key: object, value: object) -> None:
        pass

    def append(self, value: object) -> None:
        pass

    def extend(self, values: object) -> None:
        pass


#: The only globals a scan really builds: numpy arrays and dtypes (joblib needs them to find where each
#: array's raw bytes end) and inert containers. Everything else becomes :class:`_Inert`.
_REAL = frozenset({
    ("numpy", "dtype"), ("numpy", "ndarray"), ("numpy.core.multiarray", "_reconstruct"),
    ("numpy._core.multiarray", "_reconstruct"), ("numpy.core.multiarray", "scalar"),
    ("numpy._core.multiarray", "scalar"),
    ("collections", "OrderedDict"), ("builtins", "set"), ("builtins", "frozenset"), ("builtins", "complex"),
    ("builtins", "slice"), ("builtins", "bytearray"), ("_codecs", "encode"),
})


def _real(module: str, name: str) -> object:
    import importlib

    return getattr(importlib.import_module(module), name)


def _recording_unpickler(fh: io.BytesIO, found: list[tuple[str, str]]) -> object:
    """A joblib ``NumpyUnpickler`` (it reads plain pickles, torch's legacy pickles and joblib's arrays)
    whose ``find_class`` records every global and returns :class:`_Inert` unless it is in :data:`_REAL`,
    and whose array wrappers skip their bytes instead of allocating them (a lying shape cannot ask for
    gigabytes)."""
    import numpy as np
    from joblib.numpy_pickle import NumpyArrayWrapper, NumpyUnpickler

    class SkippingArray(NumpyArrayWrapper):  # type: ignore[misc]
        def read(self, unpickler: object, ensure_native_byte_order: bool = False) -> object:
            handle = unpickler.file_handle  # type: ignore[attr-defined]
            dtype = np.dtype(self.dtype)
            if dtype.hasobject:
                inner = _recording_unpickler(handle, found)
                return inner.load()  # type: ignore[attr-defined]
            if self.safe_get_numpy_array_alignment_bytes() is not None:
                pad = handle.read(1)
                handle.seek(int.from_bytes(pad, "little"), 1)
            count = 1
            for d in self.shape:
                count *= int(d)
            size = count * dtype.itemsize
            here = handle.tell()
            end = handle.seek(0, 2)
            if size < 0 or here + size > end:
                raise DataError(f"an array declares {size} bytes but {end - here} remain")
            handle.seek(here + size)
            return _Inert()

    class Recording(NumpyUnpickler):  # type: ignore[misc]
        def find_class(self, module: str, name: str) -> object:
            module = {"__builtin__": "builtins", "copy_reg": "copyreg"}.get(module, module)
            found.append((module, name))
            if (module, name) == ("joblib.numpy_pickle", "NumpyArrayWrapper"):
                return SkippingArray
            if (module, name) in _REAL:
                return _real(module, name)
            return _Inert

        def persistent_load(self, pid: object) -> object:  # torch's storages
            return _Inert()

    return Recording("<scan>", fh, ensure_native_byte_order=False)


def pickle_globals(data: bytes) -> list[tuple[str, str]]:
    """Every (module, name) the pickles in ``data`` import, in order (see :func:`scan_pickle_bytes`)."""
    return scan_pickle_bytes(data)[0]


def scan_pickle_bytes(data: bytes) -> tuple[list[tuple[str, str]], str | None]:
    """Every (module, name) the pickles in ``data`` import, in order.

    Two passes, whose union is returned: a restricted unpickling (:func:`_recording_unpickler`: runs
    nothing, follows joblib's interleaved arrays and nested object arrays), and a disassembly of the
    opcodes with :mod:`pickletools` (``GLOBAL``/``INST``/``STACK_GLOBAL`` resolved through the memo),
    which still reads a pickle the first pass gives up on. One file may hold several pickles back to
    back (torch's legacy format does); damage stops a pass, keeping what it read. The second value
    says why the restricted pass stopped early when the file lies (an array larger than the file)."""
    found: list[tuple[str, str]] = []
    problem: str | None = None
    fh = io.BytesIO(data)
    while fh.tell() < len(data):
        start = fh.tell()
        try:
            _recording_unpickler(fh, found).load()  # type: ignore[attr-defined]
        except DataError as exc:  # a lying array: the file is not what it says
            problem = str(exc)
            break
        except Exception:  # damage, or raw bytes after the last pickle (torch's legacy storages)
            break
        if fh.tell() <= start:
            break
    stream = io.BytesIO(data)
    while stream.tell() < len(data):
        start = stream.tell()
        memo: dict[int, object] = {}
        strings: list[object] = []  # recent pushes, for STACK_GLOBAL
        try:
            for op, arg, _pos in pickletools.genops(stream):
                name = op.name
                if name in ("GLOBAL", "INST") and isinstance(arg, str):
                    mod, _, attr = arg.partition(" ")
                    found.append(({"__builtin__": "builtins"}.get(mod, mod), attr))
                elif name in ("SHORT_BINUNICODE", "BINUNICODE", "BINUNICODE8", "UNICODE", "STRING",
                              "BINSTRING", "SHORT_BINSTRING"):
                    strings.append(arg)
                elif name == "MEMOIZE":
                    memo[len(memo)] = strings[-1] if strings else None
                elif name in ("BINPUT", "LONG_BINPUT", "PUT") and isinstance(arg, int):
                    memo[arg] = strings[-1] if strings else None
                elif name in ("BINGET", "LONG_BINGET", "GET") and isinstance(arg, int):
                    strings.append(memo.get(arg))
                elif name == "STACK_GLOBAL":
                    if len(strings) >= 2 and isinstance(strings[-2], str) and isinstance(strings[-1], str):
                        found.append((str(strings[-2]), str(strings[-1])))
                    else:
                        found.append(("<unresolved>", "<stack_global>"))
                else:
                    strings.append(None)
                if len(strings) > 64:
                    del strings[:-8]
        except Exception:  # pickletools raises ValueError and friends on damage; keep what was read
            break
        if stream.tell() <= start:
            break
    return list(dict.fromkeys(found)), problem


def _fickling_escalations(data: bytes, file: str) -> list[Finding]:
    """fickling's verdict on the same bytes, as a *high* finding when it calls the pickle overtly
    malicious because of a global outside :data:`ALLOW`."""
    try:
        from fickling.analysis import Severity as FSeverity
        from fickling.analysis import check_safety
        from fickling.fickle import Pickled
    except ImportError:  # pragma: no cover - fickling is a dependency; a broken install must not hide findings
        return []
    try:
        results = check_safety(Pickled.load(data))
    except Exception:
        return []
    out = []
    for r in results.results:
        if r.severity < FSeverity.LIKELY_OVERTLY_MALICIOUS or not r.trigger:
            continue
        trigger = str(r.trigger)
        words = trigger.split()
        if len(words) >= 4 and words[0] == "from" and words[2] == "import" and \
                classify_global(words[1], words[3]) == "info":
            continue  # an allow-listed ML global (e.g. joblib's NumpyArrayWrapper): not evidence of a payload
        out.append(Finding("high", "unsafe-global", file, f"fickling: {r.severity.name.lower().replace('_', ' ')}",
                           trigger[:300]))
    return out


def _scan_pickle(data: bytes, file: str) -> list[Finding]:
    if len(data) > _MAX_PICKLE_BYTES:
        return [Finding("medium", "unreadable", file, f"pickle of {len(data)} bytes not disassembled (limit "
                        f"{_MAX_PICKLE_BYTES}); treat as unsafe")]
    globs, problem = scan_pickle_bytes(data)
    out: list[Finding] = []
    if problem is not None:
        out.append(Finding("medium", "bad-header", file, f"the pickle lies about its content: {problem}",
                           "a loader may allocate what the file declares; treat it as hostile"))
    worst = {"critical": [], "medium": []}  # type: dict[str, list[str]]
    for mod, name in globs:
        sev = classify_global(mod, name)
        if sev in worst:
            worst[sev].append(f"{mod}.{name}")
    if worst["critical"]:
        out.append(Finding("critical", "unsafe-global", file,
                           f"unpickling calls code-execution gadgets: {', '.join(worst['critical'][:5])}",
                           "anything that unpickles this file (torch.load(weights_only=False), joblib.load, "
                           "pickle.load) runs them"))
    if worst["medium"]:
        out.append(Finding("medium", "unknown-global", file,
                           f"unpickling imports and runs code outside the allow-list: {', '.join(worst['medium'][:5])}"
                           + (" …" if len(worst["medium"]) > 5 else ""),
                           "classes or functions from these modules execute while the file loads; trust the "
                           "source or convert the model to safetensors/ONNX"))
    if not worst["critical"]:
        out += _fickling_escalations(data, file)
    if not out:
        out.append(Finding("info", "pickle", file, f"pickle with {len(set(globs))} allow-listed globals",
                           "loads with torch.load(weights_only=True) / aisec's safe loaders"))
    return out


def _npy_pickle(data: bytes) -> bytes | None:
    """The pickle inside an ``.npy`` whose dtype holds Python objects; None for a plain array.

    The header is read by hand (magic, version, length, a Python dict literal) because numpy's
    readers are per-version and partly private."""
    import ast

    import numpy as np

    if data[:6] != b"\x93NUMPY" or len(data) < 10:
        raise DataError("not an .npy file (bad magic)")
    major = data[6]
    if major == 1:
        (n,), off = struct.unpack("<H", data[8:10]), 10
    else:
        (n,), off = struct.unpack("<I", data[8:12]), 12
    try:
        header = ast.literal_eval(data[off:off + n].decode("latin1"))
        dtype = np.dtype(header["descr"]) if not isinstance(header["descr"], list) else None
    except Exception as exc:
        raise DataError(f"not a valid .npy header: {exc}") from exc
    # a structured dtype given as a list shows its object fields as 'O'
    has_object = "O" in repr(header["descr"]) if dtype is None else dtype.hasobject
    return data[off + n:] if has_object else None


def _scan_zip(path: Path, rel: str) -> list[Finding]:
    out: list[Finding] = []
    with zipfile.ZipFile(path) as z:
        names = z.namelist()
        for n in names:
            info = z.getinfo(n)
            if n.endswith(".pkl"):
                if info.file_size > _MAX_PICKLE_BYTES:
                    out.append(Finding("medium", "unreadable", f"{rel}:{n}", f"pickle of {info.file_size} bytes not "
                                       f"disassembled (limit {_MAX_PICKLE_BYTES}); treat as unsafe"))
                else:
                    out += _scan_pickle(z.read(n), f"{rel}:{n}")
            elif n.endswith(".npy"):
                out += _scan_npy(z.read(n), f"{rel}:{n}")
        if any("/code/" in n or n.startswith("code/") for n in names):
            out.append(Finding("info", "torchscript", rel, "TorchScript archive: torch.jit.load compiles its code",
                               "TorchScript can call only torch operators, not arbitrary Python"))
    return out


def _scan_npy(data: bytes, file: str) -> list[Finding]:
    inner = _npy_pickle(data)
    if inner is None:
        return []
    return [Finding("medium", "pickle", file, "object array: np.load(allow_pickle=True) unpickles it"),
            *_scan_pickle(inner, file)]


def _scan_safetensors(path: Path, rel: str) -> list[Finding]:
    size = path.stat().st_size
    with path.open("rb") as fh:
        head = fh.read(8)
        if len(head) < 8:
            return [Finding("high", "bad-header", rel, "safetensors file shorter than its 8-byte header length")]
        (n,) = struct.unpack("<Q", head)
        if n > size - 8 or n > 100 * 1024 * 1024:
            return [Finding("high", "bad-header", rel, f"safetensors header claims {n} bytes in a {size}-byte file")]
        try:
            header = json.loads(fh.read(n))
        except ValueError:
            return [Finding("high", "bad-header", rel, "safetensors header is not JSON")]
    body = size - 8 - n
    for key, t in header.items() if isinstance(header, dict) else []:
        if key == "__metadata__" or not isinstance(t, dict):
            continue
        start, end = (t.get("data_offsets") or [0, 0])[:2]
        if not (isinstance(start, int) and isinstance(end, int) and 0 <= start <= end <= body):
            return [Finding("high", "bad-header", rel, f"tensor '{key}' points outside the file ({start}–{end} of "
                            f"{body} bytes)")]
    return []


_STANDARD_ONNX_DOMAINS = {"", "ai.onnx", "ai.onnx.ml", "com.microsoft", "ai.onnx.training", "ai.onnx.preview.training"}


def _scan_onnx(path: Path, rel: str) -> list[Finding]:
    try:
        import onnx
    except ImportError:
        return [Finding("info", "unreadable", rel, "onnx is not installed; the graph was not checked "
                        "(pip install 'aisec[onnx]')")]
    try:
        model = onnx.load(str(path), load_external_data=False)
    except Exception as exc:
        return [Finding("high", "bad-header", rel, f"not a readable ONNX model: {str(exc)[:200]}")]
    out: list[Finding] = []
    root = path.parent.resolve()
    for init in model.graph.initializer:
        for entry in init.external_data:
            if entry.key == "location":
                target = (root / entry.value).resolve()
                if not target.is_relative_to(root):
                    out.append(Finding("high", "external-data", rel, f"tensor '{init.name}' reads external data "
                                       f"from '{entry.value}', outside the model's folder"))
    domains = {n.domain for n in model.graph.node} - _STANDARD_ONNX_DOMAINS
    for d in sorted(domains):
        out.append(Finding("low", "custom-op", rel, f"custom operator domain '{d}' (needs a native library)"))
    return out


def _scan_hf_folder(folder: Path, rel: str) -> list[Finding]:
    out: list[Finding] = []
    cfg = folder / "config.json"
    if cfg.is_file():
        try:
            conf = json.loads(cfg.read_text(encoding="utf-8"))
        except ValueError:
            conf = {}
        if isinstance(conf, dict) and conf.get("auto_map"):
            out.append(Finding("high", "remote-code", f"{rel}/config.json",
                               f"config asks for custom code: auto_map {json.dumps(conf['auto_map'])[:200]}",
                               "transformers runs it with trust_remote_code=True; aisec never passes that"))
    for py in sorted(folder.rglob("*.py")):
        out.append(Finding("high", "remote-code", f"{rel}/{py.relative_to(folder)}", "Python file next to the weights",
                           "code shipped with a model runs when loaded with trust_remote_code"))
    return out


def _files(root: Path) -> Iterator[Path]:
    if root.is_file():
        yield root
        return
    for p in sorted(root.rglob("*")):
        if p.is_file() and not p.is_symlink() and not any(part.startswith(".") for part in p.relative_to(root).parts):
            yield p


def scan_model_path(path: str | Path) -> ScanReport:
    """Scan a model file or folder (see the module docstring); reads bytes only, never loads."""
    root = Path(path)
    if not root.exists():
        raise DataError(f"model path not found: {root}")
    try:
        from importlib.metadata import version

        fickling_version = version("fickling")
    except Exception:
        fickling_version = "not installed"
    report = ScanReport(path=str(root), scanner_version=f"fickling {fickling_version}")
    base = root if root.is_dir() else root.parent
    if root.is_dir():
        report.findings += _scan_hf_folder(root, root.name)
    for f in _files(root):
        rel = str(f.relative_to(base))
        report.files.append(rel)
        suffix = f.suffix.lower()
        try:
            if suffix == ".py":
                continue  # reported with the folder
            if suffix == ".safetensors":
                report.findings += _scan_safetensors(f, rel)
            elif suffix == ".onnx":
                report.findings += _scan_onnx(f, rel)
            elif suffix == ".npy":
                report.findings += _scan_npy(f.read_bytes(), rel)
            elif zipfile.is_zipfile(f):
                report.findings += _scan_zip(f, rel)
            elif suffix in _PICKLE_SUFFIXES or _looks_like_pickle(f):
                report.findings += _scan_pickle(f.read_bytes(), rel)
        except (OSError, DataError, zipfile.BadZipFile, struct.error) as exc:
            report.findings.append(Finding("medium", "unreadable", rel, f"could not be scanned: {exc}"))
    return report


def _looks_like_pickle(path: Path) -> bool:
    with path.open("rb") as fh:
        head = fh.read(2)
    return len(head) == 2 and head[0] == 0x80 and 0 <= head[1] <= 5
