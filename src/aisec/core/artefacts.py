"""Artefacts of a run: the files a check produces besides its numbers, as the seed tools wrote them.

Adversarial examples (an ``.npz`` per attack and a PNG per sample), explanation images, the poisoned
training set, the extracted surrogate model. A check never writes files (it may run without a run
folder): it returns :class:`Artefact` values — a path relative to ``artefacts/``, the bytes, a kind and a
sentence — on its :class:`~aisec.core.check.Result`. The run's writer (:func:`write_artefacts`, called by
:func:`aisec.api.record_result`) puts them under ``OUT/artefacts/`` and lists each one with its sha256 in
``result.json`` (``artefacts``, see :class:`ArtefactRef`); the evidence store keeps every file under
``artefacts/`` as one of the run's artifacts, so ``aisec evidence verify`` notices an edited or removed one.

The encoders here are small and dependency-light: ``.npz`` through numpy (never object arrays, so
``np.load(allow_pickle=False)`` reads every file), PNG through Pillow (a dependency of aisec and of
matplotlib), with no timestamps, so the same run writes the same bytes.
"""

from __future__ import annotations

import csv
import io
import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any

import numpy as np
from pydantic import BaseModel, ConfigDict

from aisec.core.evidence import file_sha256

#: The run folder's sub-folder that holds every artefact.
ARTEFACTS = "artefacts"
#: The smallest side, in pixels, of one panel of an image artefact (small inputs are scaled up, nearest).
MIN_PANEL = 96
_SAFE_PART = re.compile(r"[A-Za-z0-9][A-Za-z0-9._+=-]{0,120}")


@dataclass(frozen=True)
class Artefact:
    """One file a check produced: ``path`` relative to ``artefacts/`` (``/``-separated), its bytes, its
    ``kind`` (``adversarial-examples``, ``adversarial-image``, ``explanation-image``, ``poisoned-data``,
    ``surrogate-model``, ``spade-image``) and what it holds, in a sentence."""

    path: str
    data: bytes
    kind: str
    description: str

    def __post_init__(self) -> None:
        safe_relpath(self.path)

    def save(self, folder: str | Path) -> Path:
        """Write the bytes to ``folder/path`` (atomically) and return the file; for use without a run folder."""
        dest = Path(folder) / Path(*PurePosixPath(self.path).parts)
        dest.parent.mkdir(parents=True, exist_ok=True)
        tmp = dest.with_name(dest.name + ".tmp")
        tmp.write_bytes(self.data)
        tmp.replace(dest)
        return dest


class ArtefactRef(BaseModel):
    """An artefact as written and listed in ``result.json``: its path in the run folder and its sha256."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    path: str
    sha256: str
    bytes: int
    check: str
    kind: str
    description: str


def safe_relpath(path: str) -> str:
    """``path`` if it is a relative ``/``-path of plain names (no ``..``, no absolute or hidden parts)."""
    parts = path.split("/")
    if not parts or not all(_SAFE_PART.fullmatch(p) for p in parts):
        raise ValueError(f"artefact path {path!r} must be a relative path of plain file names")
    return path


def safe_name(text: str) -> str:
    """``text`` with every character a file name should not hold replaced by ``_``."""
    out = re.sub(r"[^A-Za-z0-9._+=-]", "_", text).lstrip("._-") or "x"
    return out[:120]


def eps_name(eps: float) -> str:
    """An eps for a file name: ``8_255`` for a multiple of 1/255 that ``%g`` would spell long, else ``0.1``."""
    plain = f"{eps:g}"
    k = eps * 255
    if len(plain.lstrip("0.")) > 3 and eps > 0 and abs(k - round(k)) < 1e-6 * max(1.0, k):
        return f"{round(k)}_255"
    return plain


def write_artefacts(out_dir: Path, check: str, artefacts: Sequence[Artefact]) -> list[ArtefactRef]:
    """Write ``artefacts`` under ``out_dir/artefacts/`` (each atomically) and return their references."""
    refs = []
    root = out_dir / ARTEFACTS
    for a in artefacts:
        dest = a.save(root)
        refs.append(ArtefactRef(path=f"{ARTEFACTS}/{a.path}", sha256=file_sha256(dest), bytes=len(a.data),
                                check=check, kind=a.kind, description=a.description))
    return refs


# -- encoders -------------------------------------------------------------------------------------


def npz_bytes(arrays: Mapping[str, object]) -> bytes:
    """``arrays`` as an uncompressed ``.npz`` (strings become unicode arrays; object arrays are refused, so
    the file loads with ``allow_pickle=False``)."""
    plain: dict[str, np.ndarray] = {}
    for k, v in arrays.items():
        a = np.asarray(v)
        if a.dtype == object:
            raise TypeError(f"artefact array {k!r} holds Python objects; give numbers or strings")
        plain[k] = a
    buf = io.BytesIO()
    np.savez(buf, **plain)  # type: ignore[arg-type]  # numpy's stub wants positional arrays
    return buf.getvalue()


def csv_bytes(table: Mapping[str, Sequence[Any] | np.ndarray]) -> bytes:
    """``table`` (column name -> equal-length values) as UTF-8 CSV, every cell through :func:`csv_cell`."""
    cols = list(table)
    n = len(next(iter(table.values()))) if table else 0
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow([safe_text_cell(str(c)) for c in cols])
    for i in range(n):
        w.writerow([csv_cell(table[c][i]) for c in cols])
    return buf.getvalue().encode("utf-8")


#: First characters that make a spreadsheet read a text cell as a formula (CSV/formula injection).
_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def csv_cell(v: Any) -> Any:
    """One CSV cell: booleans as 0/1, floats to 6 significant digits (NaN/inf empty), numbers as
    numbers, and text guarded by :func:`safe_text_cell`."""
    if isinstance(v, (np.bool_, bool)):
        return int(v)
    if isinstance(v, (np.floating, float)):
        return "" if not np.isfinite(v) else f"{float(v):.6g}"
    v = v.item() if hasattr(v, "item") else v
    return safe_text_cell(v) if isinstance(v, str) else v


def safe_text_cell(text: str) -> str:
    """``text`` with a leading ``'`` when a spreadsheet would run it as a formula (it starts with
    ``= + - @``, a tab or a carriage return; OWASP "CSV Injection"), unless it is a plain number
    (``-0.5`` stays a number). Class names and file names in ``samples/*.csv`` come from user data."""
    if not text.startswith(_FORMULA_START):
        return text
    if text[0] in "+-" and text == text.strip():
        try:
            float(text)
        except ValueError:
            pass
        else:
            return text
    return "'" + text


def png_bytes(rgb: np.ndarray) -> bytes:
    """An ``(H, W, 3)`` uint8 image as PNG bytes (no metadata, so equal pixels give equal bytes)."""
    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(np.ascontiguousarray(rgb, dtype=np.uint8), mode="RGB").save(buf, format="PNG", optimize=False)
    return buf.getvalue()


def is_image(shape: Sequence[int]) -> bool:
    """Whether one sample of this shape is an image: ``(C, H, W)`` with 1 or 3 channels and H, W ≥ 2."""
    return len(shape) == 3 and shape[0] in (1, 3) and min(shape[1:]) >= 2


def to_rgb(img: np.ndarray, value_range: tuple[float, float] = (0.0, 1.0)) -> np.ndarray:
    """A ``(C, H, W)`` sample (1 or 3 channels) in ``value_range`` as an ``(H, W, 3)`` uint8 image."""
    lo, hi = value_range
    a = (np.asarray(img, dtype=np.float64) - lo) / max(hi - lo, 1e-12)
    a = np.clip(np.nan_to_num(a), 0.0, 1.0)
    hwc = np.transpose(a, (1, 2, 0))
    if hwc.shape[-1] == 1:
        hwc = np.repeat(hwc, 3, axis=-1)
    out: np.ndarray = np.rint(hwc * 255).astype(np.uint8)
    return out


def amplified_difference(clean: np.ndarray, adv: np.ndarray) -> np.ndarray:
    """``adv - clean`` scaled so its largest absolute value reaches the range: mid-grey is no change,
    white the largest increase, black the largest decrease (``(C, H, W)`` in [0, 1])."""
    d = np.asarray(adv, dtype=np.float64) - np.asarray(clean, dtype=np.float64)
    m = float(np.abs(d).max()) if d.size else 0.0
    out: np.ndarray = 0.5 + d / (2 * m) if m > 0 else np.full_like(d, 0.5)
    return out


def heat_overlay(rgb: np.ndarray, heat: np.ndarray, alpha: float = 0.6) -> np.ndarray:
    """``rgb`` (uint8, H×W×3) in grey with ``heat`` (H×W) over it: red where positive, blue where negative,
    opacity proportional to ``|heat| / max |heat|``."""
    grey = rgb.astype(np.float64).mean(-1, keepdims=True).repeat(3, -1)
    h = np.nan_to_num(np.asarray(heat, dtype=np.float64))
    m = float(np.abs(h).max()) if h.size else 0.0
    w = (np.abs(h) / m if m > 0 else np.zeros_like(h))[..., None] * alpha
    colour = np.where((h >= 0)[..., None], np.array([220.0, 30.0, 30.0]), np.array([30.0, 60.0, 220.0]))
    out: np.ndarray = np.rint(grey * (1 - w) + colour * w).astype(np.uint8)
    return out


def side_by_side(panels: Sequence[np.ndarray], *, gap: int = 4) -> np.ndarray:
    """Equal-sized ``(H, W, 3)`` uint8 panels in a row, scaled up (nearest) to at least :data:`MIN_PANEL`
    pixels a side, with a white gap between them."""
    h, w = panels[0].shape[:2]
    f = max(1, math.ceil(MIN_PANEL / max(h, w)))
    big = [np.repeat(np.repeat(p, f, axis=0), f, axis=1) for p in panels]
    white = np.full((h * f, gap, 3), 255, dtype=np.uint8)
    row: list[np.ndarray] = []
    for i, p in enumerate(big):
        if i:
            row.append(white)
        row.append(p)
    return np.concatenate(row, axis=1)


__all__ = ["ARTEFACTS", "Artefact", "ArtefactRef", "amplified_difference", "eps_name", "heat_overlay", "is_image",
           "npz_bytes", "png_bytes", "safe_name", "side_by_side", "to_rgb", "write_artefacts"]
