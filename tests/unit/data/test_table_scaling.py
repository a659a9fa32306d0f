"""Issue 18, item 1: a CSV table reaches the model in the units the model was trained on.

The reproduction of the issue: scikit-learn's breast-cancer data written to a CSV, a scikit-learn
``Pipeline(StandardScaler, MLPClassifier)`` fitted on the raw training features and pickled, and the
same network exported to ONNX (built node by node with ``onnx.helper``: skl2onnx is not installed).
Fed the table's min-max scaled features, both scored near the majority-class rate (0.650 / 0.713 in
the issue); fed raw features, which ``data.scale: auto`` now picks for pickled, ONNX and HTTP models,
aisec's clean accuracy must equal scikit-learn's own ``score`` on the same rows. Tolerance: one
sample (1/n), since aisec hands the model float32 rows and scikit-learn scores float64 ones, which
may flip a sample that sits on the decision boundary; the ONNX graph computes in float32 too.

Properties: ``standard`` gives z-scores (mean 0, std 1 per feature, to 1e-6 in float32), every
scaling maps back to the raw rows with ``to_domain`` (1e-6 of the value plus the feature's scale:
float32 rounding), a raw table's
value range is the data's box and attacks stay inside it, and the scaling (method and statistics)
is in every evidence record, in result.json and at the top of the report.
"""

from __future__ import annotations

import csv
import json

import numpy as np
import pytest
import torch
from click.testing import CliRunner

from aisec.api import default_table_scale, plan_data, run_plan
from aisec.attacks.base import run_attack
from aisec.cli.main import main
from aisec.core.constraints import TabularConstraints
from aisec.core.dataset import take
from aisec.core.errors import ConfigError
from aisec.core.evidence import read_jsonl
from aisec.core.plan import Plan
from aisec.data.table import CsvTable
from aisec.targets.loading import load_target


@pytest.fixture(autouse=True)
def _one_thread():
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


def _onnx_mlp(pipe, path):
    """The fitted StandardScaler + one-hidden-layer MLP as an ONNX graph (probabilities out)."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    sc, mlp = pipe.named_steps["scale"], pipe.named_steps["mlp"]
    w1, w2 = mlp.coefs_
    b1, b2 = mlp.intercepts_
    # binary MLP: one logistic output z; class probabilities are softmax([0, z]) = [1 - s(z), s(z)]
    w2 = np.concatenate([np.zeros_like(w2), w2], axis=1)
    b2 = np.concatenate([np.zeros_like(b2), b2])
    inits = [numpy_helper.from_array(np.asarray(a, dtype=np.float32), name) for name, a in
             (("mean", sc.mean_), ("std", sc.scale_), ("w1", w1), ("b1", b1), ("w2", w2), ("b2", b2))]
    nodes = [
        helper.make_node("Sub", ["x", "mean"], ["c"]), helper.make_node("Div", ["c", "std"], ["z"]),
        helper.make_node("MatMul", ["z", "w1"], ["h0"]), helper.make_node("Add", ["h0", "b1"], ["h1"]),
        helper.make_node("Relu", ["h1"], ["h"]), helper.make_node("MatMul", ["h", "w2"], ["o0"]),
        helper.make_node("Add", ["o0", "b2"], ["o"]), helper.make_node("Softmax", ["o"], ["probs"], axis=1),
    ]
    graph = helper.make_graph(nodes, "bc-mlp", [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["n", 30])],
                              [helper.make_tensor_value_info("probs", TensorProto.FLOAT, ["n", 2])], inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    onnx.save(model, str(path))


@pytest.fixture(scope="module")
def bc(tmp_path_factory):
    """test.csv (breast-cancer test rows, raw features), mlp.pkl and mlp.onnx fitted on the raw train rows."""
    import joblib
    from sklearn.datasets import load_breast_cancer
    from sklearn.model_selection import train_test_split
    from sklearn.neural_network import MLPClassifier
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import StandardScaler

    d = load_breast_cancer()
    xtr, xte, ytr, yte = train_test_split(d.data, d.target, test_size=0.3, random_state=0, stratify=d.target)
    pipe = Pipeline([("scale", StandardScaler()),
                     ("mlp", MLPClassifier(hidden_layer_sizes=(16,), max_iter=2000, random_state=0))]).fit(xtr, ytr)
    root = tmp_path_factory.mktemp("bc")
    names = [n.replace(" ", "_") for n in d.feature_names]
    rows = [",".join([*(repr(float(v)) for v in r), str(t)]) for r, t in zip(xte, yte, strict=True)]
    (root / "test.csv").write_text(",".join([*names, "label"]) + "\n" + "\n".join(rows) + "\n", encoding="utf-8")
    joblib.dump(pipe, root / "mlp.pkl")
    _onnx_mlp(pipe, root / "mlp.onnx")
    raw = np.loadtxt(root / "test.csv", delimiter=",", skiprows=1)[:, :-1]
    # sklearn's own accuracy on exactly the rows of the CSV, and the number the old [0, 1] feeding gave
    lo, hi = raw.min(0), raw.max(0)
    return {"root": root, "pipe": pipe, "raw": raw, "y": yte, "acc": float(pipe.score(raw, yte)),
            "acc_minmax": float(pipe.score((raw - lo) / (hi - lo), yte))}


def _plan(bc, model, **data):
    return Plan.parse({
        "model": {"path": str(bc["root"] / model), "trust_model_code": model.endswith(".pkl")},
        "data": {"source": str(bc["root"] / "test.csv"), **data},
        "checks": {"robustness": {"attacks": [{"name": "square", "params": {"max_queries": 15}}], "eps": [0.05],
                                  "samples": 171, "clever": {"enabled": False}}},
    })


def _clean(run):
    return run.results[0].measurement("robustness.clean_accuracy")


def test_reproduction_is_the_issue(bc):
    # the model is good, and feeding it [0, 1] inputs is what made it look useless
    assert bc["acc"] > 0.93 and bc["acc_minmax"] < bc["acc"] - 0.2


@pytest.mark.parametrize("model", ["mlp.pkl", "mlp.onnx"])
def test_raw_models_get_raw_features_by_default(bc, model, tmp_path):
    run = run_plan(_plan(bc, model), out=tmp_path / "o")
    n = len(bc["y"])
    clean = _clean(run)
    assert clean.sample_count == n
    assert clean.value == pytest.approx(bc["acc"], abs=1 / n + 1e-12), (clean.value, bc["acc"])
    # the choice is visible: evidence, result.json, the report header, the plan kept in the folder
    scaling = run.evidence[0].parameters["input_scaling"]
    assert scaling["method"] == "none" and "raw feature units" in scaling["units"]
    assert scaling["offset"] == [0.0] * 30 and scaling["scale"] == [1.0] * 30
    assert all(e.parameters["input_scaling"] == scaling for e in run.evidence)
    lo, hi = scaling["value_range"]
    assert lo == pytest.approx(bc["raw"].min(), rel=1e-6) and hi == pytest.approx(bc["raw"].max(), rel=1e-6)
    assert run.target.spec.value_range == pytest.approx((lo, hi))  # attacks clamp to the data's box, not [0, 1]
    assert json.loads((tmp_path / "o" / "result.json").read_text())["input_scaling"]["method"] == "none"
    html = (tmp_path / "o" / "report.html").read_text()
    assert "Inputs: features scaled &#39;none&#39;" in html or "Inputs: features scaled 'none'" in html
    assert "Inputs: features scaled 'none'" in (tmp_path / "o" / "report.md").read_text()


def test_cli_scale_flag_is_explicit_and_recorded(bc, tmp_path):
    args = ["assess", "-m", str(bc["root"] / "mlp.pkl"), "-d", str(bc["root"] / "test.csv"), "--trust-model-code",
            "-a", "square", "--steps", "5", "--eps", "0.05", "-c", "171", "--clever-samples", "0", "-q"]
    res = CliRunner().invoke(main, [*args, "--scale", "minmax", "-o", str(tmp_path / "mm")])
    assert res.exit_code == 0, res.output
    assert "inputs: features scaled 'minmax'" in res.output
    ev = read_jsonl(tmp_path / "mm" / "evidence.jsonl")
    clean = next(e for e in ev if e.metric == "robustness.clean_accuracy")
    assert clean.parameters["input_scaling"]["method"] == "minmax"
    assert clean.parameters["input_scaling"]["value_range"] == [0.0, 1.0]
    # a wrong declared scaling gives the wrong number; the evidence says which one was declared
    assert clean.value == pytest.approx(bc["acc_minmax"], abs=1 / 171 + 1e-12)
    assert "scale: minmax" in (tmp_path / "mm" / "plan.yaml").read_text()
    res = CliRunner().invoke(main, [*args, "-o", str(tmp_path / "auto")])
    assert res.exit_code == 0, res.output
    assert "inputs: features scaled 'none'" in res.output
    clean = next(e for e in read_jsonl(tmp_path / "auto" / "evidence.jsonl") if e.metric == "robustness.clean_accuracy")
    assert clean.value == pytest.approx(bc["acc"], abs=1 / 171 + 1e-12)
    res = CliRunner().invoke(main, ["assess", "-m", "digits-cnn", "-d", "digits", "--scale", "none", "-q",
                                    "-o", str(tmp_path / "img")])
    assert res.exit_code == 2 and "applies to numeric CSV tables" in res.output


def test_auto_scale_follows_the_model_kind(bc):
    assert [default_table_scale(m) for m in ("m.pkl", "m.joblib", "M.ONNX", "https://x/v2", "m.pt", "digits-cnn",
                                             "m.safetensors")] == ["none"] * 4 + ["minmax"] * 3
    for model, want in (("mlp.pkl", "none"), ("mlp.onnx", "none"), ("net.pt", "minmax")):
        data = plan_data(_plan(bc, model))
        assert isinstance(data, CsvTable) and data.scale == want
    assert plan_data(_plan(bc, "mlp.pkl", scale="standard")).scale == "standard"
    with pytest.raises(ConfigError, match=r"data\.scale"):
        Plan.parse({"model": "m.pkl", "data": {"source": "x.csv", "options": {"scale": "none"}}})


@pytest.mark.parametrize("scale", ["minmax", "standard", "none"])
def test_every_scaling_maps_back_to_the_raw_rows(bc, scale):
    t = CsvTable(bc["root"] / "test.csv", scale=scale)
    x, _ = take(t)
    xs = x.double().numpy()
    off, sc = t.scaling
    # float32 model inputs: each is off by ~1e-7 of its magnitude, i.e. ~1e-7 x scale in table units
    assert (np.abs(t.to_domain(x) - bc["raw"]) <= 1e-6 * (np.abs(bc["raw"]) + sc)).all()
    np.testing.assert_allclose(xs, (bc["raw"] - off) / sc, rtol=1e-6, atol=1e-6)
    lo, hi = t.info.value_range
    assert lo <= xs.min() + 1e-6 and xs.max() <= hi + 1e-6
    if scale == "standard":
        np.testing.assert_allclose(xs.mean(0), 0.0, atol=1e-6)
        np.testing.assert_allclose(xs.std(0), 1.0, rtol=1e-5)
    if scale == "minmax":
        assert (lo, hi) == (0.0, 1.0) and xs.min() == 0.0 and xs.max() == 1.0
    # constraints speak in table units whatever the scaling: inferred ranges are the raw data's
    c = TabularConstraints.from_table(t)
    rng = dict(c.ranges)
    first = t.feature_names[0]
    assert tuple(rng[first]) == pytest.approx((bc["raw"][:, 0].min(), bc["raw"][:, 0].max()))
    # a distinct digest per scaling: evidence of one is never resumed as another
    assert len({CsvTable(bc["root"] / "test.csv", scale=s).info.digest for s in ("minmax", "standard", "none")}) == 3


def test_attack_on_raw_rows_stays_in_the_data_box(bc):
    t = CsvTable(bc["root"] / "test.csv", scale="none")
    target = load_target(str(bc["root"] / "mlp.pkl"), trust_model_code=True, input_shape=(30,), num_classes=2,
                         value_range=t.info.value_range)
    x, y = take(t, 40)
    eps = 5.0  # raw units: 5 of whatever each feature is measured in
    out = run_attack("square", target, x, y, {"eps": eps, "max_queries": 30})
    lo, hi = t.info.value_range
    assert (out.x_adv >= lo - 1e-4).all() and (out.x_adv <= hi + 1e-4).all()
    assert (out.x_adv - x).abs().amax().item() <= eps * (1 + 1e-5)
    with pytest.raises(ConfigError, match="scale must be one of"):
        CsvTable(bc["root"] / "test.csv", scale="zscore")  # type: ignore[arg-type]


def test_adversarial_rows_are_saved_in_the_tables_units(bc, tmp_path):
    """Issue 18 #1: the adversarial rows the check writes are in the data's own units, beside model units."""
    plan = _plan(bc, "mlp.onnx", scale="standard")
    plan = plan.model_copy(update={"checks": {"robustness": {
        **plan.checks["robustness"], "samples": 30, "save_adversarial": 5}}})
    run = run_plan(plan, out=tmp_path / "run")
    npz = sorted((tmp_path / "run" / "artefacts" / "adversarial").glob("*.npz"))[0]
    with np.load(npz, allow_pickle=False) as f:
        z = dict(f)
    table = CsvTable(bc["root"] / "test.csv", scale="standard")
    offset, scale = table.scaling
    idx = z["index"]
    # the clean rows in domain units are the CSV's raw rows; the adversarial ones map back exactly
    np.testing.assert_allclose(z["x_clean_domain"], bc["raw"][idx], rtol=1e-5, atol=1e-4)
    np.testing.assert_allclose(z["x_adv_domain"], z["x_adv"] * scale + offset, rtol=1e-5, atol=1e-4)
    eps = float(z["eps"])
    change = z["x_adv_domain"] - z["x_clean_domain"]
    assert (np.abs(change) <= eps * scale * (1 + 1e-4) + 1e-6).all()  # the eps ball, in each feature's units
    assert list(z["feature_names"]) == list(table.feature_names)
    with npz.with_suffix(".csv").open(encoding="utf-8", newline="") as fh:
        rows = list(csv.DictReader(fh))
    assert [int(r["sample"]) for r in rows] == idx.tolist()
    first = table.feature_names[0]
    np.testing.assert_allclose([float(r[f"{first}:change"]) for r in rows], change[:, 0], rtol=1e-4, atol=1e-4)
    refs = {a.path for a in run.artefacts}
    assert any(p.endswith(".csv") and "adversarial/" in p for p in refs)
