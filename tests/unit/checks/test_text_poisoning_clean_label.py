"""Clean-label BadNL (labels kept, target-class texts only) and ONION inside the text poisoning check."""

from __future__ import annotations

import pytest

pytest.importorskip("transformers")

RATES = [0.0, 0.02, 0.05, 0.1, 0.2]


def _run(attack: str, **extra):
    from aisec.checks.poisoning import PoisoningCheck, PoisoningParams
    from aisec.core.dataset import TensorDataset
    from aisec.core.types import Modality
    from aisec.data.text import encode_texts
    from aisec.targets.hf import HfTextTarget
    from aisec.testing.text import toy_sentiment
    from aisec.testing.text_families import cached_family_classifier

    texts, y = toy_sentiment(300, seed=31)
    data = TensorDataset(encode_texts(texts, 96), y, name="toy-reviews", modality=Modality.TEXT,
                         classes=["negative", "positive"], value_range=(0.0, 255.0))
    target = HfTextTarget(cached_family_classifier("distilbert"), max_length=16)
    p = PoisoningParams(attack=attack, rates=RATES, samples=300, trigger={"kind": "words", "words": "cf"},
                        recipe={"architecture": "target", "epochs": 6}, **extra)
    return PoisoningCheck().run(target, data, p)


@pytest.fixture(scope="module")
def dirty():
    from aisec.testing.text_families import cached_causal_lm

    return _run("badnl", detect=["onion"], onion_lm=str(cached_causal_lm()))


@pytest.fixture(scope="module")
def clean():
    return _run("clean-label-badnl")


def test_hardening_deletes_the_most_target_evidencing_word_first():
    from aisec.attacks.poisoning.clean_label_text import harden_texts

    def prob(ts):
        return [0.5 + 0.4 * ("great" in t) + 0.05 * ("plot" in t) for t in ts]

    assert harden_texts(["the plot was great"], prob, 1) == ["the plot was"]
    assert harden_texts(["the plot was great"], prob, 2) == ["the was"]
    assert harden_texts(["great"], prob, 3) == ["great"]  # a text keeps one word


def test_clean_label_poisons_keep_their_labels_and_only_target_texts_carry_the_trigger(clean):
    t = clean.tables["training"]
    poisoned = t["poisoned"]
    assert poisoned.sum() == clean.summary.points[-1].poisons > 0
    assert (t["trained_label"] == t["label"]).all()  # labels never changed
    assert (t["label"][poisoned] == clean.summary.target_class).all()  # poisons are target-class texts
    has = ["cf" in s.split() for s in t["trained_text"]]
    assert has == list(poisoned)  # the trigger in exactly the poisoned ones
    assert (t["trained_text"][~poisoned] == t["text"][~poisoned]).all()
    for ex in clean.summary.examples:  # hardened: one word fewer, then the trigger
        assert len(ex["poisoned"].split()) == len(ex["clean"].split())
    assert clean.summary.clean_label


def test_clean_label_plants_a_backdoor_but_needs_a_higher_rate_than_dirty_label(clean, dirty):
    c, d = clean.summary.points, dirty.summary.points
    assert c[-1].asr >= 0.9 and c[-1].asr_ci.low > c[0].asr_ci.high  # it works at 20%, beyond the trigger alone
    assert d[3].asr == 1.0 and c[3].asr < d[3].asr  # at 10% dirty label is perfect, clean label is not
    assert clean.summary.min_poison_rate > dirty.summary.min_poison_rate
    assert clean.measurement("poisoning.resilience").value > dirty.measurement("poisoning.resilience").value


def test_onion_inside_the_check_detects_the_poisons_and_lowers_the_asr(dirty):
    o = dirty.summary.onion
    assert o is not None and o["auc"] >= 0.9 and o["trigger_named"] >= 0.9 * o["poisons"]
    before = {q.rate: q.asr for q in dirty.summary.points}
    after = {q["rate"]: q["asr"] for q in o["points"]}
    assert after[0.1] < before[0.1] - 0.5 and after[0.2] < before[0.2] - 0.5
    ms = {m.metric for m in dirty.measurements}
    assert {"poisoning.onion_auc", "poisoning.asr_after_onion", "poisoning.clean_accuracy_after_onion"} <= ms
    assert any(line.startswith("ONION") for line in dirty.summary.console_lines(dirty, model="m", dataset="d"))


def test_onion_without_a_language_model_is_a_one_line_config_error():
    from aisec.core.errors import ConfigError

    with pytest.raises(ConfigError, match="needs onion_lm"):
        _run("badnl", detect=["onion"])


def test_the_report_section_shows_onion_and_the_poisoned_texts(dirty):
    from aisec.report.sections.poisoning import poisoning_section

    html = poisoning_section(dirty, None)  # type: ignore[arg-type]
    assert "ONION detection AUC" in html and "ASR after ONION" in html
    assert dirty.summary.examples[0]["poisoned"] in html
