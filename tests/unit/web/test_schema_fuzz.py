"""API fuzzing with schemathesis against the app's own ``/openapi.json``: no route answers a 5xx, whatever
the generated path, query and body (authenticated, so the handlers themselves are reached).

Run creation and uploads are left out: each generated case would start a worker process or write files,
and their validation is covered by test_api (422, 413, 415, 429)."""

from __future__ import annotations

import tempfile
from pathlib import Path

import pytest

schemathesis = pytest.importorskip("schemathesis")
from hypothesis import HealthCheck, settings  # noqa: E402

from aisec.web.app import create_app  # noqa: E402
from aisec.web.settings import ServeSettings  # noqa: E402

TOKEN = "fuzz-token-0123456789abcdef"
_DIR = Path(tempfile.mkdtemp(prefix="aisec-fuzz-"))
APP = create_app(ServeSettings(token=TOKEN, store_url=f"sqlite:///{_DIR / 'ev.db'}", work_dir=_DIR / "work"))
schema = schemathesis.openapi.from_asgi("/openapi.json", APP, headers={"Authorization": f"Bearer {TOKEN}"}).exclude(
    path_regex=r"^/api/v1/(runs$|uploads|runs/\{[^}]+\}/(rerun|events))")


@schema.parametrize()
@settings(max_examples=15, deadline=None, suppress_health_check=list(HealthCheck))
def test_no_server_error(case: object) -> None:
    resp = case.call(headers={"Authorization": f"Bearer {TOKEN}"})  # type: ignore[attr-defined]
    assert resp.status_code < 500, f"{case} -> {resp.status_code}: {resp.text[:300]}"
