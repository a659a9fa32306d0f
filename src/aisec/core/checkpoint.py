"""Checkpoints of a run: each finished check's result, saved so a killed run resumes where it stopped.

After every check, :func:`save_checkpoint` writes ``checkpoints/NN-<check>.json`` (the summary, its
type, measurements, warnings, parameters, timings, threats and the random-number state the next
check starts from) and ``checkpoints/NN-<check>.npz`` (its per-sample tables and images), each
written to a temporary file and renamed, so a checkpoint is either whole or absent. ``aisec assess
--resume DIR`` reloads them (:func:`load_checkpoints`), skips the checks they hold, restores the
random state and runs only what is missing — which gives the evidence an uninterrupted run gives.

Nothing here executes stored data: the npz is read with ``allow_pickle=False``, the JSON is plain
JSON (NaN kept as NaN), and a summary type is only ever an :class:`aisec.core.check.Summary`
subclass defined in an ``aisec`` module.
"""

from __future__ import annotations

import importlib
import json
import random
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast

import numpy as np
import torch

from aisec.core.check import Result, Summary
from aisec.core.errors import DataError
from aisec.core.evidence import Measurement

CHECKPOINTS = "checkpoints"
FORMAT = 1


@dataclass
class Checkpoint:
    """One finished check of a run, as saved."""

    index: int
    result: Result
    rng: dict[str, Any]


def _plain(obj: Any) -> Any:
    """JSON-able Python values with NaN and infinities kept (``json`` writes them as NaN/Infinity)."""
    if isinstance(obj, dict):
        return {str(k): _plain(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_plain(v) for v in obj]
    if isinstance(obj, np.ndarray):
        return _plain(obj.tolist())
    if isinstance(obj, (np.floating, float)):
        return float(obj)
    if isinstance(obj, (np.integer,)):
        return int(obj)
    if isinstance(obj, np.bool_):
        return bool(obj)
    return obj


def capture_rng() -> dict[str, Any]:
    """The global random states a check may draw from: torch's, numpy's legacy one and Python's."""
    np_state = cast(tuple[Any, ...], np.random.get_state(legacy=True))
    return {
        "torch": torch.get_rng_state().tolist(),
        "numpy": [np_state[0], np_state[1].tolist(), int(np_state[2]), int(np_state[3]), float(np_state[4])],
        "python": _plain(random.getstate()),
    }


def restore_rng(state: dict[str, Any]) -> None:
    """Put back what :func:`capture_rng` saved."""
    torch.set_rng_state(torch.tensor(state["torch"], dtype=torch.uint8))
    kind, keys, pos, has_gauss, cached = state["numpy"]
    np.random.set_state((kind, np.array(keys, dtype=np.uint32), pos, has_gauss, cached))
    version, internal, gauss = state["python"]
    random.setstate((version, tuple(internal), gauss))


def _arrays(prefix: str, tables: dict[str, dict[str, np.ndarray]]) -> dict[str, np.ndarray]:
    out: dict[str, np.ndarray] = {}
    for key, cols in tables.items():
        for col, arr in cols.items():
            a = np.asarray(arr)
            if a.dtype == object:  # saved as text: an npz with objects would need pickle to load
                a = np.array([str(v) for v in a.ravel()], dtype=str).reshape(a.shape)
                out[f"{prefix}|{key}|{col}|object"] = a
            else:
                out[f"{prefix}|{key}|{col}|plain"] = a
    return out


def save_checkpoint(out_dir: Path, index: int, result: Result, rng: dict[str, Any]) -> Path:
    """Write check number ``index``'s checkpoint (atomically); returns the JSON file."""
    folder = out_dir / CHECKPOINTS
    folder.mkdir(parents=True, exist_ok=True)
    stem = f"{index:02d}-{result.check}"
    arrays = {**_arrays("tables", result.tables), **_arrays("images", result.images)}
    tmp_npz = folder / f"{stem}.npz.tmp"
    with tmp_npz.open("wb") as fh:
        np.savez(fh, **arrays)  # type: ignore[arg-type]  # numpy's stub wants positional arrays
    tmp_npz.replace(folder / f"{stem}.npz")
    summary_type = type(result.summary)
    doc = {
        "format": FORMAT, "index": index, "check": result.check,
        "summary_type": f"{summary_type.__module__}:{summary_type.__qualname__}",
        "summary": _plain(result.summary.model_dump()),
        "measurements": [_plain(m.model_dump(mode="python")) for m in result.measurements],
        "params": _plain(result.params), "warnings": list(result.warnings), "seconds": result.seconds,
        "threats": list(result.threats), "rng": rng,
    }
    tmp = folder / f"{stem}.json.tmp"
    tmp.write_text(json.dumps(doc), encoding="utf-8")
    tmp.replace(folder / f"{stem}.json")
    return folder / f"{stem}.json"


def summary_class(ref: str) -> type[Summary]:
    """The aisec :class:`Summary` type named ``module:qualname`` (a checkpoint's ``summary_type``); another
    package's name, or a name that is not a summary type, is a :class:`DataError` (nothing else is imported)."""
    module, _, name = ref.partition(":")
    if module != "aisec" and not module.startswith("aisec."):
        raise DataError(f"checkpoint names summary type '{ref}', which is not aisec's; refusing to import it")
    obj: Any = importlib.import_module(module)
    for part in name.split("."):
        obj = getattr(obj, part, None)
    if not (isinstance(obj, type) and issubclass(obj, Summary)):
        raise DataError(f"checkpoint names '{ref}', which is not a Summary type")
    return obj


def _unarrays(npz: Any, prefix: str) -> dict[str, dict[str, np.ndarray]]:
    out: dict[str, dict[str, np.ndarray]] = {}
    for name in npz.files:
        kind, key, col, how = name.split("|")
        if kind != prefix:
            continue
        a = npz[name]
        out.setdefault(key, {})[col] = a.astype(object) if how == "object" else a
    return out


def load_checkpoints(out_dir: Path) -> list[Checkpoint]:
    """Every whole checkpoint in ``out_dir``, in check order (half-written ``.tmp`` files are ignored)."""
    folder = out_dir / CHECKPOINTS
    if not folder.is_dir():
        return []
    found: list[Checkpoint] = []
    for path in sorted(folder.glob("*.json")):
        npz_path = path.with_suffix(".npz")
        if not npz_path.is_file():
            continue  # the json is written last; without its arrays it is not a checkpoint
        try:
            doc = json.loads(path.read_text(encoding="utf-8"))
            if doc.get("format") != FORMAT:
                raise DataError(f"checkpoint format {doc.get('format')!r}, expected {FORMAT}")
            summary = summary_class(doc["summary_type"]).model_validate(doc["summary"])
            with np.load(npz_path, allow_pickle=False) as npz:
                tables, images = _unarrays(npz, "tables"), _unarrays(npz, "images")
            result = Result(
                check=doc["check"], measurements=[Measurement.model_validate(m) for m in doc["measurements"]],
                params=doc["params"], summary=summary, tables=tables, images=images,
                warnings=list(doc["warnings"]), seconds=float(doc["seconds"]), threats=tuple(doc["threats"]),
            )
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise DataError(f"checkpoint {path} cannot be read: {exc}") from exc
        found.append(Checkpoint(index=int(doc["index"]), result=result, rng=doc["rng"]))
    return found


# -- steps inside a check ---------------------------------------------------------------------------
#
# A long check (robustness: one attack after another) may also keep each finished step, so a run
# killed in the middle of it resumes at the next step rather than at the check's start. The runner
# says where a check's steps go (:func:`steps_in`); a check asks :func:`load_step` before a step and
# calls :func:`save_step` after it. Outside a runner's folder both do nothing.

_STEPS: ContextVar[Path | None] = ContextVar("aisec_checkpoint_steps", default=None)


@contextmanager
def steps_in(folder: Path | None) -> Iterator[None]:
    """Keep the steps of the check run inside the block in ``folder`` (None: keep nothing)."""
    token = _STEPS.set(folder)
    try:
        yield
    finally:
        _STEPS.reset(token)


def save_step(name: str, doc: dict[str, Any], arrays: dict[str, np.ndarray]) -> None:
    """Keep one finished step (``doc`` JSON-able, ``arrays`` plain numeric/bool arrays) and the random
    state after it, atomically; a no-op outside :func:`steps_in`."""
    folder = _STEPS.get()
    if folder is None:
        return
    folder.mkdir(parents=True, exist_ok=True)
    tmp_npz = folder / f"{name}.npz.tmp"
    with tmp_npz.open("wb") as fh:
        np.savez(fh, **arrays)  # type: ignore[arg-type]  # numpy's stub wants positional arrays
    tmp_npz.replace(folder / f"{name}.npz")
    tmp = folder / f"{name}.json.tmp"
    tmp.write_text(json.dumps({"format": FORMAT, "doc": _plain(doc), "rng": capture_rng()}), encoding="utf-8")
    tmp.replace(folder / f"{name}.json")


def load_step(name: str) -> tuple[dict[str, Any], dict[str, np.ndarray]] | None:
    """A step kept by :func:`save_step` (its doc and arrays, the random state after it restored), or None."""
    folder = _STEPS.get()
    if folder is None:
        return None
    js, npz_path = folder / f"{name}.json", folder / f"{name}.npz"
    if not (js.is_file() and npz_path.is_file()):
        return None
    try:
        saved = json.loads(js.read_text(encoding="utf-8"))
        with np.load(npz_path, allow_pickle=False) as npz:
            arrays = {k: npz[k] for k in npz.files}
    except (OSError, ValueError) as exc:
        raise DataError(f"checkpoint step {js} cannot be read: {exc}") from exc
    restore_rng(saved["rng"])
    return saved["doc"], arrays
