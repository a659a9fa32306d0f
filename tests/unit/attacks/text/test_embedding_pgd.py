"""Embedding PGD stays in each token's ball, never moves padding or special tokens, reports success the
model agrees with, and says that its number is a lower bound."""

from __future__ import annotations

import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from aisec.attacks.text import Vocabulary, run_text_attack
from aisec.attacks.text.embedding_pgd import reference_norm, token_norms
from aisec.core.types import Norm

SETTINGS = settings(max_examples=8, deadline=None, derandomize=True,
                    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])


@SETTINGS
@given(norm=st.sampled_from([Norm.L2, Norm.LINF]), eps=st.floats(0.0, 2.0), seed=st.integers(0, 2**16),
       steps=st.integers(1, 6), early=st.booleans(), start=st.booleans(), targeted=st.booleans())
def test_embedding_pgd_stays_in_its_ball(tiny_text_target, toy_batch, norm, eps, seed, steps, early, start, targeted):
    t = tiny_text_target
    texts, y = toy_batch
    texts, y = texts[:12], y[:12]
    tl = 1 - y if targeted else None
    out = run_text_attack("embedding_pgd", t, texts, y, {"norm": norm, "eps": eps, "steps": steps,
                          "early_stop": early, "random_start": start}, target_labels=tl, seed=seed,
                          keep_embeddings=True)
    ids = t.encode(texts)
    vocab = Vocabulary(t, need_tokenizer=False, what="test")
    unit = reference_norm(t, vocab, norm)
    delta = out.embeddings_adv - t.embed(ids).detach().cpu()
    size = token_norms(delta, norm)
    assert float(size.max()) <= eps * unit * (1 + 1e-5) + 1e-6
    assert float(size[vocab.special[ids].cpu()].abs().max()) == 0.0  # padding, [CLS], [SEP] never move
    assert torch.allclose(out.distance, size.amax(1) / unit, atol=1e-5)
    with torch.no_grad():
        pred = t.logits_from_embeddings(out.embeddings_adv, ids).argmax(1).cpu()
    attacked = out.clean_correct if tl is None else out.pred_clean != tl
    assert torch.equal(pred[attacked], out.pred_adv[attacked])
    assert out.adv_texts is None and not out.real_text and "lower bound" in out.note
    assert bool((out.queries[attacked] >= 1).all())


def test_eps_zero_is_clean_and_large_eps_fools(tiny_text_target, toy_batch):
    texts, y = toy_batch
    zero = run_text_attack("embedding_pgd", tiny_text_target, texts, y, {"eps": 0.0, "steps": 3})
    assert torch.equal(zero.robust, zero.clean_correct)
    big = run_text_attack("embedding_pgd", tiny_text_target, texts, y, {"eps": 3.0, "steps": 10})
    assert big.robust.float().mean() < zero.robust.float().mean()
