"""HotFlip: greedy gradient-guided word substitution, each flip verified by a real forward pass.

Ebrahimi, Rao, Lowd & Dou, "HotFlip: White-Box Adversarial Examples for Text Classification",
ACL 2018, https://arxiv.org/abs/1712.06751

Swapping token ``i`` (embedding ``e_i``) for token ``v`` changes the loss by about
``(e_v - e_i) · ∂L/∂e_i`` (first-order Taylor). At each step the attack scores every candidate
swap of every sample in one batched product, sends the ``verify`` best of each sample through the
model for real (one batched forward pass over samples × candidates) and keeps the swap with the
largest *real* loss, if it raises the loss at all. It stops when the prediction flips, when no
swap helps, or when ``eps`` words are changed — a hard budget: a position is edited at most once
and at most ``eps`` positions are.

Candidates are the ``neighbours`` nearest tokens to the original by cosine similarity in the
model's own input-embedding matrix, restricted to whole-word, alphabetic, non-stop-word tokens;
only such words are ever replaced (never padding, [CLS]/[SEP], stop words, punctuation or word
pieces), so the adversarial input is real text that reads much like the original.

Norm: l0 in words (``eps`` = maximum words changed). Needs: gradients and embeddings (a white-box
text target, e.g. a local Hugging Face classifier). Shapes: token ids ``(N, max_length)``.

>>> from aisec.attacks.text import run_text_attack
>>> out = run_text_attack("hotflip", target, ["an engaging, moving film"], torch.tensor([1]), {"eps": 2})
>>> out.adv_texts[0], int(out.words_changed[0]), int(out.queries[0])
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from pydantic import Field, field_validator

from aisec.attacks.text.base import (
    TEXT_CAPS,
    TextAttackParams,
    TextBatch,
    Vocabulary,
    as_text_target,
    logits_from_embeddings,
)
from aisec.core.registry import AttackKind, register
from aisec.core.target import Target, TextTarget
from aisec.core.types import Modality, Norm


def embedding_matrix(target: TextTarget, vocab_size: int) -> torch.Tensor:
    """The target's input-embedding matrix ``(V, D)``, detached."""
    w = getattr(target, "embedding_matrix", None)
    if isinstance(w, torch.Tensor):
        return w.detach()
    with torch.no_grad():
        return target.embed(torch.arange(vocab_size, device=target.spec.device)).detach()


def nearest_neighbours(
    emb: torch.Tensor, tokens: torch.Tensor, allowed: torch.Tensor, k: int, *, chunk: int = 512
) -> torch.Tensor:
    """The ``k`` tokens most cosine-similar to each of ``tokens`` among ``allowed`` (never itself).

    Returns ``(len(tokens), k)`` ids, ``-1`` where fewer than ``k`` allowed tokens exist.
    Batched over ``chunk`` query tokens at a time (a ``chunk × V`` similarity block).
    """
    unit = F.normalize(emb.float(), dim=1)
    k = min(k, int(allowed.sum()))
    out = torch.full((tokens.numel(), max(k, 0)), -1, dtype=torch.long, device=emb.device)
    if k == 0:
        return out
    for i in range(0, tokens.numel(), chunk):
        t = tokens[i : i + chunk]
        sim = unit[t] @ unit.T
        sim[:, ~allowed] = -torch.inf
        sim[torch.arange(t.numel(), device=sim.device), t] = -torch.inf
        val, idx = sim.topk(k, dim=1)
        out[i : i + chunk] = torch.where(torch.isfinite(val), idx, torch.full_like(idx, -1))
    return out


def first_order_scores(
    emb: torch.Tensor, grad: torch.Tensor, current: torch.Tensor, candidates: torch.Tensor
) -> torch.Tensor:
    """HotFlip's estimate of the loss change ``(e_v - e_i) · g_i`` for each candidate ``v``.

    ``grad`` ``(P, D)`` and ``current`` ``(P,)`` per position; ``candidates`` ``(P, k)`` (``-1``:
    none, scored ``-inf``). Returns ``(P, k)``.
    """
    ec = emb[candidates.clamp_min(0)]  # (P, k, D)
    s = torch.einsum("pkd,pd->pk", ec, grad) - (emb[current] * grad).sum(-1, keepdim=True)
    return s.masked_fill(candidates < 0, -torch.inf)


@register(
    "text",
    "hotflip",
    requires=TEXT_CAPS,
    norms={Norm.L0},
    targeted=True,
    kind=AttackKind.FIXED_EPS,
    paper="https://arxiv.org/abs/1712.06751",
    modalities={Modality.TEXT},
    # the budget counts words changed, in whole numbers; greedy and stopping at its first flip, one
    # run at the largest budget gives every smaller one. The default sweep is 1, 2 and 3 words.
    budget_unit="words",
    integer_budget=True,
    nested_budgets=True,
    default_eps=(1.0, 2.0, 3.0),
    real_text=True,
)
class HotFlip:
    """HotFlip word substitution: gradient-ranked nearest-neighbour swaps, verified, within a word budget."""

    class Params(TextAttackParams):
        norm: Norm = Field(default=Norm.L0, description="l0: the budget counts words changed.")
        eps: float = Field(default=2, ge=0, description="Most words changed per text (a hard budget); an integer.")
        neighbours: int = Field(default=20, ge=1, description="Candidate replacements per word: its nearest "
                                                              "tokens by cosine in the input-embedding matrix.")
        verify: int = Field(default=8, ge=1, description="Best first-order swaps per sample checked with a real "
                                                         "forward pass at each step.")

        @field_validator("eps")
        @classmethod
        def _whole(cls, v: float) -> float:
            if v != int(v):
                raise ValueError(f"eps counts words for hotflip and must be a whole number, got {v}")
            return v

    def run(
        self, target: Target, x: torch.Tensor, y: torch.Tensor, params: Params, *,
        target_labels: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """Adversarial token ids for the shared evasion driver (:func:`aisec.attacks.run_attack`)."""
        tt = as_text_target(target, what="attack 'hotflip'")
        res = self.attack(tt, x.long(), y.long(), params, target_labels=target_labels)
        return (res.ids_adv if res.ids_adv is not None else x).to(x.dtype)

    def attack(
        self, target: TextTarget, ids: torch.Tensor, y: torch.Tensor, params: Params, *,
        target_labels: torch.Tensor | None = None,
    ) -> TextBatch:
        vocab = Vocabulary(target, need_tokenizer=True, what="attack 'hotflip'")
        budget = int(params.eps)
        dev = ids.device
        n, length = ids.shape
        emb = embedding_matrix(target, vocab.size)
        editable = vocab.editable(ids)
        table = torch.full((vocab.size, params.neighbours), -1, dtype=torch.long, device=dev)
        uniq = ids[editable].unique()
        if uniq.numel():
            nb = nearest_neighbours(emb, uniq, vocab.word, params.neighbours)
            table[uniq, : nb.shape[1]] = nb
        goal = target_labels if target_labels is not None else y
        sign = -1.0 if target_labels is not None else 1.0  # targeted: climb towards the target label
        cur = ids.clone()
        changed = torch.zeros(n, dtype=torch.long, device=dev)
        queries = torch.zeros(n, dtype=torch.long, device=dev)
        pred_adv = torch.zeros(n, dtype=torch.long, device=dev)
        active = torch.ones(n, dtype=torch.bool, device=dev)
        k = params.neighbours

        def reached(pred: torch.Tensor, rows: torch.Tensor) -> torch.Tensor:
            return pred == goal[rows] if target_labels is not None else pred != y[rows]

        for step in range(budget + 1):
            rows = torch.nonzero(active).squeeze(1)
            if rows.numel() == 0:
                break
            if step == 0:  # the first pass also gives the starting prediction
                with torch.no_grad():
                    logits0 = torch.cat([target.logits(cur[rows[i : i + params.batch_size]])
                                         for i in range(0, rows.numel(), params.batch_size)])
                queries[rows] += 1
                pred_adv[rows] = logits0.argmax(1)
                active[rows[reached(pred_adv[rows], rows)]] = False
                continue
            rows = rows[changed[rows] < budget]
            if rows.numel() == 0:
                break
            grads, losses = [], []
            for i in range(0, rows.numel(), params.batch_size):
                r = rows[i : i + params.batch_size]
                e = target.embed(cur[r]).detach().requires_grad_(True)
                z = logits_from_embeddings(target, e, cur[r])
                loss = sign * F.cross_entropy(z.float(), goal[r], reduction="none")
                (g,) = torch.autograd.grad(loss.sum(), e)
                grads.append(g)
                losses.append(loss.detach())
            queries[rows] += 1
            g = torch.cat(grads)
            cur_loss = torch.cat(losses)
            m = rows.numel()
            ed = editable[rows]
            pos = torch.nonzero(ed)  # (P, 2): (row in rows, position)
            full = torch.full((m, length, k), -torch.inf, device=dev)
            cand_full = torch.full((m, length, k), -1, dtype=torch.long, device=dev)
            if pos.numel():
                tok = cur[rows][pos[:, 0], pos[:, 1]]
                cand = table[tok]
                full[pos[:, 0], pos[:, 1]] = first_order_scores(emb, g[pos[:, 0], pos[:, 1]], tok, cand).float()
                cand_full[pos[:, 0], pos[:, 1]] = cand
            width = min(params.verify, length * k)
            top_s, top_i = full.view(m, -1).topk(width, dim=1)
            ok = torch.isfinite(top_s)
            where = top_i // k
            new_tok = cand_full.view(m, -1).gather(1, top_i)
            seqs = cur[rows].unsqueeze(1).repeat(1, width, 1)
            seqs.scatter_(2, where.unsqueeze(2), new_tok.clamp_min(0).unsqueeze(2))
            owner = torch.arange(m, device=dev).unsqueeze(1).expand(m, width)
            flat, flat_owner = seqs[ok], owner[ok]
            real = torch.full((m, width), -torch.inf, device=dev)
            preds = torch.zeros((m, width), dtype=torch.long, device=dev)
            if flat.shape[0]:
                zs = []
                with torch.no_grad():
                    for i in range(0, flat.shape[0], params.batch_size):
                        zs.append(target.logits(flat[i : i + params.batch_size]).float())
                z = torch.cat(zs)
                real[ok] = sign * F.cross_entropy(z, goal[rows][flat_owner], reduction="none")
                preds[ok] = z.argmax(1)
            queries[rows] += ok.sum(1)
            best = real.argmax(1)
            best_loss = real.gather(1, best[:, None]).squeeze(1)
            better = torch.isfinite(best_loss) & (best_loss > cur_loss)
            active[rows[~better]] = False  # no swap raises the loss: greedy search is stuck
            up = rows[better]
            if up.numel():
                b = best[better]
                cur[up] = seqs[better, b]
                editable[up, where[better, b]] = False  # a position is edited at most once
                changed[up] += 1
                pred_adv[up] = preds[better, b]
                active[up[reached(pred_adv[up], up)]] = False
        return TextBatch(pred_adv=pred_adv, changed=changed, distance=changed.float(), queries=queries,
                         ids_adv=cur)


__all__ = ["HotFlip", "embedding_matrix", "first_order_scores", "nearest_neighbours"]
