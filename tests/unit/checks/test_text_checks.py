"""The robustness and privacy checks on a text target (a tiny BERT loaded from its local folder)."""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("transformers")

from aisec.core.errors import ConfigError
from aisec.core.types import Modality


@pytest.fixture(scope="module")
def text_target():
    from aisec.targets.hf import HfTextTarget
    from aisec.testing.text import cached_tiny_sentiment_bert

    return HfTextTarget(cached_tiny_sentiment_bert(), max_length=16)


def _dataset(texts, y, name):
    from aisec.core.dataset import TensorDataset
    from aisec.data.text import encode_texts

    return TensorDataset(encode_texts(texts, 96), y, name=name, modality=Modality.TEXT,
                         classes=["negative", "positive"], value_range=(0.0, 255.0))


def test_robustness_on_text_runs_hotflip_budgets_and_the_embedding_lower_bound(text_target):
    from aisec.api import assess
    from aisec.testing.text import toy_sentiment

    texts, y = toy_sentiment(40, seed=99)
    run = assess(text_target, _dataset(texts, y, "toy-reviews"), checks={"robustness": {"samples": 40}})
    r = run.results[0]
    assert not run.errors
    keys = [c["key"] for c in r.summary["curves"]]
    assert keys == ["hotflip-l0", "embedding_pgd-l2"]
    clean = r.summary["clean_accuracy"]
    for c in r.summary["curves"]:
        accs = [p["robust_accuracy"] for p in c["points"]]
        assert accs == sorted(accs, reverse=True) and accs[0] <= clean  # never rises with the budget
        for p in c["points"]:
            assert p["ci"]["low"] <= p["robust_accuracy"] <= p["ci"]["high"]
    hot = r.summary["curves"][0]
    assert [p["eps"] for p in hot["points"]] == [1.0, 2.0, 3.0]
    assert hot["points"][-1]["robust_accuracy"] < clean
    ra = [m for m in r.measurements if m.metric == "robustness.robust_accuracy"]
    assert len(ra) == 8
    pgd = [m for m in ra if m.parameters["attack"] == "embedding_pgd"]
    assert [m.parameters["eps"] for m in pgd] == [0.01, 0.03, 0.1, 0.3, 1.0]
    # the default grid spans the model's range: untouched at the smallest eps, lower at the largest
    pgd_acc = [p["robust_accuracy"] for p in r.summary["curves"][1]["points"]]
    assert pgd_acc[0] == clean > pgd_acc[-1]
    assert all(m.parameters["bound"] == "lower" and "not real text" in m.parameters["note"] for m in pgd)
    assert all(m.parameters["real_text"] for m in ra if m.parameters["attack"] == "hotflip")
    queries = {m.parameters["attack"]: m.value for m in r.measurements if m.metric == "robustness.mean_queries"}
    assert set(queries) == {"hotflip", "embedding_pgd"} and min(queries.values()) >= 1
    table = r.tables["samples"]
    words = table["hotflip-l0:words_changed"]
    assert words.max() <= 3
    correct = table["pred_clean"] == table["label"]
    assert (table["clean_correct"] == correct).all()
    # fooled as the aggregates count it: a clean-correct sample whose adversarial prediction is wrong
    assert (table["hotflip-l0@3:fooled"] == ((table["hotflip-l0@3:pred"] != table["label"]) & correct)).all()
    assert np.isnan(table["hotflip-l0@3:distance"][~table["hotflip-l0@3:fooled"].astype(bool)]).all()
    ex = r.summary["text_examples"]["hotflip-l0"]
    assert ex and ex[0]["success"] and ex[0]["adv_text"] != ex[0]["text"]
    assert {e.metric for e in run.evidence} >= {"robustness.clean_accuracy", "robustness.mean_queries"}


def test_robustness_on_text_refuses_image_attacks_and_fractional_budgets(text_target):
    from aisec.checks.robustness import RobustnessCheck, RobustnessParams
    from aisec.testing.text import toy_sentiment

    data = _dataset(*toy_sentiment(8, seed=1), "toy")
    with pytest.raises(ConfigError, match="not text"):
        RobustnessCheck().run(text_target, data, RobustnessParams(attacks=["fgsm"]))
    with pytest.raises(ConfigError, match="whole numbers"):
        RobustnessCheck().run(text_target, data, RobustnessParams(attacks=[{"name": "hotflip", "eps": [0.5]}]))


def test_privacy_on_text_scores_members_and_refuses_model_training_attacks(text_target):
    from aisec.checks.privacy import PrivacyCheck, PrivacyParams
    from aisec.testing.text import toy_sentiment, training_texts

    members = _dataset(*training_texts(), "tiny-bert-train")
    fresh_texts, fresh_y = toy_sentiment(400, seed=4242)
    nonmembers = _dataset(fresh_texts, fresh_y, "fresh-reviews")
    r = PrivacyCheck().run(text_target, members, PrivacyParams(nonmembers=nonmembers, drop_overlap=True, samples=200))
    assert {s["attack"] for s in r.summary["attacks"]} == {"loss", "confidence", "gap"}
    auc = [m for m in r.measurements if m.metric == "privacy.mia_auc"]
    assert len(auc) == 3 and all(0.0 <= m.value <= 1.0 for m in auc)
    assert r.summary["member_accuracy"] >= 0.9
    with pytest.raises(ConfigError, match="cannot assess text target"):
        PrivacyCheck().run(text_target, members, PrivacyParams(nonmembers=nonmembers, drop_overlap=True,
                                                               attacks=["lira"]))
    with pytest.raises(ConfigError, match="cannot assess text target"):
        PrivacyCheck().run(text_target, members, PrivacyParams(nonmembers=nonmembers, drop_overlap=True,
                                                               attacks=["label_only"]))


def test_text_attack_names_are_listed_with_what_they_need():
    from aisec.core.registry import ATTACKS, load_plugins

    load_plugins()
    for name in ("hotflip", "embedding_pgd"):
        caps = {c.value for c in ATTACKS[name].requires}
        assert caps == {"gradients", "embeddings"}


def test_explainability_on_a_hugging_face_target_explains_the_sentiment_words(text_target):
    """The dataset's UTF-8 bytes reach the HF model tokenised; LIME's top word is the adjective."""
    from aisec.api import assess
    from aisec.testing.text import NEGATIVE, POSITIVE, toy_sentiment

    texts, y = toy_sentiment(6, seed=7)
    run = assess(text_target, _dataset(texts, y, "toy-reviews"),
                 checks={"explainability": {"samples": 6, "num_samples": 200, "stability_samples": 2, "repeats": 1,
                                            "steps": 5, "random_orders": 5, "examples": 2}})
    assert not run.errors
    res = run.results[0]
    assert res.measurement("explainability.faithfulness_deletion").value > 0.5
    ex = res.summary["examples"][0]
    top = max(ex["spans"], key=lambda s: abs(s[1]))[0].strip(" .,!").lower()
    assert top in {w.lower() for w in POSITIVE + NEGATIVE}
