"""Settings of ``aisec serve``: where it binds, its token, its store and work folder, and its limits."""

from __future__ import annotations

import ipaddress
import os
import secrets
from pathlib import Path

from pydantic import BaseModel, Field

from aisec.core.errors import ConfigError
from aisec.store.paths import data_dir, default_store_url

#: upload suffixes aisec's loaders read (models: torch, safetensors, ONNX, pickles, a zipped model folder such as a
#: Hugging Face ``save_pretrained`` folder; data: tables, texts, arrays)
UPLOAD_SUFFIXES = (".safetensors", ".pt", ".pth", ".onnx", ".pkl", ".joblib", ".zip", ".npz", ".csv", ".tsv",
                   ".jsonl")
#: model suffixes that hold pickles (refused at run time unless the server trusts model code)
PICKLE_SUFFIXES = (".pt", ".pth", ".pkl", ".joblib")


def _token() -> str:
    return os.environ.get("AISEC_SERVE_TOKEN") or secrets.token_urlsafe(32)


def _store() -> str:
    return default_store_url()


def _work() -> Path:
    return data_dir() / "serve"


class ServeSettings(BaseModel):
    """What a server instance may do; ``token`` is random per start unless given (or ``$AISEC_SERVE_TOKEN``)."""

    host: str = "127.0.0.1"
    port: int = Field(default=8000, ge=0, le=65535)
    token: str = Field(default_factory=_token, min_length=16)
    store_url: str = Field(default_factory=_store)
    work_dir: Path = Field(default_factory=_work)
    trust_model_code: bool = False
    max_upload_bytes: int = Field(default=200 * 1024 * 1024, ge=1)
    upload_suffixes: tuple[str, ...] = UPLOAD_SUFFIXES
    max_workers: int = Field(default=1, ge=1, le=2)
    runs_per_minute: int = Field(default=10, ge=1)
    allow_remote: bool = False
    allow_outside_paths: bool = False
    campaigns_dir: Path | None = None
    """Campaign folders (``aisec campaign run`` outputs) whose leaderboards the compare page shows."""

    def check_host(self) -> None:
        """Refuse a non-loopback bind unless ``allow_remote`` (the token then travels over the network)."""
        if not self.allow_remote and not is_loopback(self.host):
            raise ConfigError(f"--host {self.host}: not a loopback address; give --allow-remote to serve other "
                              "machines (use TLS in front of it: the token travels in every request)")

    @property
    def runs_dir(self) -> Path:
        return self.work_dir / "runs"

    @property
    def uploads_dir(self) -> Path:
        return self.work_dir / "uploads"


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False
