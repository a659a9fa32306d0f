"""HotFlip on a tiny trained BERT: it lowers accuracy, never exceeds its word budget, never edits stop
words, special tokens or padding, reports consistent success/queries/texts, and touches no network."""

from __future__ import annotations

import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from aisec.attacks.base import run_attack
from aisec.attacks.text import Vocabulary, run_text_attack, stop_words
from aisec.core.errors import CapabilityError, ConfigError, DataError

SETTINGS = settings(max_examples=6, deadline=None, derandomize=True,
                    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])


def _predict(target, ids):
    with torch.no_grad():
        return target.predict(ids).argmax(1).cpu()


def test_hotflip_lowers_accuracy_with_real_text(tiny_text_target, toy_batch):
    texts, y = toy_batch
    out = run_text_attack("hotflip", tiny_text_target, texts, y, {"eps": 2})
    clean = out.clean_correct.float().mean()
    assert clean >= 0.9  # the tiny model has accuracy to lose
    assert out.robust.float().mean() <= clean - 0.15
    assert out.real_text and out.adv_texts is not None and len(out.adv_texts) == len(texts)
    assert out.texts == [" ".join(t.split()) for t in texts]  # decoded originals
    flipped = torch.nonzero(out.success).squeeze(1)
    assert flipped.numel() > 0
    # the adversarial *text*, tokenised afresh, is what fools the model
    again = _predict(tiny_text_target, tiny_text_target.encode([out.adv_texts[i] for i in flipped.tolist()]))
    assert torch.equal(again, out.pred_adv[flipped])
    for i in flipped.tolist():
        changed = sum(a != b for a, b in zip(out.texts[i].split(), out.adv_texts[i].split(), strict=True))
        assert changed == int(out.words_changed[i]) >= 1
    assert (out.queries[out.clean_correct] >= 1).all()
    rows = out.records()
    assert rows[int(flipped[0])]["adv_text"] == out.adv_texts[int(flipped[0])]


@SETTINGS
@given(budget=st.integers(0, 3), seed=st.integers(0, 2**16), targeted=st.booleans(),
       verify=st.integers(1, 12), neighbours=st.integers(1, 60))
def test_hotflip_budget_is_hard_and_edits_only_content_words(
    tiny_text_target, budget, seed, targeted, verify, neighbours
):
    from aisec.testing.text import toy_sentiment

    texts, y = toy_sentiment(12, seed=seed)
    tl = 1 - y if targeted else None
    t = tiny_text_target
    out = run_text_attack("hotflip", t, texts, y, {"eps": budget, "verify": verify, "neighbours": neighbours},
                          target_labels=tl, seed=seed)
    ids = t.encode(texts).cpu()
    diff = out.ids_adv != ids
    assert torch.equal(diff.sum(1), out.words_changed)
    assert int(out.words_changed.max()) <= budget
    vocab = Vocabulary(t, need_tokenizer=True, what="test")
    tokens = t.tokenizer.convert_ids_to_tokens(list(range(vocab.size)))
    stops = stop_words()
    for i, j in torch.nonzero(diff).tolist():
        old, new = tokens[int(ids[i, j])], tokens[int(out.ids_adv[i, j])]
        for tok in (old, new):
            assert tok.isalpha() and tok not in stops and not vocab.special[t.tokenizer.convert_tokens_to_ids(tok)]
    # success agrees with the target's own predictions on the adversarial ids
    pred = _predict(t, out.ids_adv)
    assert torch.equal(pred, out.pred_adv)
    if tl is None:
        assert torch.equal(out.success, (pred != y) & out.clean_correct)
    else:
        assert torch.equal(out.success, (pred == tl) & (out.pred_clean != tl))
    if budget == 0:
        assert not out.success.any() and not diff.any()


def test_robust_accuracy_never_rises_with_budget(tiny_text_target):
    from aisec.testing.text import toy_sentiment

    texts, y = toy_sentiment(24, seed=7)
    fooled_before = None
    accs = []
    for b in (0, 1, 2, 3):
        out = run_text_attack("hotflip", tiny_text_target, texts, y, {"eps": b})
        accs.append(float(out.robust.float().mean()))
        if fooled_before is not None:  # greedy: a larger budget extends the same path
            assert bool((out.success | ~fooled_before).all())
        fooled_before = out.success
    assert accs == sorted(accs, reverse=True)
    assert accs[0] > accs[-1]


def test_hotflip_runs_through_the_shared_evasion_driver(tiny_text_target, toy_batch):
    texts, y = toy_batch
    ids = tiny_text_target.encode(texts)
    out = run_attack("hotflip", tiny_text_target, ids, y, {"eps": 1})
    assert out.x_adv.shape == ids.shape
    assert int((out.x_adv.long() != ids.cpu()).sum(1).max()) <= 1
    assert torch.equal(_predict(tiny_text_target, out.x_adv.long()), out.pred_adv)


def test_text_attacks_refuse_what_they_cannot_do(tiny_text_target, toy_batch, digits_target, digits_test_batch):
    texts, y = toy_batch
    with pytest.raises(CapabilityError, match="attacks text"):
        run_text_attack("hotflip", digits_target, digits_test_batch[0][:2], digits_test_batch[1][:2])
    with pytest.raises(ConfigError, match="whole number"):
        run_text_attack("hotflip", tiny_text_target, texts, y, {"eps": 1.5})
    with pytest.raises(ConfigError, match="not text"):
        run_text_attack("pgd", tiny_text_target, texts, y)
    with pytest.raises(ConfigError, match="norms"):
        run_text_attack("hotflip", tiny_text_target, texts, y, {"norm": "l2"})
    with pytest.raises(ConfigError, match="labels"):
        run_text_attack("hotflip", tiny_text_target, texts, y[:3])
    with pytest.raises(DataError, match="shape"):
        run_text_attack("hotflip", tiny_text_target, torch.zeros(2, 5, dtype=torch.long), y[:2])
    with pytest.raises(ConfigError, match="embeddings"):
        run_attack("embedding_pgd", tiny_text_target, tiny_text_target.encode(texts[:2]), y[:2])


def test_load_and_attack_touch_no_network(no_network, toy_batch):
    from aisec.targets.hf import HfTextTarget
    from aisec.testing.text import cached_tiny_sentiment_bert

    t = HfTextTarget(cached_tiny_sentiment_bert(), max_length=16)
    texts, y = toy_batch
    out = run_text_attack("hotflip", t, texts[:8], y[:8], {"eps": 1})
    pgd = run_text_attack("embedding_pgd", t, texts[:8], y[:8], {"steps": 3})
    assert out.y.shape == pgd.y.shape == (8,)
