"""aisec serve's API: auth on every route, CSRF, uploads, traversal, rate limit, and a real digits run in a worker."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest

pytest.importorskip("fastapi")
from fastapi.testclient import TestClient

from aisec.core.errors import ConfigError
from aisec.web.app import create_app
from aisec.web.settings import ServeSettings

TOKEN = "t" * 32
AUTH = {"Authorization": f"Bearer {TOKEN}"}
TINY = {"task": "image", "dataset": "digits", "split": "test", "model": "digits-cnn", "seed": 0,
        "checks": {"robustness": {"attacks": ["fgsm"], "eps": [0.1], "samples": 32}}}


def _settings(tmp: Path, **kw: object) -> ServeSettings:
    return ServeSettings(token=TOKEN, store_url=f"sqlite:///{tmp / 'ev.db'}", work_dir=tmp / "work", **kw)


@pytest.fixture
def client(tmp_path: Path):
    app = create_app(_settings(tmp_path, runs_per_minute=3))
    with TestClient(app) as c:
        yield c


def _routes(routes: list) -> list:
    """Every route, also those inside included routers (FastAPI keeps them behind a wrapper)."""
    out = []
    for r in routes:
        inner = getattr(r, "original_router", None)
        out += _routes(inner.routes) if inner is not None else [r]
    return out


def test_every_route_refuses_without_token(client: TestClient) -> None:
    checked = 0
    for route in _routes(client.app.routes):
        path = getattr(route, "path", "")
        for method in getattr(route, "methods", None) or {"GET"}:
            url = path.replace("{run_id}", "00000000-0000-0000-0000-000000000000").replace("{path:path}", "x") \
                .replace("{evidence_id}", "x").replace("{path}", "x")
            r = client.request(method, url)
            assert r.status_code in (401, 403), (method, url, r.status_code)
            checked += 1
    assert checked >= 20
    assert client.get("/api/v1/health", headers={"Authorization": "Bearer wrong" + TOKEN}).status_code == 401


def test_cookie_login_and_csrf(client: TestClient) -> None:
    r = client.get("/api/v1/health?token=" + TOKEN, follow_redirects=False)
    assert r.status_code == 303 and "token" not in r.headers["location"]
    assert "httponly" in r.headers.get_list("set-cookie")[0].lower()
    assert client.get("/api/v1/health").status_code == 200  # the cookie now
    body = {"dataset": "digits", "model": "digits-cnn"}
    assert client.post("/api/v1/plans/preview", json=body).status_code == 403
    csrf = client.cookies["aisec_csrf"]
    assert client.post("/api/v1/plans/preview", json=body, headers={"X-CSRF-Token": csrf}).status_code == 200
    assert client.post("/api/v1/plans/preview", json=body, headers={"X-CSRF-Token": "no"}).status_code == 403


def test_preview_loads_back_as_plan(client: TestClient, tmp_path: Path) -> None:
    from aisec.core.plan import Plan

    r = client.post("/api/v1/plans/preview", json=TINY, headers=AUTH)
    assert r.status_code == 200, r.text
    (tmp_path / "plan.yaml").write_text(r.json()["plan_yaml"])
    plan = Plan.from_yaml(tmp_path / "plan.yaml")
    assert plan.model.path == "digits-cnn" and plan.checks["robustness"]["samples"] == 32
    assert r.json()["command"].startswith("aisec assess --plan")
    simple = client.post("/api/v1/plans/preview", json={"dataset": "digits", "model": "digits-cnn"}, headers=AUTH)
    assert simple.json()["command"] == "aisec assess -m digits-cnn -d digits -t robustness --seed 0"
    bad = client.post("/api/v1/plans/preview", json={"dataset": "/etc/passwd", "model": "digits-cnn"}, headers=AUTH)
    assert bad.status_code == 422 and "server paths" in bad.text
    bad = client.post("/api/v1/plans/preview", json={**TINY, "checks": {"nope": {}}}, headers=AUTH)
    assert bad.status_code == 422


def test_catalogue_lists_checks_with_params(client: TestClient) -> None:
    cat = client.get("/api/v1/catalogue", headers=AUTH).json()
    names = {c["name"]: c for c in cat["checks"]}
    assert "robustness" in names and names["robustness"]["params"]
    assert "digits-cnn" in cat["tasks"]["image"]["models"]


def test_uploads_limits(tmp_path: Path) -> None:
    app = create_app(_settings(tmp_path, max_upload_bytes=100))
    with TestClient(app) as c:
        ok = c.post("/api/v1/uploads", data={"kind": "dataset"}, files={"file": ("../../evil.csv", b"a,b\n")},
                    headers=AUTH)
        assert ok.status_code == 200, ok.text
        up = ok.json()
        assert up["name"] == "evil.csv"
        assert (tmp_path / "work" / "uploads" / up["upload_id"] / "evil.csv").is_file()
        assert c.post("/api/v1/uploads", data={"kind": "model"}, files={"file": ("m.exe", b"x")},
                      headers=AUTH).status_code == 415
        assert c.post("/api/v1/uploads", data={"kind": "model"}, files={"file": ("m.pt", b"x" * 101)},
                      headers=AUTH).status_code == 413


def test_non_loopback_host_refused() -> None:
    with pytest.raises(ConfigError, match="allow-remote"):
        ServeSettings(host="0.0.0.0", token=TOKEN).check_host()
    ServeSettings(host="0.0.0.0", token=TOKEN, allow_remote=True).check_host()


def _wait(c: TestClient, rid: str, timeout: float = 240) -> dict:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        info = c.get(f"/api/v1/runs/{rid}", headers=AUTH).json()
        if info["status"] in ("complete", "failed", "cancelled", "interrupted"):
            return info
        time.sleep(0.5)
    raise AssertionError(f"run {rid} did not end")


def test_digits_run_in_worker_then_restart(tmp_path: Path) -> None:
    settings = _settings(tmp_path, runs_per_minute=2)
    with TestClient(create_app(settings)) as c:
        rid = c.post("/api/v1/runs", json=TINY, headers=AUTH).json()["run_id"]
        with c.stream("GET", f"/api/v1/runs/{rid}/events", headers=AUTH) as r:
            events = [ln for ln in r.iter_lines() if ln.startswith("event:")]
        assert "event: progress" in events and events[-1] == "event: done"
        info = _wait(c, rid)
        assert info["status"] == "complete", info
        assert info["progress"] and info["summary"]
        assert "<html" in c.get(f"/api/v1/runs/{rid}/report", headers=AUTH).text.lower()
        assert json.loads(c.get(f"/api/v1/runs/{rid}/result", headers=AUTH).content)["run_id"] == rid
        assert c.get(f"/api/v1/runs/{rid}/artifacts/../../ev.db", headers=AUTH).status_code == 404
        assert c.get(f"/api/v1/runs/{rid}/artifacts/%2e%2e/request.yaml", headers=AUTH).status_code == 404
        bundle = c.get(f"/api/v1/runs/{rid}/bundle", headers=AUTH)
        assert bundle.status_code == 200 and rid in bundle.text
        ev = c.get("/api/v1/evidence", params={"run": rid}, headers=AUTH).json()
        assert ev and all(e["run_id"] == rid for e in ev)
        assert c.post("/api/v1/evidence/verify", headers=AUTH).json()["ok"] is True
        # re-run, then cancel it
        rid2 = c.post(f"/api/v1/runs/{rid}/rerun", headers=AUTH).json()["run_id"]
        assert c.post(f"/api/v1/runs/{rid2}/cancel", headers=AUTH).json()["status"] == "cancelled"
        cmp = c.get("/api/v1/compare", params=[("runs", rid), ("runs", rid2)], headers=AUTH).json()
        assert set(cmp["runs"]) == {rid, rid2}
    with TestClient(create_app(settings)) as c2:  # a new server on the same store and work folder
        listed = {r["id"]: r for r in c2.get("/api/v1/runs", headers=AUTH).json()}
        assert listed[rid]["status"] == "complete" and listed[rid2]["status"] == "cancelled"
        assert c2.get(f"/api/v1/runs/{rid}/report", headers=AUTH).status_code == 200


def test_rate_limit_on_run_creation(tmp_path: Path) -> None:
    with TestClient(create_app(_settings(tmp_path, runs_per_minute=1))) as c:
        rid = c.post("/api/v1/runs", json=TINY, headers=AUTH).json()["run_id"]
        limited = c.post("/api/v1/runs", json=TINY, headers=AUTH)
        assert limited.status_code == 429 and int(limited.headers["Retry-After"]) > 0
        assert c.post(f"/api/v1/runs/{rid}/cancel", headers=AUTH).json()["status"] == "cancelled"


def test_leaderboard_empty_without_campaigns(client: TestClient) -> None:
    assert client.get("/api/v1/leaderboard", headers=AUTH).json() == {"rows": []}


def test_leaderboard_shows_a_real_campaign(tmp_path: Path, aisec_cache: str) -> None:
    from aisec.campaigns.campaign import run_campaign
    from aisec.campaigns.leaderboard import build_leaderboard
    from aisec.campaigns.spec import Campaign

    robustness = {"attacks": ["fgsm"], "eps": [0.05], "samples": 16, "clever": {"enabled": False},
                  "reliability": {"enabled": False}, "examples": 0, "save_adversarial": 0}
    spec = {"name": "tiny", "models": ["digits-cnn"], "defences": [None, "gaussian-blur:sigma=0.5"],
            "datasets": ["digits"], "checks": {"robustness": robustness}}
    run_campaign(Campaign.parse(spec), base_dir=tmp_path / "campaigns")  # its own store, in its folder
    with TestClient(create_app(_settings(tmp_path, campaigns_dir=tmp_path / "campaigns"))) as c:
        rows = c.get("/api/v1/leaderboard", headers=AUTH).json()["rows"]
    board = build_leaderboard(tmp_path / "campaigns" / "tiny")
    expected = [(r.name, r.rank, r.best_known_robust_accuracy) for t in board.tables for r in t.rows]
    assert len(expected) == 2
    assert [(r["name"], r["rank"], r["best_known_robust_accuracy"]) for r in rows] == expected
    assert all(r["campaign"] == "tiny" and r["best_known_robust_accuracy"] is not None for r in rows)
