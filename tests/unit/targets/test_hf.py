"""HF text target from a tiny BERT built from a config in the test; proves no network is touched."""

from __future__ import annotations

import pytest
import torch

transformers = pytest.importorskip("transformers")

from aisec.core.errors import TargetError  # noqa: E402
from aisec.core.target import TextTarget  # noqa: E402
from aisec.targets.hf import HfTextTarget  # noqa: E402

WORDS = ["good", "bad", "film", "movie", "great", "awful", "the", "a", "is", "was", "plot", "acting"]


@pytest.fixture(scope="module")
def tiny_folder(tmp_path_factory):
    from transformers import BertConfig, BertForSequenceClassification

    from aisec.testing.text import word_tokenizer

    d = tmp_path_factory.mktemp("tiny-bert")
    (d / "vocab.txt").write_text("\n".join(["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", *WORDS]) + "\n")
    tok = word_tokenizer(d / "vocab.txt")
    cfg = BertConfig(vocab_size=len(WORDS) + 5, hidden_size=16, num_hidden_layers=1, num_attention_heads=2,
                     intermediate_size=32, max_position_embeddings=32, num_labels=2)
    torch.manual_seed(0)
    BertForSequenceClassification(cfg).save_pretrained(d)
    tok.save_pretrained(d)
    return d



def test_loads_offline_white_box(tiny_folder, no_network):
    t = HfTextTarget(tiny_folder, max_length=12)
    assert isinstance(t, TextTarget)
    ids = t.encode(["good film", "the plot was awful"])
    assert ids.shape == (2, 12)
    # Words of the vocabulary get their own ids, not [UNK] (transformers 5 ignores BertTokenizerFast(vocab_file=)
    # and would map every word to [UNK]; the saved tokenizer must round-trip the vocabulary).
    unk = t.tokenizer.unk_token_id
    vocab = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", *WORDS]
    assert t.tokenizer.convert_tokens_to_ids(["good", "awful"]) == [vocab.index("good"), vocab.index("awful")]
    assert unk not in ids[0].tolist() and unk not in ids[1].tolist()
    assert t.decode(ids) == ["good film", "the plot was awful"]
    p = t.predict(ids)
    assert p.shape == (2, 2) and torch.allclose(p.sum(1), torch.ones(2))
    e = t.embed(ids).requires_grad_(True)
    t.logits_from_embeddings(e, ids)[:, 0].sum().backward()
    assert e.grad is not None and e.grad.abs().sum() > 0
    assert torch.allclose(t.logits(ids), t.logits_from_embeddings(t.embed(ids), ids))


def test_hub_name_refused(no_network):
    with pytest.raises(TargetError, match="never downloads"):
        HfTextTarget("bert-base-uncased")


def test_max_length_is_capped_at_the_model_positions(tiny_folder, no_network):
    """The default max_length (128) exceeds this model's 32 positions; longer inputs would crash the model."""
    t = HfTextTarget(tiny_folder)
    assert t.max_length == 32 and t.spec.input_shape == (32,)
    ids = t.encode(["good film " * 40])
    assert ids.shape == (1, 32) and t.predict(ids).shape == (1, 2)
