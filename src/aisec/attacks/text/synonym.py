"""Synonym substitution (PWWS/TextFooler style): black-box greedy word swaps from WordNet, real text.

Ren et al., "Generating Natural Language Adversarial Examples through Probability Weighted Word
Saliency" (PWWS), ACL 2019, https://aclanthology.org/P19-1103 ; Jin et al., "Is BERT Really
Robust?" (TextFooler), AAAI 2020, https://arxiv.org/abs/1907.11932

1. **Importance by deletion** (TextFooler's, TextAttack's ``wir_method="delete"``): every candidate
   word of every text is deleted in turn, all deletions of the batch scored in batched forward
   passes; words are visited from the one whose deletion lowers the true-class probability most.
2. **Greedy substitution** in that order: all synonyms of the word (that pass the constraints) are
   scored in one batched pass; the swap that lowers the true-class probability most is kept if it
   lowers it at all. A text stops as soon as its label flips (among flipping swaps, the one most
   similar to the original is kept, as TextAttack does; with ``min_similarity=0`` the one that lowers
   the true-class probability most, also TextAttack's choice) or when no word is left.

Constraints: stop words (scikit-learn's list) and non-alphabetic words are never replaced; a word
is replaced at most once; at most ``eps`` (a fraction, default 0.3) of the text's words change
(``ceil(eps × words)``, TextAttack's ``MaxWordsPerturbed``); a swap must keep the MiniLM sentence
cosine to the original ≥ ``min_similarity``. Synonyms: WordNet 3.0 (Debian ``wordnet-base``,
:mod:`aisec.attacks.text._synonyms`). Part of speech: no offline tagger installs (NLTK's tagger
data and spaCy's models are downloads), so the documented, weaker fallback is WordNet's own POS:
with ``pos="dominant"`` a candidate must come from a synset of the POS under which the original
word has most senses; ``pos="any"`` takes all of its POS.

Needs only predictions (black box) and the target's tokenizer round trip (``encode``/``decode``).

>>> out = run_text_attack("synonym", target, ["a gripping, moving film"], torch.tensor([1]), {"eps": 0.3})
>>> out.adv_texts[0], int(out.words_changed[0]), int(out.queries[0])
"""

from __future__ import annotations

import math
from typing import Any, Literal

import torch
from pydantic import Field

from aisec.attacks.text._synonyms import WORD_EDGE, WORD_RE, WordNet, load_encoder, load_wordnet
from aisec.attacks.text.base import TextAttackParams, TextBatch, decode, stop_words
from aisec.core.registry import AttackKind, register
from aisec.core.target import TextTarget
from aisec.core.types import Capability, Modality, Norm


def words_of(text: str) -> list[tuple[int, int, str]]:
    """(start, end, word) of every word, as TextAttack's ``words_from_text`` splits: runs of word characters
    and ' - _ * @, those five stripped from the ends ("'em" is "em", a lone "'" or "--" no word at all).

    The word count sets the budget (``ceil(eps × words)``), so it must be TextAttack's for the two to agree.
    """
    out = []
    for m in WORD_RE.finditer(text):
        w = m.group()
        core = w.strip(WORD_EDGE)
        if core:
            start = m.start() + (len(w) - len(w.lstrip(WORD_EDGE)))
            out.append((start, start + len(core), core))
    return out


def candidates(wn: WordNet, word: str, pos: str) -> list[str]:
    """Synonyms a word may be swapped for (see the module docstring for ``pos``)."""
    syn = wn.synonyms(word)
    if not syn:
        return []
    if pos == "any":
        return list(dict.fromkeys(w for ws in syn.values() for w in ws))
    senses = {p: sum(len(wn.index[p][b]) for b in wn.morphy(word.lower(), p)) for p in syn}
    return syn[max(senses, key=lambda p: senses[p])]


def replace(text: str, span: tuple[int, int], new: str) -> str:
    return text[: span[0]] + new + text[span[1] :]


@register(
    "text",
    "synonym",
    # it only reads probabilities, but the shared text driver runs on aisec's text targets (which expose
    # embeddings), so embeddings also keep it off image and tabular targets in `-a all` and `aisec scan`
    requires=frozenset({Capability.PROBABILITIES, Capability.EMBEDDINGS}),
    norms={Norm.L0},
    targeted=False,
    kind=AttackKind.FIXED_EPS,
    paper="https://aclanthology.org/P19-1103",
    modalities={Modality.TEXT},
    # eps is the largest fraction of words changed; greedy and stopping at its first flip, one run at
    # the largest fraction gives every smaller one (distance = fraction changed).
    budget_unit="fraction of words",
    nested_budgets=True,
    default_eps=(0.1, 0.2, 0.3),
    real_text=True,
)
class SynonymSwap:
    """WordNet synonym substitution, deletion-ranked, greedy, MiniLM-similarity and POS constrained."""

    class Params(TextAttackParams):
        norm: Norm = Field(default=Norm.L0, description="l0: the budget is a fraction of the words changed.")
        eps: float = Field(default=0.3, gt=0, le=1, description="Most words changed, as a fraction of the "
                                                                "text's words (ceil(eps × words)).")
        min_similarity: float = Field(default=0.8, ge=0, le=1, description="Least MiniLM sentence cosine "
                                                                           "to the original (0: off).")
        pos: Literal["dominant", "any"] = Field(default="dominant", description="WordNet POS constraint.")
        max_candidates: int = Field(default=50, ge=1, description="Synonyms tried per word.")

    def attack(
        self, target: TextTarget, ids: torch.Tensor, y: torch.Tensor, params: Params, *,
        target_labels: torch.Tensor | None = None,
    ) -> TextBatch:
        texts = decode(target, ids)
        tok = getattr(target, "tokenizer", None)
        unk = getattr(tok, "unk_token_id", None)

        def spellable(w: str) -> bool:  # a synonym the tokenizer cannot spell would become [UNK]
            return tok is None or unk is None or unk not in tok(w, add_special_tokens=False)["input_ids"]

        res = synonym_attack(lambda t: _probs(target, t, params.batch_size), texts, y.cpu().tolist(), params,
                             allowed=spellable)
        dev = ids.device
        adv = [r["adv_text"] for r in res]
        ids_adv = target.encode(adv).long().to(dev)
        changed = torch.tensor([r["words_changed"] for r in res], dtype=torch.long, device=dev)
        frac = torch.tensor([r["words_changed"] / max(r["words"], 1) for r in res], device=dev)
        return TextBatch(pred_adv=torch.tensor([r["pred_adv"] for r in res], device=dev), changed=changed,
                         distance=frac, queries=torch.tensor([r["queries"] for r in res], device=dev),
                         ids_adv=ids_adv)


def _probs(target: TextTarget, texts: list[str], bs: int) -> torch.Tensor:
    """Class probabilities of ``texts`` (one query each), ``bs`` texts per forward pass.

    On a target that ``trims_padding`` (HfTextTarget) the texts are batched by token length and each
    batch is cut to its longest text: the same logits for a fraction of the compute (the candidates of
    short reviews are otherwise padded to ``max_length``), the attack's main cost.
    """
    n = len(texts)
    if not n:
        return torch.zeros(0, target.spec.num_classes)
    pad = getattr(target, "pad_id", None) if getattr(target, "trims_padding", False) else None
    out = torch.empty(n, target.spec.num_classes)
    with torch.no_grad():
        ids = target.encode(texts).long()
        if pad is None:
            for i in range(0, n, bs):
                out[i : i + bs] = target.predict(ids[i : i + bs]).float().cpu()
            return out
        real = ids != int(pad)
        order = torch.argsort(real.sum(1), descending=True, stable=True)
        for i in range(0, n, bs):
            sel = order[i : i + bs]
            cols = torch.nonzero(real[sel].any(0)).squeeze(1)
            # only trailing padding is cut: leading pad columns (left padding) would shift the absolute
            # positions an encoder gives the real tokens
            hi = int(cols[-1]) + 1 if cols.numel() else ids.shape[1]
            out[sel] = target.predict(ids[sel, :hi]).float().cpu()
    return out


def synonym_attack(
    probs: Any, texts: list[str], labels: list[int], params: SynonymSwap.Params, *,
    wordnet: WordNet | None = None, allowed: Any = None,
) -> list[dict[str, Any]]:
    """The attack on plain strings: ``probs(list[str]) -> (N, C)`` class probabilities (one query per text).

    Returns one record per text: success, words changed and total, queries, adversarial text (the
    original on failure), predicted label. ``allowed(word)`` may veto synonyms (e.g. ones the model's
    tokenizer cannot spell). Samples are attacked together: each step's candidates of
    all live samples go through the model in one batched call, and a sample leaves on its first flip.
    """
    wn = wordnet or load_wordnet()
    stops = stop_words()
    enc = load_encoder() if params.min_similarity > 0 else None
    n = len(texts)
    cache: list[dict[str, torch.Tensor]] = [{} for _ in range(n)]
    queries = [0] * n

    def score(items: list[tuple[int, str]]) -> list[torch.Tensor]:
        todo = [(i, t) for i, t in dict.fromkeys(items) if t not in cache[i]]
        if todo:
            p = probs([t for _, t in todo])
            for (i, t), row in zip(todo, p, strict=True):
                cache[i][t] = row
                queries[i] += 1
        return [cache[i][t] for i, t in items]

    p0 = score(list(enumerate(texts)))
    recs: list[dict[str, Any]] = []
    spans: list[list[tuple[int, int, str]]] = []
    cands: list[dict[int, list[str]]] = []
    for i, t in enumerate(texts):
        ws = words_of(t)
        spans.append(ws)
        c = {}
        for k, (_, _, w) in enumerate(ws):
            if w.isalpha() and w.lower() not in stops:
                cs = [c for c in candidates(wn, w, params.pos) if allowed is None or allowed(c)]
                cs = cs[: params.max_candidates]
                if cs:
                    c[k] = cs
        cands.append(c)
        pred = int(p0[i].argmax())
        recs.append({"success": False, "words_changed": 0, "words": len(ws), "queries": 0, "adv_text": t,
                     "text": t, "pred_adv": pred, "label": labels[i], "attacked": pred == labels[i]})
    live = [i for i in range(n) if recs[i]["attacked"] and cands[i]]
    # importance by deletion, all texts and words in one batched call
    dels = [(i, replace(texts[i], spans[i][k][:2], "")) for i in live for k in cands[i]]
    dp = iter(score(dels))
    order: dict[int, list[int]] = {}
    for i in live:
        ks = list(cands[i])
        pd = [float(next(dp)[labels[i]]) for _ in ks]
        order[i] = [k for _, k in sorted(zip(pd, ks, strict=True), key=lambda a: a[0])]
    cur = {i: texts[i] for i in live}
    cur_spans = {i: list(spans[i]) for i in live}
    cur_p = {i: float(p0[i][labels[i]]) for i in live}
    budget = {i: math.ceil(len(spans[i]) * params.eps) for i in live}
    step = 0
    orig: torch.Tensor | None = None
    while live:
        items: list[tuple[int, str]] = []
        owners: list[tuple[int, int, str]] = []
        for i in live:
            k = order[i][step]
            s, e, _ = cur_spans[i][k]
            for w in cands[i][k]:
                items.append((i, replace(cur[i], (s, e), w)))
                owners.append((i, k, w))
        sims = None
        if enc is not None and items:
            if orig is None:  # the originals' embeddings, once
                orig = enc.encode(texts)
            emb = enc.encode([t for _, t in items])
            sims = (emb * orig[[i for i, _ in items]]).sum(1)
            keep = [j for j in range(len(items)) if float(sims[j]) >= params.min_similarity]
        else:
            keep = list(range(len(items)))
        got = score([items[j] for j in keep])
        best: dict[int, tuple[float, float, int, int, str]] = {}
        for j, pr in zip(keep, got, strict=True):
            i, k, w = owners[j]
            py = float(pr[labels[i]])
            flip = int(pr.argmax()) != labels[i]
            # among flips the one most similar to the original; without the similarity constraint the one
            # furthest from the true class (TextAttack's choice when its candidates carry no similarity score)
            key = (1.0 if flip else 0.0, float(sims[j]) if flip and sims is not None else -py)
            if i not in best or key > best[i][:2]:
                best[i] = (*key, j, int(pr.argmax()), w)
        nxt = []
        for i in live:
            b = best.get(i)
            if b is not None and (b[0] == 1.0 or float(got[keep.index(b[2])][labels[i]]) < cur_p[i]):
                j, pred, w = b[2], b[3], b[4]
                k = owners[j][1]
                s, e, _ = cur_spans[i][k]
                cur[i] = items[j][1]
                d = len(w) - (e - s)
                cur_spans[i] = [(a, z, ww) if q < k else ((s, s + len(w), w) if q == k else (a + d, z + d, ww))
                                for q, (a, z, ww) in enumerate(cur_spans[i])]
                cur_p[i] = float(got[keep.index(j)][labels[i]])
                recs[i]["words_changed"] += 1
                recs[i]["pred_adv"] = pred
                if b[0] == 1.0:
                    recs[i]["success"] = True
                    recs[i]["adv_text"] = cur[i]
                    continue
            if step + 1 < len(order[i]) and recs[i]["words_changed"] < budget[i]:
                nxt.append(i)
            else:
                recs[i]["pred_adv"] = int(p0[i].argmax())  # failure: the original text is returned
                recs[i]["words_changed"] = 0
        live = nxt
        step += 1
    for i, r in enumerate(recs):
        r["queries"] = queries[i]
    return recs


__all__ = ["SynonymSwap", "candidates", "synonym_attack", "words_of"]
