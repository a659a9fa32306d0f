"""AisecClient: a small Python client over the public API of ``aisec serve`` (httpx)."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from typing import Any

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

    def bundle(self, run_id: str) -> bytes:
        return self._bytes(f"/runs/{run_id}/bundle")

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
