"""Text attacks against independent references on tiny BERTs.

HotFlip's first-order scores equal finite-difference directional derivatives of the real loss (the
formula and its batched indexing), and rank brute-force one-word swaps (every candidate sent through
the model) well where the model is smooth (an untrained tiny BERT; MiniLM in the slow test in
tests/unit/attacks/text/test_minilm.py). Embedding PGD matches a straightforward hand-written loop.
"""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

pytest.importorskip("transformers")

from aisec.attacks.text import Vocabulary, run_text_attack
from aisec.attacks.text.embedding_pgd import reference_norm
from aisec.attacks.text.hotflip import embedding_matrix, first_order_scores
from aisec.core.types import Norm


@pytest.fixture(scope="module")
def trained():
    from aisec.targets.hf import HfTextTarget
    from aisec.testing.text import cached_tiny_sentiment_bert

    return HfTextTarget(cached_tiny_sentiment_bert(), max_length=16)


@pytest.fixture(scope="module")
def untrained():
    from aisec.targets.hf import HfTextTarget
    from aisec.testing.text import cached_tiny_sentiment_bert

    return HfTextTarget(cached_tiny_sentiment_bert(steps=0), max_length=16)


def _grad(t, ids, y):
    e = t.embed(ids).detach().requires_grad_(True)
    loss = F.cross_entropy(t.logits_from_embeddings(e, ids), y, reduction="sum")
    (g,) = torch.autograd.grad(loss, e)
    return e.detach(), g, float(loss.detach())


def test_first_order_scores_are_directional_derivatives(trained):
    from aisec.testing.text import toy_sentiment

    texts, y = toy_sentiment(4, seed=3)
    ids = trained.encode(texts)
    vocab = Vocabulary(trained, need_tokenizer=True, what="test")
    emb = embedding_matrix(trained, vocab.size)
    words = torch.nonzero(vocab.word).squeeze(1)[:10]
    for r in range(len(texts)):
        e, g, _ = _grad(trained, ids[r : r + 1], y[r : r + 1])
        pos = int(torch.nonzero(vocab.editable(ids[r : r + 1])[0])[0])
        cur = ids[r, pos].expand(words.numel())
        s = first_order_scores(emb, g[0, pos].expand(words.numel(), -1), cur, words[:, None]).squeeze(1)
        h = 1e-3
        e_plus = e.repeat(words.numel(), 1, 1)
        e_plus[:, pos] += h * (emb[words] - emb[ids[r, pos]])
        e_minus = e.repeat(words.numel(), 1, 1)
        e_minus[:, pos] -= h * (emb[words] - emb[ids[r, pos]])
        rep = ids[r].expand(words.numel(), -1)
        with torch.no_grad():
            lp = F.cross_entropy(trained.logits_from_embeddings(e_plus, rep),
                                 y[r].expand(words.numel()), reduction="none")
            lm = F.cross_entropy(trained.logits_from_embeddings(e_minus, rep), y[r].expand(words.numel()),
                                 reduction="none")
        fd = (lp - lm) / (2 * h)
        assert torch.allclose(s, fd, atol=1e-3 + 0.05 * float(fd.abs().max())), (s, fd)


def test_first_order_scores_rank_brute_force_swaps_on_a_smooth_model(untrained):
    from scipy.stats import spearmanr

    from aisec.testing.text import toy_sentiment

    texts, y = toy_sentiment(6, seed=11)
    ids = untrained.encode(texts)
    vocab = Vocabulary(untrained, need_tokenizer=True, what="test")
    emb = embedding_matrix(untrained, vocab.size)
    words = torch.nonzero(vocab.word).squeeze(1)
    rhos = []
    for r in range(len(texts)):
        _, g, base = _grad(untrained, ids[r : r + 1], y[r : r + 1])
        est, real = [], []
        for pos in torch.nonzero(vocab.editable(ids[r : r + 1])[0]).squeeze(1).tolist():
            cand = words[words != ids[r, pos]]
            est.append(first_order_scores(emb, g[0, pos].expand(cand.numel(), -1), ids[r, pos].expand(cand.numel()),
                                          cand[:, None]).squeeze(1))
            seqs = ids[r].repeat(cand.numel(), 1)
            seqs[:, pos] = cand  # brute force: every swap through the real model
            with torch.no_grad():
                real.append(F.cross_entropy(untrained.logits(seqs), y[r].expand(cand.numel()), reduction="none") - base)
        rhos.append(spearmanr(torch.cat(est).numpy(), torch.cat(real).numpy())[0])
    assert min(rhos) > 0.8, rhos


def _hand_pgd(t, ids, y, eps, steps, norm):
    """Plain PGD written out: per-token projection, masked special tokens, no early stop, no random start."""
    vocab = Vocabulary(t, need_tokenizer=False, what="test")
    unit = reference_norm(t, vocab, norm)
    r, alpha = eps * unit, 2.5 / steps * eps * unit
    e0 = t.embed(ids).detach()
    m = (~vocab.special[ids]).float().unsqueeze(-1)
    d = torch.zeros_like(e0)
    for _ in range(steps):
        d.requires_grad_(True)
        loss = F.cross_entropy(t.logits_from_embeddings(e0 + d * m, ids), y, reduction="sum")
        (g,) = torch.autograd.grad(loss, d)
        with torch.no_grad():
            if norm is Norm.LINF:
                d = (d + alpha * g.sign()).clamp(-r, r)
            else:
                d = d + alpha * g / g.norm(dim=-1, keepdim=True).clamp_min(1e-12)
                d = d * torch.clamp(r / d.norm(dim=-1, keepdim=True).clamp_min(1e-12), max=1.0)
            d = d * m
    return e0 + d.detach() * m


@pytest.mark.parametrize("norm", [Norm.L2, Norm.LINF])
def test_embedding_pgd_matches_a_hand_written_loop(trained, norm):
    from aisec.testing.text import toy_sentiment

    texts, y = toy_sentiment(10, seed=21)
    ids = trained.encode(texts)
    out = run_text_attack("embedding_pgd", trained, texts, y, {"norm": norm, "eps": 0.8, "steps": 7,
                          "early_stop": False, "random_start": False}, keep_embeddings=True)
    ref = _hand_pgd(trained, ids, y, 0.8, 7, norm)
    att = out.clean_correct
    assert torch.allclose(out.embeddings_adv[att], ref[att], atol=1e-5)
    with torch.no_grad():
        pred = trained.logits_from_embeddings(ref, ids).argmax(1)
    assert torch.equal(out.pred_adv[att], pred[att])
