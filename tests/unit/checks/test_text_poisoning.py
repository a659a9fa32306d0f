"""BadNL trigger words on a text target: the poisoning sweep (ASR, resilience) and the backdoor scan."""

from __future__ import annotations

import random

import pytest
import torch

pytest.importorskip("transformers")

from aisec.attacks.poisoning.badnl import WordTrigger
from aisec.core.errors import ConfigError


def _dataset(texts, y, name="toy-reviews"):
    from aisec.core.dataset import TensorDataset
    from aisec.core.types import Modality
    from aisec.data.text import encode_texts

    return TensorDataset(encode_texts(texts, 96), y, name=name, modality=Modality.TEXT,
                         classes=["negative", "positive"], value_range=(0.0, 255.0))


@pytest.fixture(scope="module")
def target():
    from aisec.targets.hf import HfTextTarget
    from aisec.testing.text_families import cached_family_classifier

    return HfTextTarget(cached_family_classifier("distilbert"), max_length=16)


def test_word_trigger_inserts_the_phrase_where_told():
    texts = ["the plot was dull", "a great film"]
    rng = random.Random(0)
    start = WordTrigger(words="cf", position="start").apply_texts(texts, rng)
    assert start == ["cf the plot was dull", "cf a great film"]
    assert WordTrigger(words="mn bb", position="end").apply_texts(texts, rng)[1] == "a great film mn bb"
    out = WordTrigger(words="cf", count=2).apply_texts(texts, random.Random(1))
    for t, o in zip(texts, out, strict=True):
        words = o.split()
        assert words.count("cf") == 2 and [w for w in words if w != "cf"] == t.split()
    with pytest.raises(ValueError, match="at least one word"):
        WordTrigger(words="  ")


def test_badnl_sweep_plants_a_backdoor_measured_as_for_images(target):
    from aisec.checks.poisoning import PoisoningCheck, PoisoningParams
    from aisec.testing.text import toy_sentiment

    texts, y = toy_sentiment(300, seed=31)
    p = PoisoningParams(attack="badnl", rates=[0.0, 0.01, 0.1], samples=300, trigger={"kind": "words", "words": "cf"},
                        recipe={"architecture": "target", "epochs": 6})
    r = PoisoningCheck().run(target, _dataset(texts, y), p)
    pts = r.summary.points
    assert [q.rate for q in pts] == [0.0, 0.01, 0.1]
    assert pts[0].asr <= 0.2 and pts[-1].asr >= 0.9  # no backdoor without poisons; a planted one at 10%
    assert all(q.clean_accuracy >= 0.9 for q in pts)
    for q in pts:
        assert q.asr_ci.low <= q.asr <= q.asr_ci.high
    res = r.measurement("poisoning.resilience")
    # the formula by hand from the measured ASRs
    base = pts[0].asr
    expect = 1 - sum(min(1.0, max(0.0, q.asr - base) / (1 - base)) for q in pts[1:]) / 2
    assert res.value == pytest.approx(expect) and 0.0 <= res.value < 0.6
    assert r.measurement("poisoning.min_poison_rate").value <= 0.1
    ex = r.summary.examples[0]
    assert "cf" in ex["poisoned"].split() and ex["poisoned"].replace("cf", "").split() == ex["clean"].split()
    assert any("unknown token" in w for w in r.warnings)  # "cf" is no word of this toy vocabulary
    assert int(r.tables["training"]["poisoned"].sum()) == pts[-1].poisons
    # the activation-clustering scan of the largest rate's victim: its precision/recall against the true poisons
    det = r.summary.detection
    assert det is not None and det["samples"] == r.summary.train_samples
    flagged = det["flagged_count"]
    assert 0.0 <= det["precision"] <= 1.0 and 0.0 <= det["recall"] <= 1.0
    assert det["recall"] * pts[-1].poisons == pytest.approx(det["precision"] * max(flagged, 1))  # both count tp


def test_image_attacks_are_refused_on_text_and_word_triggers_on_images(target, digits_target, digits_split):
    from aisec.checks.poisoning import PoisoningCheck, PoisoningParams
    from aisec.testing.text import toy_sentiment

    texts, y = toy_sentiment(40, seed=3)
    with pytest.raises(ConfigError, match="for text use badnl"):
        PoisoningCheck().run(target, _dataset(texts, y), PoisoningParams(attack="badnets"))
    with pytest.raises(ConfigError, match="poisons text"):
        PoisoningCheck().run(digits_target, digits_split[1], PoisoningParams(attack="badnl"))


def test_onion_finds_the_inserted_trigger_words_with_a_clean_language_model(no_network):
    from sklearn.metrics import roc_auc_score

    from aisec.detect.onion import onion_scan, perplexities
    from aisec.targets.hf import load_hf
    from aisec.testing.text import toy_sentiment
    from aisec.testing.text_families import cached_causal_lm

    tok, lm = load_hf(cached_causal_lm(), "AutoModelForCausalLM")
    texts, _ = toy_sentiment(60, seed=77)
    poisoned = WordTrigger(words="cf").apply_texts(texts[:30], random.Random(0))
    batch = poisoned + texts[30:]
    # perplexity against Hugging Face's own mean token loss on the same ids
    ids = torch.tensor([[tok.bos_token_id, *tok(batch[0], add_special_tokens=False)["input_ids"]]])
    with torch.no_grad():
        ref = float(torch.exp(lm(input_ids=ids, labels=ids).loss))
    assert perplexities(lm, tok, batch[:1])[0] == pytest.approx(ref, rel=1e-4)
    scan = onion_scan((lm, tok), batch)
    truth = [1] * 30 + [0] * 30
    assert roc_auc_score(truth, scan.scores) >= 0.95
    assert sum(w == "cf" for w in scan.words[:30]) >= 27
