"""The synonym attack's query batching: length-sorted batches cut to their longest text score exactly as
full-width batches do, in the caller's order, and a target without ``trims_padding`` gets full width."""

from __future__ import annotations

import torch


def test_trimmed_batches_give_the_full_width_probabilities(tiny_text_target, toy_batch) -> None:
    from aisec.attacks.text.synonym import _probs

    texts = [*toy_batch[0], "a", "the plot and the cast and the music were truly simply dull"]
    full = tiny_text_target.predict(tiny_text_target.encode(texts).long())
    got = _probs(tiny_text_target, texts, 5)  # several batches of mixed lengths
    assert got.shape == full.shape
    assert torch.allclose(got, full, atol=1e-5)
    assert _probs(tiny_text_target, [], 5).shape == (0, 2)


def test_a_target_without_trims_padding_gets_full_width_ids(tiny_text_target, toy_batch) -> None:
    from aisec.attacks.text.synonym import _probs

    class FixedWidth:  # a text target whose model needs (N, max_length) ids
        spec = tiny_text_target.spec

        def __init__(self) -> None:
            self.widths: list[int] = []

        def encode(self, texts: list[str]) -> torch.Tensor:
            return tiny_text_target.encode(texts)

        def predict(self, ids: torch.Tensor) -> torch.Tensor:
            self.widths.append(int(ids.shape[1]))
            return tiny_text_target.predict(ids)

    t = FixedWidth()
    _probs(t, toy_batch[0][:7], 3)  # type: ignore[arg-type]
    assert t.widths == [tiny_text_target.max_length] * 3


def test_hf_batches_are_cut_to_their_longest_text(tiny_text_target, toy_batch, monkeypatch) -> None:
    from aisec.attacks.text.synonym import _probs

    widths: list[int] = []
    predict = tiny_text_target.predict

    def spy(ids: torch.Tensor) -> torch.Tensor:
        widths.append(int(ids.shape[1]))
        return predict(ids)

    monkeypatch.setattr(tiny_text_target, "predict", spy)
    texts = ["a good film", "the plot was dull", *toy_batch[0][:4]]
    _probs(tiny_text_target, texts, 2)
    lengths = sorted(((tiny_text_target.encode(texts) != tiny_text_target.pad_id).sum(1)).tolist(), reverse=True)
    assert widths == lengths[::2]  # longest first, each batch as wide as its longest text
