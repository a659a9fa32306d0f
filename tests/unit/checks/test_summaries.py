"""Every check's summary is its typed model, answers mapping access, and writes result.json as before.

The key lists below are the keys (in order) of the dicts the checks built before they had models:
``result.json`` must keep them, so reports, notebooks and diffs written against it still read it.
"""

from __future__ import annotations

import json
import math

import pytest
import torch

from aisec.core.check import ConsoleTable, DictSummary, IntervalSummary, Result, Summary
from aisec.core.evidence import Measurement
from aisec.core.stats import wilson


@pytest.fixture(autouse=True)
def _one_thread():
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


def _written(run, check: str) -> dict:
    """The check's summary as ``result.json`` holds it; asserts it is the summary's JSON, key order included."""
    doc = json.loads((run.out / "result.json").read_text(encoding="utf-8"))
    written = doc["checks"][check]["summary"]
    result = next(r for r in run.results if r.check == check)
    assert json.dumps(written) == json.dumps(result.summary.to_json())
    # model_dump(mode="json") is the same JSON, but for non-finite floats, which result.json writes as null
    assert _nan_to_none(result.summary.model_dump(mode="json")) == written
    return written


def _nan_to_none(o):
    if isinstance(o, dict):
        return {k: _nan_to_none(v) for k, v in o.items()}
    if isinstance(o, list):
        return [_nan_to_none(v) for v in o]
    return None if isinstance(o, float) and not math.isfinite(o) else o


# -- the base model ------------------------------------------------------------------------------


def test_mapping_access_delegates_to_fields_on_nested_models():
    from aisec.checks.robustness import CurveSummary, PointSummary, RobustnessSummary

    ci = IntervalSummary.from_interval(wilson(9, 10))
    point = PointSummary(eps=0.1, raw_robust_accuracy=None, robust_accuracy=0.9, ci=ci, success_rate=0.1,
                         safair_delta=0.0, median_distance=math.nan)
    curve = CurveSummary(attack="fgsm", norm="linf", kind="fixed_eps", targeted=False, params={}, points=[point],
                         warnings=[], seconds=0.1, queries=10, example_eps=0.1, key="fgsm-linf")
    s = RobustnessSummary(samples=10, clean_accuracy=0.9, clean_ci=ci, curves=[curve], clever=None, classes=["a"])
    assert s["curves"][0]["points"][0]["ci"]["low"] == s.curves[0].points[0].ci.low == ci.low
    assert s.get("clever") is None and s.get("nosuch", 3) == 3 and "curves" in s and "nosuch" not in s
    assert list(s) == list(s.keys()) == ["samples", "clean_accuracy", "clean_ci", "curves", "clever", "classes"]
    assert dict(s.clean_ci.items()) == {"low": ci.low, "high": ci.high, "level": 0.95, "method": "wilson"}
    assert len(ci) == 4 and s.values()[0] == 10
    with pytest.raises(KeyError):
        s["nosuch"]
    with pytest.raises(ValueError, match="frozen"):
        s.samples = 3  # type: ignore[misc]
    with pytest.raises(ValueError, match="extra"):
        PointSummary(**point.model_dump(), typo=1)
    assert s.to_json()["curves"][0]["points"][0]["median_distance"] is None  # NaN as null, as before


def test_a_plain_dict_summary_of_a_plugin_check_still_works():
    m = Measurement(metric="plugin.score", value=0.5, unit="fraction", higher_is_better=True, interval=wilson(5, 10),
                    sample_count=10, parameters={"k": 1})
    r = Result(check="plugin", measurements=[m], params={}, summary={"score": 0.5, "nested": {"a": [1, 2]}})
    assert isinstance(r.summary, DictSummary) and isinstance(r.summary, Summary)
    assert r.summary["nested"]["a"] == [1, 2] and r.summary.get("score") == 0.5 and list(r.summary) == ["score",
                                                                                                        "nested"]
    assert r.summary.to_json() == {"score": 0.5, "nested": {"a": [1, 2]}}
    # without lines of its own, a summary prints the check's measurements
    assert r.summary.console_lines(r, model="m", dataset="d") == ["plugin.score (k 1): 0.5 (0.237–0.763)"]
    assert len(Result(check="empty", measurements=[], params={}).summary) == 0


def test_an_absent_optional_part_is_absent_from_the_mapping_and_the_json():
    from aisec.checks.explainability import MeanWithCI, StabilitySummary

    ci = IntervalSummary.from_interval(wilson(3, 4))
    s = StabilitySummary(chance=0.1, samples=4, top_k=0.1, noise=MeanWithCI(mean=0.75, ci=ci))
    assert "rerun" not in s and s.get("rerun") is None and s.rerun is None
    assert list(s.to_json()) == ["chance", "samples", "top_k", "noise"]


# -- each check ----------------------------------------------------------------------------------


def test_robustness_summary_is_typed_round_trips_and_prints_its_table(digits_target, digits_split, tmp_path,
                                                                        capsys, monkeypatch):
    from aisec.api import assess
    from aisec.checks.robustness import CleverSummary, CurveSummary, PointSummary, RobustnessSummary
    from aisec.cli.summary import print_summary

    data = digits_split[1].subset(range(24), name="digits-24")
    run = assess(digits_target, data, checks={"robustness": {
        "attacks": ["fgsm", {"name": "deepfool", "norm": "l2"}], "eps": [0.1, 0.2], "eps_l2": [0.5],
        "reference_eps": {}, "samples": 24,
        "examples": 2, "clever": {"samples": 2, "nb_batches": 2, "batch_size": 8}}}, out=tmp_path)
    s = run.results[0].summary
    assert isinstance(s, RobustnessSummary) and isinstance(s.curves[0], CurveSummary)
    assert isinstance(s.curves[0].points[0], PointSummary) and isinstance(s.clever["l2"], CleverSummary)
    assert isinstance(s.clean_ci, IntervalSummary)
    w = _written(run, "robustness")
    assert list(w) == ["samples", "clean_accuracy", "clean_ci", "curves", "clever", "classes", "worst_case",
                       "reliability"]
    assert list(w["curves"][0]) == ["attack", "norm", "kind", "targeted", "params", "points", "warnings", "seconds",
                                    "queries", "example_eps", "key", "loss_traces", "flags", "escalation"]
    assert list(w["curves"][0]["points"][0]) == ["eps", "raw_robust_accuracy", "robust_accuracy", "ci",
                                                 "success_rate", "safair_delta", "median_distance"]
    assert w["curves"][1]["points"][0]["raw_robust_accuracy"] is None  # minimal-norm attack: one run
    assert list(w["clever"]["l2"])[:3] == ["scores", "radius", "mean"]

    monkeypatch.setenv("COLUMNS", "200")
    print_summary(run)
    out = capsys.readouterr().out
    assert f"digits-cnn on digits-24: clean accuracy {s.clean_accuracy:.3f}" in out
    for c in s.curves:
        for p in c.points:
            row = [c.attack, c.norm, f"{p.eps:g}", f"{p.robust_accuracy:.3f}", f"{p.ci.low:.3f}–{p.ci.high:.3f}"]
            assert any(all(cell in line for cell in row) for line in out.splitlines()), row
    assert "CLEVER-u (l2): median" in out
    table = next(x for x in s.console_lines(run.results[0], model="m", dataset="d") if isinstance(x, ConsoleTable))
    assert len(table.rows) == 3 and table.columns[0] == "attack"


def test_backdoor_summary(digits_target, digits_split, tmp_path):
    from aisec.api import assess
    from aisec.checks.backdoor import BackdoorSummary, DetectionSummary

    data = digits_split[0].subset(range(200), name="digits-200")
    run = assess(digits_target, data, checks={"backdoor": {"methods": ["activation-clustering",
                                                                        "spectral-signatures"]}}, out=tmp_path)
    s = run.results[0].summary
    assert isinstance(s, BackdoorSummary) and isinstance(s.methods[0], DetectionSummary)
    w = _written(run, "backdoor")
    assert list(w) == ["alarm", "suspected", "samples", "classes", "methods"]
    assert list(w["methods"][0]) == ["method", "suspected", "alarm", "class_scores", "anomaly_index", "threshold",
                                     "flagged", "flagged_count", "samples", "smaller_cluster_fraction", "statistic"]
    # the detector's own details are extra keys, read like fields
    assert s.methods[0]["statistic"] == s.methods[0].statistic and "outlier_scores_max" in s.methods[1]
    lines = s.console_lines(run.results[0], model="m", dataset="d")
    assert [line.split(":")[0] for line in lines] == ["backdoor activation-clustering", "backdoor spectral-signatures"]


def test_privacy_summary(digits_target, tmp_path):
    from aisec.api import assess
    from aisec.checks.privacy import MembershipAttackSummary, PrivacySummary, ShaprSummary, TprSummary
    from aisec.data.builtin import digits

    run = assess(digits_target, digits(split="train"),
                 checks={"privacy": {"attacks": ["loss", "gap"], "samples": 120, "examples": 2}}, out=tmp_path)
    r = run.results[0]
    s = r.summary
    assert isinstance(s, PrivacySummary) and isinstance(s.attacks[0], MembershipAttackSummary)
    assert isinstance(s.shapr, ShaprSummary) and isinstance(s.attacks[0].tpr_at_fpr["0.01"], TprSummary)
    assert s.worst is not None and s.worst.key in {"loss", "gap"} and s["worst"]["auc"] == s.worst.auc
    w = _written(run, "privacy")
    assert list(w) == ["members", "nonmembers", "member_source", "nonmember_source", "member_accuracy",
                       "nonmember_accuracy", "generalization_gap", "attacks", "shapr", "classes", "fprs", "worst",
                       "population"]
    assert list(w["attacks"][0]) == ["key", "attack", "summary", "paper", "params", "n_members", "n_nonmembers",
                                     "auc", "auc_ci", "balanced_accuracy", "balanced_accuracy_ci", "tpr_at_fpr",
                                     "per_class", "warnings", "roc", "seconds", "queries", "info"]
    assert w["attacks"][0]["tpr_at_fpr"]["0.001"]["value"] is None  # 120 non-members cannot resolve 0.1%
    assert s.console_lines(r, model="m", dataset="d")[0].startswith("privacy.")  # no lines of its own


def test_explainability_summary(digits_target, digits_split, tmp_path):
    from aisec.api import assess
    from aisec.checks.explainability import ExplainabilitySummary, FaithfulnessSummary

    data = digits_split[1].subset(range(6), name="digits-6")
    run = assess(digits_target, data, checks={"explainability": {
        "explainer": "saliency", "samples": 6, "stability_samples": 2, "repeats": 1, "steps": 4, "random_orders": 3,
        "examples": 2}}, out=tmp_path)
    r = run.results[0]
    s = r.summary
    assert isinstance(s, ExplainabilitySummary) and isinstance(s.faithfulness, FaithfulnessSummary)
    w = _written(run, "explainability")
    assert list(w) == ["explainer", "modality", "samples", "classes", "explainer_params", "seconds_explain",
                       "seconds_per_explanation", "faithfulness", "control", "stability", "explained_area",
                       "surrogate_r2_median", "queries"]  # images: the examples are the result's images
    assert list(w["stability"]) == ["chance", "samples", "top_k", "noise"]  # saliency is deterministic: no rerun
    assert s["faithfulness"]["deletion"]["ci"]["low"] == s.faithfulness.deletion.ci.low
    lines = s.console_lines(r, model="m", dataset="d")
    assert lines[0].startswith(f"explainability faithfulness (deletion): {s.faithfulness.deletion.mean:.3f}")


def test_extraction_summary(digits_target, digits_split, tmp_path):
    from aisec.api import assess
    from aisec.checks.extraction import ExtractionSummary

    data = digits_split[1].subset(range(60), name="digits-60")
    run = assess(digits_target, data, checks={"extraction": {"query_budget": 30, "epochs": 2, "steps": 2}},
                 out=tmp_path)
    assert isinstance(run.results[0].summary, ExtractionSummary)
    assert list(_written(run, "extraction")) == ["fidelity", "transfer_success_rate",
                                                 "surrogate_white_box_success_rate", "queries", "evaluation_queries",
                                                 "surrogate_file",
                                                 "surrogate_arch"]


def test_poisoning_summary(digits_target, digits_split, tmp_path):
    from aisec.api import assess
    from aisec.checks.poisoning import PoisoningSummary, PoisonRatePoint, TriggerSizePoint

    data = digits_split[0].subset(range(240), name="digits-240")
    run = assess(digits_target, data, checks={"poisoning": {
        "rates": [0.1], "source_class": None, "trigger_sizes": [2], "examples": 0,
        "recipe": {"architecture": "target", "mode": "retrain", "epochs": 1}}}, out=tmp_path)
    r = run.results[0]
    s = r.summary
    assert isinstance(s, PoisoningSummary) and isinstance(s.points[0], PoisonRatePoint)
    assert isinstance(s.pixels[0], TriggerSizePoint) and s["points"][1]["asr_ci"]["high"] == s.points[1].asr_ci.high
    w = _written(run, "poisoning")
    assert list(w) == ["attack", "mode", "train_samples", "test_samples", "victim_samples", "source_class",
                       "target_class", "points", "pixels", "pixels_needed", "pixels_rate", "min_poison_rate",
                       "reached", "success_threshold", "resilience", "classes", "trigger", "poison_linf"]
    assert list(w["points"][0]) == ["rate", "poisons", "asr", "asr_ci", "clean_accuracy", "clean_ci"]
    assert s.console_lines(r, model="m", dataset="d")[0].startswith(f"poisoning badnets (retrain): resilience "
                                                                    f"{s.resilience:.3f}; ASR by rate 0%:")


def test_text_robustness_summary_extends_the_image_one(tmp_path):
    pytest.importorskip("transformers")
    from aisec.api import assess
    from aisec.checks.robustness import RobustnessSummary, TextCurveSummary, TextRobustnessSummary
    from aisec.core.dataset import TensorDataset
    from aisec.core.types import Modality
    from aisec.data.text import encode_texts
    from aisec.targets.hf import HfTextTarget
    from aisec.testing.text import cached_tiny_sentiment_bert, toy_sentiment

    texts, y = toy_sentiment(6, seed=3)
    data = TensorDataset(encode_texts(texts, 96), y, name="toy", modality=Modality.TEXT,
                         classes=["negative", "positive"], value_range=(0.0, 255.0))
    target = HfTextTarget(cached_tiny_sentiment_bert(), max_length=16)
    run = assess(target, data, checks={"robustness": {"samples": 6, "examples": 1,
                                                      "attacks": [{"name": "hotflip", "eps": [1, 2]}]}}, out=tmp_path)
    s = run.results[0].summary
    assert isinstance(s, TextRobustnessSummary) and isinstance(s, RobustnessSummary)
    assert isinstance(s.curves[0], TextCurveSummary) and s.curves[0].real_text
    w = _written(run, "robustness")
    assert list(w) == ["samples", "clean_accuracy", "clean_ci", "curves", "clever", "classes", "modality",
                       "text_examples", "lower_bound_note"]
    assert list(w["curves"][0]) == ["key", "attack", "norm", "kind", "targeted", "params", "points", "warnings",
                                    "seconds", "queries", "real_text", "note", "example_eps"]


def test_console_shows_eps_as_people_give_them():
    from aisec.checks._robustness_summary import eps_words

    assert [eps_words(e) for e in (8 / 255, 2 / 255, 16 / 255)] == ["8/255", "2/255", "16/255"]
    assert [eps_words(e) for e in (0.2, 0.1, 0.05, 0.5, 1.0, 0.0123)] == ["0.2", "0.1", "0.05", "0.5", "1", "0.0123"]
