"""The explainability check: measurements, intervals, per-sample tables, report, all three modalities."""

from __future__ import annotations

import numpy as np
import pytest

from aisec.checks.explainability import ExplainabilityCheck, ExplainabilityParams
from aisec.core.dataset import TensorDataset
from aisec.core.errors import CapabilityError, ConfigError, ShapeError
from aisec.core.types import Modality
from aisec.targets.sklearn import ProbaTarget

METRICS = {"explainability.faithfulness_deletion", "explainability.faithfulness_insertion",
           "explainability.stability", "explainability.explained_area"}


@pytest.fixture(scope="module")
def small_data(digits_split):
    _, test = digits_split
    return test.subset(range(24), name="digits-test-24")


@pytest.fixture(scope="module")
def result(digits_target, small_data):
    params = ExplainabilityParams(samples=24, num_samples=300, stability_samples=4, repeats=1, steps=8,
                                  random_orders=8, examples=4)
    return ExplainabilityCheck().run(digits_target, small_data, params)


def test_measurements_carry_intervals_and_sample_counts(result):
    assert {m.metric for m in result.measurements} == METRICS
    for m in result.measurements:
        assert m.interval is not None and m.interval.contains(m.value), m
        assert 0.0 <= m.value <= 1.0
    assert result.measurement("explainability.faithfulness_deletion").sample_count == 24
    stab = result.measurement("explainability.stability", perturbation="rerun")
    assert stab.sample_count == 4 and stab.parameters["explainer"] == "lime"
    assert result.measurement("explainability.stability", perturbation="noise").parameters["noise"] == 0.02
    assert result.threats == ()


def test_lime_is_faithful_on_the_demo_model_and_the_control_is_not(result):
    s = result.summary
    assert s["faithfulness"]["deletion"]["mean"] > 0.85
    assert s["control"]["deletion"]["ci"]["low"] < s["faithfulness"]["deletion"]["ci"]["low"]
    assert not any("not clearly more faithful" in w for w in result.warnings)


def test_per_sample_table_reproduces_the_measurements(result):
    t = result.tables["samples"]
    for metric, col in (("explainability.faithfulness_deletion", "faithfulness_deletion"),
                        ("explainability.faithfulness_insertion", "faithfulness_insertion"),
                        ("explainability.explained_area", "explained_area")):
        assert result.measurement(metric).value == pytest.approx(float(np.mean(t[col])))
    rerun = t["stability_rerun"]
    assert np.isfinite(rerun[:4]).all() and np.isnan(rerun[4:]).all()
    assert result.measurement("explainability.stability", perturbation="rerun").value == pytest.approx(
        float(np.nanmean(rerun)))
    assert np.array_equal(t["explained_class"], t["pred"])  # label="predicted"
    ex = result.images["examples"]
    assert ex["x"].shape == (4, 1, 8, 8) and ex["attribution"].shape == (4, 1, 8, 8)


def test_params_fail_fast(digits_target, small_data):
    with pytest.raises(ValueError, match="unknown explainer 'grad'"):
        ExplainabilityParams(explainer="grad")
    with pytest.raises(ValueError, match="extra"):
        ExplainabilityParams(num_sample=10)
    assert ExplainabilityParams(explainer="IG").explainer == "integrated_gradients"
    wrong = TensorDataset(small_data.x, small_data.y % 3, name="three", modality=Modality.IMAGE)
    with pytest.raises(ShapeError, match="3 classes"):
        ExplainabilityCheck().run(digits_target, wrong, ExplainabilityParams())


def test_gradient_explainer_on_a_black_box_names_alternatives(small_data):
    from sklearn.linear_model import LogisticRegression

    clf = LogisticRegression(max_iter=200).fit(small_data.x.reshape(len(small_data), -1).numpy(), small_data.y.numpy())
    target = ProbaTarget(clf, input_shape=(1, 8, 8), num_classes=10, name="logreg", modality=Modality.IMAGE)
    with pytest.raises(CapabilityError, match=r"saliency.*needs gradients.*logreg.*'lime' or 'kernel_shap'"):
        ExplainabilityCheck().run(target, small_data, ExplainabilityParams(explainer="saliency"))


def test_tabular_check_with_a_black_box_and_bar_chart_examples():
    from sklearn.linear_model import LogisticRegression

    from aisec.data.builtin import breast_cancer

    train, test = breast_cancer(split="train"), breast_cancer(split="test")
    clf = LogisticRegression(max_iter=1000).fit(train.x.numpy(), train.y.numpy())
    target = ProbaTarget(clf, input_shape=(30,), num_classes=2, name="logreg")
    params = ExplainabilityParams(samples=12, num_samples=500, stability_samples=3, repeats=1, steps=6,
                                  random_orders=6, examples=2)
    res = ExplainabilityCheck().run(target, test, params)
    assert res.measurement("explainability.faithfulness_deletion").value > 0.8
    ex = res.summary["examples"][0]
    assert len(ex["features"]) == 10 and ex["features"][0]["name"] == f"feature {ex['features'][0]['feature']}"


def test_text_check_and_report_with_lime_html(tmp_path):
    from aisec.api import assess
    from aisec.data.text import python_docs
    from aisec.models.text import python_docs_target

    run = assess(python_docs_target(), python_docs(split="test"),
                 checks={"explainability": {"samples": 4, "num_samples": 200, "stability_samples": 2, "repeats": 1,
                                            "steps": 5, "random_orders": 5, "examples": 2}},
                 out=tmp_path)
    res = run.results[0]
    assert {m.metric for m in res.measurements} == METRICS
    spans = res.summary["examples"][0]["spans"]
    assert "".join(p for p, _ in spans) == res.summary["examples"][0]["text"]
    html = (tmp_path / "report.html").read_text(encoding="utf-8")
    assert "Explainability" in html and "lime-text-0.html" in html
    page = (tmp_path / "explanations" / "lime-text-0.html").read_text(encoding="utf-8")
    assert "lime.Explanation" in page and "top_div" in page
    ev = [e for e in run.evidence if e.metric == "explainability.faithfulness_deletion"]
    assert ev and ev[0].raw is not None and ev[0].threats == ()


def test_text_needs_lime():
    from aisec.data.text import python_docs
    from aisec.models.text import python_docs_target

    with pytest.raises(ConfigError, match="does not explain text"):
        ExplainabilityCheck().run(python_docs_target(), python_docs(split="test"),
                                  ExplainabilityParams(explainer="kernel_shap"))


def test_image_report_section_renders(result, digits_target, small_data, tmp_path):
    from aisec.core.run import Run
    from aisec.report.html import render

    run = Run(run_id="r", plan=None, target=digits_target, data=small_data, results=[result], out=tmp_path)
    page = render(run)
    assert "Explainability" in page and "faithfulness by deletion" in page and page.count("data:image/png") >= 2


def test_lime_text_pages_cannot_be_broken_out_of_by_class_names_or_text():
    """LIME's page embeds class names and the text as JSON inside <script>; '</script>' in either must not
    end the block (lime masks <>& in the raw text itself, but not in class names)."""
    from aisec.report.sections.explainability import lime_text_html

    def page(names: list[str], text: str) -> str:
        return lime_text_html({"text": text, "explained": 0, "lime": {
            "split_expression": r"\W+", "class_names": names, "predict_proba": [0.6, 0.4],
            "weights": [0.3, -0.2, 0.1, 0.05]}})

    benign = page(["neg", "pos"], "a film about cats")
    hostile = page(["</script><script>alert(1)</script>", "pos"], "</script><script>alert(2)</script> a film")
    assert "<script>alert(" not in hostile
    assert "\\u003c/script\\u003e\\u003cscript\\u003ealert(1)" in hostile  # still shown, as data
    assert hostile.count("</script>") == benign.count("</script>")  # only lime's own tags close blocks
