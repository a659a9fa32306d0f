"""A causal LM as a zero-shot classifier (label-word log-likelihoods), and the text attacks and checks on
decoder-only targets: HotFlip, embedding PGD, LIME and the privacy threshold attacks."""

from __future__ import annotations

import pytest
import torch

transformers = pytest.importorskip("transformers")

from aisec.core.errors import ConfigError  # noqa: E402


@pytest.fixture(scope="module")
def lm_folder():
    from aisec.testing.text_families import cached_causal_lm

    return cached_causal_lm()


@pytest.fixture(scope="module")
def zero_shot(lm_folder):
    from aisec.targets.hf_zero_shot import CausalLmClassifier
    from aisec.testing.text_families import ZERO_SHOT_LABELS, ZERO_SHOT_SUFFIX

    return CausalLmClassifier(lm_folder, labels=ZERO_SHOT_LABELS, suffix=ZERO_SHOT_SUFFIX, max_length=12)


@pytest.fixture(scope="module")
def gpt2_classifier():
    from aisec.targets.hf import HfTextTarget
    from aisec.testing.text_families import cached_family_classifier

    return HfTextTarget(cached_family_classifier("gpt2"), max_length=14)


def _reference_loglik(model, tok, prompt: str, label: str) -> float:
    """log p(label | prompt) from one unpadded forward pass on the whole string's token ids."""
    p = tok(prompt, add_special_tokens=False)["input_ids"]
    lab = tok(" " + label, add_special_tokens=False)["input_ids"]
    ids = torch.tensor([p + lab])
    with torch.no_grad():
        logp = torch.log_softmax(model(input_ids=ids).logits[0].float(), -1)
    return float(sum(logp[len(p) - 1 + i, t] for i, t in enumerate(lab)))


def _dataset(texts, y):
    from aisec.core.dataset import TensorDataset
    from aisec.core.types import Modality
    from aisec.data.text import encode_texts

    return TensorDataset(encode_texts(texts, 96), y, name="toy", modality=Modality.TEXT,
                         classes=["negative", "positive"], value_range=(0.0, 255.0))


@pytest.mark.parametrize("normalise", [False, True])
def test_scores_are_the_label_log_likelihoods_of_the_unpadded_prompt(lm_folder, normalise, no_network):
    from aisec.targets.hf_zero_shot import CausalLmClassifier
    from aisec.testing.text import toy_sentiment

    labels = {"negative": "was negative", "positive": "positive"}  # labels of 2 tokens and 1 token
    clf = CausalLmClassifier(lm_folder, labels=labels, suffix=" overall it", max_length=12, normalise=normalise)
    texts, _ = toy_sentiment(6, seed=11)
    z = clf.logits(clf.encode(texts))
    tok, bos = clf.tokenizer, clf.tokenizer.bos_token
    for i, text in enumerate(texts):
        for c, word in enumerate(labels.values()):
            ref = _reference_loglik(clf.model, tok, f"{bos} {text} overall it", word)
            if normalise:
                ref /= len(word.split())
            assert float(z[i, c]) == pytest.approx(ref, abs=1e-4)


def test_zero_shot_classifier_is_accurate_and_its_probabilities_sum_to_one(zero_shot, no_network):
    from aisec.testing.text import toy_sentiment

    texts, y = toy_sentiment(64, seed=99)
    p = zero_shot.predict(zero_shot.encode(texts))
    assert torch.allclose(p.sum(1), torch.ones(len(texts)))
    assert (p.argmax(1) == y).float().mean() >= 0.9
    assert zero_shot.spec.class_names == ("negative", "positive") and zero_shot.spec.num_classes == 2


def test_bad_labels_are_one_line_config_errors(lm_folder):
    from aisec.targets.hf_zero_shot import CausalLmClassifier

    with pytest.raises(ConfigError, match="at least 2 labels"):
        CausalLmClassifier(lm_folder, labels={"positive": "positive"})
    with pytest.raises(ConfigError, match="no tokens in its vocabulary"):
        CausalLmClassifier(lm_folder, labels={"negative": "negative", "positive": "splendiferous"})


@pytest.mark.parametrize("which", ["zero_shot", "gpt2_classifier"])
def test_hotflip_flips_decoder_targets_with_real_text(which, request):
    from aisec.attacks.text import run_text_attack
    from aisec.testing.text import toy_sentiment

    target = request.getfixturevalue(which)
    texts, y = toy_sentiment(16, seed=5)
    out = run_text_attack("hotflip", target, texts, y, {"eps": 2})
    assert out.success.any()
    assert (out.words_changed <= 2).all()
    fooled = torch.nonzero(out.success).squeeze(1)
    # the adversarial texts are real: scored afresh from their strings they give the reported prediction
    again = target.predict(target.encode([out.adv_texts[i] for i in fooled])).argmax(1)
    assert torch.equal(again, out.pred_adv[fooled])
    for i in fooled.tolist():
        diff = sum(a != b for a, b in zip(texts[i].split(), out.adv_texts[i].split(), strict=True))
        assert diff == int(out.words_changed[i]) >= 1


@pytest.mark.parametrize("which", ["zero_shot", "gpt2_classifier"])
def test_embedding_pgd_lowers_decoder_targets_accuracy_with_the_budget(which, request):
    from aisec.attacks.text import run_text_attack
    from aisec.testing.text import toy_sentiment

    target = request.getfixturevalue(which)
    texts, y = toy_sentiment(16, seed=6)
    small = run_text_attack("embedding_pgd", target, texts, y, {"eps": 0.001, "norm": "l2"})
    big = run_text_attack("embedding_pgd", target, texts, y, {"eps": 3.0, "norm": "l2"})
    assert not small.success.any()
    assert big.robust.sum() < big.clean_correct.sum()


@pytest.mark.parametrize("which", ["zero_shot", "gpt2_classifier"])
def test_lime_explains_decoder_targets_by_their_sentiment_words(which, request):
    from aisec.api import assess
    from aisec.testing.text import NEGATIVE, POSITIVE, toy_sentiment

    target = request.getfixturevalue(which)
    texts, y = toy_sentiment(4, seed=7)
    run = assess(target, _dataset(texts, y),
                 checks={"explainability": {"samples": 4, "num_samples": 150, "stability_samples": 2, "repeats": 1,
                                            "steps": 5, "random_orders": 5, "examples": 4}})
    assert not run.errors
    res = run.results[0]
    assert res.measurement("explainability.faithfulness_deletion").value > 0.5
    tops = [max(ex["spans"], key=lambda s: abs(s[1]))[0].strip(" .,!").lower() for ex in res.summary["examples"]]
    # mostly the adjective (a tiny model may also lean on a word like "is" outside its training texts)
    assert sum(t in {w.lower() for w in POSITIVE + NEGATIVE} for t in tops) >= 3


@pytest.mark.parametrize("which", ["zero_shot", "gpt2_classifier"])
def test_privacy_threshold_attacks_run_on_decoder_targets(which, request):
    from aisec.checks.privacy import PrivacyCheck, PrivacyParams
    from aisec.testing.text import toy_sentiment

    target = request.getfixturevalue(which)
    members = _dataset(*toy_sentiment(256, seed=1))  # the training reviews (seed + 1) of both models
    fresh = _dataset(*toy_sentiment(200, seed=4242))
    r = PrivacyCheck().run(target, members, PrivacyParams(nonmembers=fresh, drop_overlap=True, samples=80))
    assert {s["attack"] for s in r.summary["attacks"]} == {"loss", "confidence", "gap"}
    auc = [m for m in r.measurements if m.metric == "privacy.mia_auc"]
    assert len(auc) == 3 and all(0.0 <= m.value <= 1.0 for m in auc)
    assert r.summary["member_accuracy"] >= 0.85
