"""AisecClient: a small Python client over the public API of ``aisec serve`` (httpx)."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Literal

import httpx

from aisec.core.errors import AisecError


class ServeError(AisecError):
    """The server refused a request (the message is its one-line reason)."""


class AisecClient:
    def __init__(self, base_url: str, token: str, *, timeout: float = 30.0,
                 transport: httpx.BaseTransport | None = None) -> None:
        self.http = httpx.Client(base_url=base_url.rstrip("/") + "/api/v1", timeout=timeout, transport=transport,
                                 headers={"Authorization": f"Bearer {token}"})

    def _json(self, method: str, path: str, **kw: Any) -> Any:
        r = self.http.request(method, path, **kw)
        if r.status_code >= 400:
            try:
                detail = r.json().get("detail")
            except ValueError:
                detail = r.text
            raise ServeError(f"{method} {path}: {r.status_code} {detail}")
        return r.json()

    def _bytes(self, path: str) -> bytes:
        r = self.http.get(path)
        if r.status_code >= 400:
            raise ServeError(f"GET {path}: {r.status_code} {r.text[:200]}")
        return r.content

    def __enter__(self) -> AisecClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def health(self) -> dict[str, Any]:
        out: dict[str, Any] = self._json("GET", "/health")
        return out

    def catalogue(self) -> dict[str, Any]:
        out: dict[str, Any] = self._json("GET", "/catalogue")
        return out

    def preview(self, **body: Any) -> dict[str, Any]:
        out: dict[str, Any] = self._json("POST", "/plans/preview", json=body)
        return out

    def create_run(self, **body: Any) -> str:
        return str(self._json("POST", "/runs", json=body)["run_id"])

    def runs(self) -> list[dict[str, Any]]:
        out: list[dict[str, Any]] = self._json("GET", "/runs")
        return out

    def run(self, run_id: str) -> dict[str, Any]:
        out: dict[str, Any] = self._json("GET", f"/runs/{run_id}")
        return out

    def wait(self, run_id: str, timeout: float = 300.0) -> dict[str, Any]:
        """Poll until the run ends (complete, failed, cancelled, interrupted); its detail."""
        end = time.monotonic() + timeout
        while True:
            info = self.run(run_id)
            if info["status"] in ("complete", "failed", "cancelled", "interrupted"):
                return info
            if time.monotonic() > end:
                raise ServeError(f"run {run_id} still {info['status']} after {timeout:g} s")
            time.sleep(0.5)

    def events(self, run_id: str) -> Iterator[tuple[str, dict[str, Any]]]:
        """(event, data) pairs of the run's SSE stream, history first, until ``done``."""
        with self.http.stream("GET", f"/runs/{run_id}/events", timeout=None) as r:
            event = "message"
            for line in r.iter_lines():
                if line.startswith("event:"):
                    event = line.partition(":")[2].strip()
                elif line.startswith("data:"):
                    yield event, json.loads(line.partition(":")[2].strip())
                    if event == "done":
                        return

    def cancel(self, run_id: str) -> dict[str, Any]:
        out: dict[str, Any] = self._json("POST", f"/runs/{run_id}/cancel")
        return out

    def rerun(self, run_id: str) -> str:
        return str(self._json("POST", f"/runs/{run_id}/rerun")["run_id"])

    def report(self, run_id: str) -> str:
        return self._bytes(f"/runs/{run_id}/report").decode("utf-8")

    def result(self, run_id: str) -> dict[str, Any]:
        """The run's ``result.json`` (what ``aisec assess`` writes)."""
        out: dict[str, Any] = json.loads(self._bytes(f"/runs/{run_id}/result"))
        return out

    def bundle(self, run_id: str) -> bytes:
        """The run's evidence as a signed JSONL bundle (``aisec evidence verify --bundle FILE`` checks it)."""
        return self._bytes(f"/runs/{run_id}/bundle")

    def upload(self, path: str | Path, kind: Literal["model", "dataset"]) -> str:
        """Send a model or dataset file; the ``upload:<id>`` reference a run's ``model`` or ``dataset`` takes."""
        p = Path(path)
        with p.open("rb") as fh:
            out = self._json("POST", "/uploads", data={"kind": kind}, files={"file": (p.name, fh)})
        return f"upload:{out['upload_id']}"

    def leaderboard(self) -> list[dict[str, Any]]:
        """The rows of every campaign leaderboard the server was given (``aisec serve --campaigns DIR``)."""
        out: list[dict[str, Any]] = self._json("GET", "/leaderboard")["rows"]
        return out

    def export(self) -> bytes:
        """Every evidence record of the server's store as one bundle."""
        return self._bytes("/evidence/export")

    def compare(self, *run_ids: str) -> dict[str, Any]:
        out: dict[str, Any] = self._json("GET", "/compare", params=[("runs", r) for r in run_ids])
        return out

    def evidence(self, **filters: Any) -> list[dict[str, Any]]:
        out: list[dict[str, Any]] = self._json("GET", "/evidence", params=filters)
        return out

    def verify(self) -> dict[str, Any]:
        out: dict[str, Any] = self._json("POST", "/evidence/verify")
        return out

    def close(self) -> None:
        self.http.close()
