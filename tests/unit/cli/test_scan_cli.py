"""``aisec scan`` end to end on a pickled scikit-learn model and a CSV table, with constraints."""

from __future__ import annotations

import json

import numpy as np
import pytest
from click.testing import CliRunner

from aisec.cli.main import main
from aisec.core.constraints import TabularConstraints
from aisec.core.evidence import read_jsonl


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    """bc.csv (10 breast-cancer features + integer radius + one-hot texture tercile), lr.pkl trained
    on the table's min-max scaled inputs, and a constraints file with an immutable feature."""
    import joblib
    from sklearn.datasets import load_breast_cancer
    from sklearn.linear_model import LogisticRegression

    d = load_breast_cancer()
    tex = np.eye(3)[np.digitize(d.data[:, 1], np.quantile(d.data[:, 1], [1 / 3, 2 / 3]))]
    raw = np.column_stack([d.data[:, :10], np.round(d.data[:, 0]), tex])
    names = [n.replace(" ", "_") for n in d.feature_names[:10]] + ["radius_int", "tex_lo", "tex_mid", "tex_hi"]
    root = tmp_path_factory.mktemp("scan")
    lines = [",".join([*names, "label"])] + [",".join([*(f"{v:g}" for v in r), str(t)]) for r, t in zip(raw, d.target,
                                                                                                     strict=True)]
    (root / "bc.csv").write_text("\n".join(lines) + "\n")
    lo, hi = raw.min(0), raw.max(0)
    model = LogisticRegression(max_iter=3000).fit((raw - lo) / (hi - lo), d.target)
    joblib.dump(model, root / "lr.pkl")
    (root / "c.yaml").write_text(
        f"num_features: {len(names)}\nfeature_names: [{', '.join(names)}]\n"
        "integer: [radius_int]\none_hot: [[tex_lo, tex_mid, tex_hi]]\nimmutable: [mean_radius, mean_texture]\n"
    )
    return root


def _scan(files, out, *extra):
    # lr.pkl was fitted on min-max scaled rows, which a pickled model does not get by default: declare it
    return CliRunner().invoke(main, ["scan", "-m", str(files / "lr.pkl"), "-d", str(files / "bc.csv"),
                                     "--scale", "minmax", "--trust-model-code", "-c", "40", "-o", str(out), "-q",
                                     *extra])


def test_scan_end_to_end_with_constraints(files, tmp_path):
    res = _scan(files, tmp_path / "o", "--budget", "60", "--constraints", str(files / "c.yaml"), "--eps", "0.1,0.3")
    assert res.exit_code == 0, res.output
    for word in ("square", "simba", "hopskipjump", "boundary", "success %", "queries min/avg/max"):
        assert word in res.output
    doc = json.loads((tmp_path / "o" / "scan.json").read_text())
    assert doc["complete"] and doc["planned"] == len(doc["runs"]) == 6  # square, simba x 2 eps; hsj; boundary
    assert {r["attack"] for r in doc["rows"]} == {"square", "simba", "hopskipjump", "boundary"}
    assert all(r["violations"] == 0 and r["error"] is None for r in doc["runs"])
    assert all(3 <= r["queries_min"] <= r["queries_max"] <= 62 for r in doc["runs"])
    square = next(r for r in doc["rows"] if r["attack"] == "square")
    assert square["best_params"]["eps"] == 0.3 and square["best_score"] >= square["success_pct"]
    ev = read_jsonl(tmp_path / "o" / "evidence.jsonl")
    assert len(ev) == 6 and {e.metric for e in ev} == {"robustness.attack_success_rate"}
    assert ev[0].parameters["constraints_sha256"] == doc["constraints"]["sha256"]
    rates = sorted(r["success_rate"] for r in doc["runs"])
    assert rates == sorted(e.value for e in ev)
    # The constraints file it wrote is the one it used (here scaled to the table's [0, 1] inputs).
    used = TabularConstraints.load(tmp_path / "o" / "constraints.yaml")
    assert used.digest() == doc["constraints"]["sha256"] and used.scale is not None


def test_scan_infers_constraints_and_prints_json(files, tmp_path):
    res = _scan(files, tmp_path / "o", "--budget", "30", "-a", "simba", "--constraints", "infer", "--json")
    assert res.exit_code == 0, res.output
    doc = json.loads(res.output)
    assert doc["complete"] and "data ranges" in doc["constraints"]["source"]
    c = TabularConstraints.load(tmp_path / "o" / "constraints.yaml")
    assert c.integer == ("radius_int",) and c.one_hot == (("tex_lo", "tex_mid", "tex_hi"),)


class _DyingEndpoint:
    """A model whose 'endpoint' goes away after ``alive`` calls, as a server that dies mid-scan."""

    def __init__(self, model, alive):
        self.model, self.alive = model, alive

    def predict_proba(self, a):
        from aisec.targets.http import EndpointError

        self.alive -= 1
        if self.alive < 0:
            raise EndpointError("connection refused (http://127.0.0.1:9/v2/models/m/infer)")
        return self.model.predict_proba(a)


def test_partial_results_when_the_endpoint_dies(files, tmp_path, monkeypatch):
    import joblib

    import aisec.api
    from aisec.targets.sklearn import ProbaTarget

    model = joblib.load(files / "lr.pkl")
    def load_model(ref, data):
        assert ref.path == str(files / "lr.pkl") and ref.trust_model_code
        # Seeded runs: simba makes 20 predict calls here and square 12, so it dies inside square.
        return ProbaTarget(_DyingEndpoint(model, alive=26), input_shape=data.info.sample_shape, num_classes=2,
                           name="endpoint")

    monkeypatch.setattr(aisec.api, "load_model", load_model)
    res = _scan(files, tmp_path / "o", "--budget", "10", "-a", "simba,square,boundary")
    assert res.exit_code == 1
    assert "scan stopped at run 2 of 3" in res.stderr and "EndpointError" in res.stderr
    doc = json.loads((tmp_path / "o" / "scan.json").read_text())
    assert not doc["complete"] and [r["error"] is None for r in doc["runs"]] == [True, False]
    assert len(read_jsonl(tmp_path / "o" / "evidence.jsonl")) == 1  # the finished run's evidence is kept


def test_scan_refuses_pickles_without_trust_and_bad_constraints(files, tmp_path):
    res = CliRunner().invoke(main, ["scan", "-m", str(files / "lr.pkl"), "-d", str(files / "bc.csv"), "-q"])
    assert res.exit_code == 2 and "--trust-model-code" in res.stderr
    (tmp_path / "c.yaml").write_text("num_features: 14\ninteger: [nope]\n")
    res = _scan(files, tmp_path / "o", "--constraints", str(tmp_path / "c.yaml"))
    assert res.exit_code == 2 and "unknown feature 'nope'" in res.stderr
    assert not (tmp_path / "o" / "scan.json").exists()  # nothing half-written


def test_scan_rejects_data_that_breaks_the_constraints(files, tmp_path):
    (tmp_path / "c.yaml").write_text("num_features: 14\ninteger: [0]\n")  # mean radius is not a whole number
    res = _scan(files, tmp_path / "o", "--constraints", str(tmp_path / "c.yaml"))
    assert res.exit_code == 2 and "integer constraint" in res.stderr
    assert not (tmp_path / "o").exists()


def test_a_stopped_scan_is_stored_as_failed_with_its_finished_runs(files, tmp_path, monkeypatch):
    import joblib

    import aisec.api
    from aisec.store import open_store
    from aisec.targets.sklearn import ProbaTarget

    monkeypatch.setenv("AISEC_KEY_DIR", str(tmp_path / "keys"))
    monkeypatch.setenv("AISEC_HOME", str(tmp_path / "home"))
    model = joblib.load(files / "lr.pkl")
    monkeypatch.setattr(aisec.api, "load_model", lambda ref, data: ProbaTarget(
        _DyingEndpoint(model, alive=26), input_shape=data.info.sample_shape, num_classes=2, name="endpoint"))
    url = f"sqlite:///{tmp_path / 'e.db'}"
    res = _scan(files, tmp_path / "o", "--budget", "10", "-a", "simba,square,boundary", "--store", url)
    assert res.exit_code == 1 and "scan stopped at run 2 of 3" in res.stderr
    kept = read_jsonl(tmp_path / "o" / "evidence.jsonl")
    assert len(kept) == 1 and (tmp_path / "o" / "report.html").exists()
    with open_store(url) as store:
        info = store.run(kept[0].run_id)
        assert info.status == "failed" and "EndpointError" in info.error and info.evidence_count == 1
