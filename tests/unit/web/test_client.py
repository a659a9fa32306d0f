"""AisecClient against a real uvicorn server (HTTP on a loopback port, a worker process, a temp store): a digits
run from creation to verified bundle, and a pickled model upload refused at run time unless the server opts in."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

pytest.importorskip("fastapi")
pytest.importorskip("uvicorn")

from tests.live_server import Server

from aisec.web.app import create_app
from aisec.web.client import AisecClient, ServeError
from aisec.web.settings import ServeSettings

TOKEN = "c" * 32
TINY = {"task": "image", "dataset": "digits", "split": "test", "model": "digits-cnn", "seed": 0,
        "checks": {"robustness": {"attacks": ["fgsm"], "eps": [0.1], "samples": 32}}}


def _settings(tmp: Path, **kw: object) -> ServeSettings:
    return ServeSettings(token=TOKEN, store_url=f"sqlite:///{tmp / 'ev.db'}", work_dir=tmp / "work", **kw)


def test_client_run_to_verified_bundle(tmp_path: Path) -> None:
    from click.testing import CliRunner

    from aisec.cli.main import main

    with Server(create_app(_settings(tmp_path))) as s, AisecClient(s.url, TOKEN) as c:
        assert c.health()
        assert "digits-cnn" in c.catalogue()["tasks"]["image"]["models"]
        assert "robustness:" in c.preview(**TINY)["plan_yaml"]
        with pytest.raises(ServeError, match=r"422.*server paths are not accepted"):
            c.create_run(**{**TINY, "model": "/etc/passwd"})
        with AisecClient(s.url, "x" * 32) as stranger, pytest.raises(ServeError, match="401"):
            stranger.runs()
        rid = c.create_run(**TINY)
        events = list(c.events(rid))
        assert events[-1][0] == "done" and any(e == "progress" for e, _ in events)
        info = c.wait(rid)
        assert info["status"] == "complete", info
        assert c.result(rid)["run_id"] == rid
        assert "<html" in c.report(rid).lower()
        assert rid in [r["id"] for r in c.runs()]
        ev = c.evidence(run=rid)
        assert ev and {e["run_id"] for e in ev} == {rid}
        assert c.verify()["ok"] is True
        bundle = tmp_path / "bundle.jsonl"
        bundle.write_bytes(c.bundle(rid))
        assert c.compare(rid)["rows"]
        assert c.leaderboard() == []
    # the bundle the server sent verifies offline, and an edited copy does not
    res = CliRunner().invoke(main, ["evidence", "verify", "--bundle", str(bundle),
                                    "--store", f"sqlite:///{tmp_path / 'other.db'}"])
    assert res.exit_code == 0, res.output
    lines = bundle.read_text().splitlines()
    i = next(k for k, ln in enumerate(lines) if '"record"' in ln and '\\"value\\":' in ln)
    rec = json.loads(lines[i])
    rec["record"]["body"] = re.sub(r'"value":[-0-9.e]+', '"value":0.123', rec["record"]["body"], count=1)
    lines[i] = json.dumps(rec)
    bundle.write_text("\n".join(lines) + "\n")
    res = CliRunner().invoke(main, ["evidence", "verify", "--bundle", str(bundle),
                                    "--store", f"sqlite:///{tmp_path / 'other.db'}"])
    assert res.exit_code != 0


def _pickled_model(tmp: Path) -> Path:
    """A scikit-learn logistic regression fitted on aisec's breast-cancer rows, pickled with joblib."""
    import joblib
    from sklearn.linear_model import LogisticRegression

    from aisec.data.loading import load_dataset

    ds = load_dataset("breast-cancer", split="train")
    x = ds.x.reshape(len(ds.x), -1).numpy()
    joblib.dump(LogisticRegression(max_iter=2000).fit(x, ds.y.numpy()), tmp / "lr.pkl")
    return tmp / "lr.pkl"


@pytest.mark.parametrize("trust", [False, True])
def test_pickle_upload_refused_unless_server_opts_in(tmp_path: Path, trust: bool) -> None:
    plan = {"task": "tabular", "dataset": "breast-cancer", "split": "test", "seed": 0,
            "checks": {"robustness": {"attacks": ["square"], "eps": [0.1], "samples": 16}}}
    with Server(create_app(_settings(tmp_path, trust_model_code=trust))) as s, AisecClient(s.url, TOKEN) as c:
        ref = c.upload(_pickled_model(tmp_path), "model")
        info = c.wait(c.create_run(**plan, model=ref), timeout=240)
    if trust:
        assert info["status"] == "complete", info
        assert info["summary"]["checks"]["robustness"]
    else:
        assert info["status"] == "failed"
        assert "pickle" in info["error"] and "--trust-model-code" in info["error"]
