"""Evidence: one frozen record per measured metric, with the provenance to re-run it.

A record says what was measured (metric id, value, unit, direction, interval, sample count), on
what (model sha256, dataset digest), how (check, parameters, seed) and with what (library versions,
device). Per-sample data sits in a file next to the evidence; the record keeps its path and sha256
so the pointer cannot silently drift. :meth:`Evidence.canonical_json` is the byte string a store
hashes and signs.
"""

from __future__ import annotations

import hashlib
import json
import platform
import sys
import uuid
from collections.abc import Iterable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from aisec.core.stats import Interval

DEFAULT_TOE = "00000000-0000-0000-0000-000000000000"


class Resource(BaseModel):
    """The model and data a measurement is about."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    model_name: str
    model_sha256: str
    model_access: str
    dataset_name: str
    dataset_digest: str
    dataset_source: str = ""


class Environment(BaseModel):
    """Library versions and hardware a measurement ran on."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    aisec: str
    torch: str
    numpy: str
    python: str
    platform: str
    device: str

    @classmethod
    def capture(cls, device: str) -> Environment:
        import numpy
        import torch

        from aisec.core.version import __version__

        dev = device
        if device.startswith("cuda") and torch.cuda.is_available():
            dev = f"{device} ({torch.cuda.get_device_name(torch.device(device))})"
        return cls(
            aisec=__version__,
            torch=torch.__version__,
            numpy=numpy.__version__,
            python=sys.version.split()[0],
            platform=platform.platform(),
            device=dev,
        )


class RawRef(BaseModel):
    """Pointer to per-sample data: a path relative to the evidence file and its sha256."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    path: str
    sha256: str
    rows: int


class Measurement(BaseModel):
    """One number a check measured, before provenance is attached."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    metric: str = Field(description="Dotted metric id, e.g. 'robustness.robust_accuracy'.")
    value: float = Field(allow_inf_nan=False)
    unit: str
    higher_is_better: bool
    interval: Interval | None = None
    sample_count: int
    parameters: dict[str, Any] = Field(default_factory=dict)
    raw_key: str | None = Field(default=None, description="Key of the per-sample table it summarises.")


class Evidence(BaseModel):
    """One measured metric with its provenance (frozen; the unit a store hashes and signs)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    id: str = Field(default_factory=lambda: str(uuid.uuid4()))
    timestamp: datetime = Field(default_factory=lambda: datetime.now(UTC))
    tool: str = "aisec"
    tool_version: str
    run_id: str
    target_of_evaluation_id: str = DEFAULT_TOE
    check: str
    metric: str
    value: float = Field(allow_inf_nan=False)
    unit: str
    higher_is_better: bool
    interval: Interval | None
    sample_count: int
    parameters: dict[str, Any]
    seed: int | None
    resource: Resource
    environment: Environment
    raw: RawRef | None = None
    threats: tuple[str, ...] = Field(default=(), description="MITRE ATLAS technique ids.")

    def canonical_json(self) -> bytes:
        """Deterministic JSON bytes (sorted keys, no spaces) for hashing and signing."""
        return json.dumps(self.model_dump(mode="json"), sort_keys=True, separators=(",", ":")).encode()

    def sha256(self) -> str:
        return hashlib.sha256(self.canonical_json()).hexdigest()


def write_jsonl(records: Iterable[Evidence], path: str | Path) -> Path:
    """Append records as JSON lines, flushing each so a crash keeps what was written."""
    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    with p.open("a", encoding="utf-8") as fh:
        for r in records:
            fh.write(r.model_dump_json() + "\n")
            fh.flush()
    return p


def read_jsonl(path: str | Path) -> list[Evidence]:
    """Read evidence records written by :func:`write_jsonl` (validating each)."""
    out = []
    with Path(path).open(encoding="utf-8") as fh:
        for line in fh:
            if line.strip():
                out.append(Evidence.model_validate_json(line))
    return out


def file_sha256(path: str | Path) -> str:
    h = hashlib.sha256()
    with Path(path).open("rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()
