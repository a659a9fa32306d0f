"""Every transformer family aisec's text code handles, as tiny random configs trained in seconds.

Encoders (BERT, DistilBERT, RoBERTa, DeBERTa v1/v2, ALBERT, XLNet, ELECTRA) and decoder-only
classifiers (GPT-2, Llama, Qwen2, OPT): the target's logits must equal Hugging Face's own forward
on token ids (the reference, with HF's own padding logic), decoder-only classifiers must agree
under left and right padding and never print HF's "will not detect padding tokens in
inputs_embeds" warning, and the robustness check (HotFlip + embedding PGD) runs on each.
"""

from __future__ import annotations

import logging

import pytest
import torch

transformers = pytest.importorskip("transformers")

from aisec.testing.text_families import DECODERS, ENCODERS, FAMILIES  # noqa: E402

PAD_WARNING = "will not detect padding tokens"


def _target(family: str, max_length: int = 14):
    from aisec.targets.hf import HfTextTarget
    from aisec.testing.text_families import cached_family_classifier

    return HfTextTarget(cached_family_classifier(family), max_length=max_length)


@pytest.fixture(scope="module")
def reviews():
    from aisec.testing.text import toy_sentiment

    return toy_sentiment(24, seed=321)


@pytest.fixture
def hf_log(caplog):
    """Hugging Face's log records reach caplog; its once-only warnings are re-armed."""
    from transformers.utils import logging as hf_logging

    hf_logging.enable_propagation()
    warning_once = getattr(logging.Logger, "warning_once", None)
    if hasattr(warning_once, "cache_clear"):
        warning_once.cache_clear()
    caplog.set_level(logging.WARNING)
    yield caplog
    hf_logging.disable_propagation()


@pytest.mark.parametrize("family", ENCODERS + DECODERS)
def test_logits_match_hugging_face_on_token_ids_and_the_model_learnt(family, reviews, no_network):
    texts, y = reviews
    t = _target(family)
    ids = t.encode(texts)
    mask = (ids != t.pad_id).long()
    with torch.no_grad():
        ref = t.model(input_ids=ids, attention_mask=mask).logits  # HF's own pooling from the ids
        z = t.logits(ids)
    assert torch.allclose(z, ref, atol=1e-5), (z - ref).abs().max()
    assert (z.argmax(1) == y).float().mean() >= 0.85
    assert t.decode(ids) == texts


@pytest.mark.parametrize("family", DECODERS)
def test_decoder_classifier_pads_either_side_to_the_same_logits_without_the_hf_warning(family, reviews, hf_log):
    texts, _ = reviews
    t = _target(family)
    assert t.decoder_only
    right = t.tokenizer(texts, padding="max_length", max_length=14, padding_side="right",
                        return_tensors="pt")["input_ids"]
    left = t.tokenizer(texts, padding="max_length", max_length=14, padding_side="left",
                       return_tensors="pt")["input_ids"]
    assert not torch.equal(left, right)
    hf_log.clear()
    with torch.no_grad():
        zr = t.logits_from_embeddings(t.embed(right), right)
        zl = t.logits_from_embeddings(t.embed(left), left)
        alone = torch.cat([t.logits(t.tokenizer([s], return_tensors="pt")["input_ids"]) for s in texts[:4]])
    assert torch.allclose(zr, zl, atol=1e-5) and torch.allclose(zr[:4], alone, atol=1e-5)
    assert PAD_WARNING not in hf_log.text
    # the control: HF's own head given inputs_embeds warns, and pools a padding position under right padding
    with torch.no_grad():
        hf = t.model(inputs_embeds=t.embed(right), attention_mask=(right != t.pad_id).long()).logits
    assert PAD_WARNING in hf_log.text
    assert not torch.allclose(hf, zr, atol=1e-4)


def test_gpt2_without_a_padding_token_pads_with_end_of_text(no_network):
    t = _target("gpt2")
    assert FAMILIES["gpt2"].specials == {"eos": "<|endoftext|>"}  # the saved tokenizer has no pad token
    assert t.pad_id == t.tokenizer.eos_token_id == t.model.config.pad_token_id


def test_encoder_quirks_xlnet_left_padding_albert_factorised_roberta_positions(no_network):
    xl = _target("xlnet")
    ids = xl.encode(["the plot was dull"])
    assert xl.tokenizer.padding_side == "left" and int(ids[0, 0]) == xl.pad_id
    assert xl.tokenizer.convert_ids_to_tokens(ids[0, -2:].tolist()) == ["<sep>", "<cls>"]
    al = _target("albert")
    assert al.embedding_matrix.shape[1] == 16 != al.model.config.hidden_size
    de = _target("deberta-v2")
    assert de.model.config.relative_attention and not de.model.config.position_biased_input
    # RoBERTa numbers positions from pad_token_id + 1: 34 positions hold 32 tokens
    ro = _target("roberta", max_length=128)
    assert ro.max_length == ro.model.config.max_position_embeddings - 2
    long = ro.encode(["the film was good " * 20])
    assert long.shape == (1, ro.max_length) and torch.isfinite(ro.logits(long)).all()


@pytest.mark.parametrize("family", ENCODERS + DECODERS)
def test_robustness_check_runs_hotflip_and_embedding_pgd_on_every_family(family, reviews):
    from aisec.checks.robustness import RobustnessCheck, RobustnessParams
    from aisec.core.dataset import TensorDataset
    from aisec.core.types import Modality
    from aisec.data.text import encode_texts

    texts, y = reviews
    t = _target(family)
    data = TensorDataset(encode_texts(texts[:12], 96), y[:12], name="toy", modality=Modality.TEXT,
                         classes=["negative", "positive"], value_range=(0.0, 255.0))
    params = RobustnessParams(samples=12, attacks=[
        {"name": "hotflip", "eps": [1, 2]}, {"name": "embedding_pgd", "norm": "l2", "eps": [0.01, 3.0]}])
    r = RobustnessCheck().run(t, data, params)
    clean = r.summary["clean_accuracy"]
    assert clean >= 0.8
    for c in r.summary["curves"]:
        acc = [p["robust_accuracy"] for p in c["points"]]
        assert acc == sorted(acc, reverse=True) and acc[0] <= clean
    pgd = r.summary["curves"][1]
    assert pgd["points"][-1]["robust_accuracy"] < clean  # 3 median embedding norms a token: far past any word swap
    table = r.tables["samples"]
    for text, adv, k, fooled in zip(table["text"], table["hotflip-l0:adv_text"], table["hotflip-l0:words_changed"],
                                    table["hotflip-l0@2:fooled"], strict=True):
        diff = sum(a != b for a, b in zip(text.split(), adv.split(), strict=True))
        assert diff == k <= 2 and (k > 0 or not fooled)


def test_hotflip_swaps_whole_words_under_a_byte_level_bpe_tokenizer(tmp_path, no_network):
    """GPT-2-style "Ġword" tokens: whole words are editable, word pieces and their heads are not."""
    from aisec.attacks.text import Vocabulary, run_text_attack
    from aisec.targets.hf import HfTextTarget
    from aisec.testing.text import toy_sentiment
    from aisec.testing.text_families import byte_level_bpe_tokenizer, tiny_family_classifier

    tok = byte_level_bpe_tokenizer()
    t = HfTextTarget(tiny_family_classifier("gpt2", tmp_path, tokenizer=tok), max_length=16)
    vocab = Vocabulary(t, need_tokenizer=True, what="test")
    names = t.tokenizer.convert_ids_to_tokens(list(range(vocab.size)))
    words = {n for n, w in zip(names, vocab.word.tolist(), strict=True) if w}
    assert words and all(n.startswith("\u0120") for n in words)
    assert "\u0120the" not in words  # a stop word
    # an unseen word falls into pieces: neither its head nor its tail may be swapped
    split = t.tokenizer(["the film was magnificent"], return_tensors="pt")["input_ids"]
    pieces = t.tokenizer.convert_ids_to_tokens(split[0].tolist())
    assert len(pieces) > 4 and pieces[3].startswith("\u0120m")
    assert vocab.editable(split)[0].tolist() == [False, True, False] + [False] * (len(pieces) - 3)
    texts, y = toy_sentiment(16, seed=5)
    ids = t.encode(texts)
    assert (t.predict(ids).argmax(1) == y).float().mean() >= 0.85
    out = run_text_attack("hotflip", t, texts, y, {"eps": 2})
    assert out.success.any()
    for i in torch.nonzero(out.success).squeeze(1).tolist():
        a, b = texts[i].split(), out.adv_texts[i].split()
        assert len(a) == len(b) and 1 <= sum(x != z for x, z in zip(a, b, strict=True)) <= 2
