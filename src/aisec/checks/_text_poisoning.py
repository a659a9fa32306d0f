"""The poisoning check on Hugging Face text targets: BadNL trigger words, a rate sweep, a backdoor scan.

:class:`~aisec.checks.poisoning.PoisoningCheck` hands text targets here. The data (a text dataset's
UTF-8 bytes) is split as for images; for each rate of the sweep the first ``round(rate · n)`` of a
seeded draw of source-class training texts get the trigger (:class:`WordTrigger`) and the target
label (nested: a smaller rate's poisons are a subset of a larger one's). One victim per rate is
trained through Hugging Face's own forward (token ids + attention mask) — from a fresh
initialisation of the target's config (``retrain``) or from a copy of its weights (``finetune``) —
with Adam for ``recipe.epochs`` passes at ``recipe.lr``. The target itself is never modified.

Measured as for images, with the same metric ids: ``poisoning.attack_success_rate`` (triggered
held-out source-class texts classified as the target, Wilson 95%), ``poisoning.clean_accuracy``,
``poisoning.min_poison_rate`` and ``poisoning.resilience``. The largest rate's victim is then
scanned for the backdoor by activation clustering (Chen et al. 2018) on its penultimate
activations (what the head's last linear layer takes: the pooled [CLS] for encoders, the last
real token for decoder-only models) over its poisoned training set; the summary keeps the flagged texts' precision and
recall against the true poisons.
"""

from __future__ import annotations

import copy
import random
import time
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from aisec.attacks.poisoning.badnl import WordTrigger
from aisec.checks._poisoning_summary import PoisoningSummary, PoisonRatePoint, resilience_score
from aisec.core.check import ConsoleLine, IntervalSummary, Result
from aisec.core.dataset import Dataset, take
from aisec.core.errors import CapabilityError, ConfigError, DataError
from aisec.core.evidence import Measurement
from aisec.core.progress import Progress, no_progress
from aisec.core.stats import Interval, wilson
from aisec.core.target import Target

ATLAS_POISONING = ("AML.T0020", "AML.T0018.000", "AML.T0043.004")
TEXT_DEFAULTS: dict[str, dict[str, float]] = {"retrain": {"epochs": 8, "lr": 5e-3},
                                              "finetune": {"epochs": 4, "lr": 1e-3}}


def head_features(model: Any, ids: torch.Tensor, mask: torch.Tensor, *, batch_size: int = 64) -> torch.Tensor:
    """The penultimate activations: what the classification head's last linear layer takes (BERT's
    pooled [CLS], DistilBERT's ReLU pre-classifier, RoBERTa's dense [CLS] projection, XLNet's sequence
    summary), read at the last real token where that layer sees every position (decoder-only ``score``).
    ``(N, features)``. Activation clustering (Chen et al. 2018) clusters exactly these."""
    from aisec.targets.hf import last_token_index

    k = int(model.config.num_labels)
    heads = [m for m in model.modules() if isinstance(m, torch.nn.Linear) and m.out_features == k]
    if not heads:
        raise CapabilityError(f"no linear classification layer with {k} outputs found in {type(model).__name__}")
    seen: list[torch.Tensor] = []
    hook = heads[-1].register_forward_pre_hook(lambda _m, a: seen.append(a[0].detach()))
    out = []
    try:
        with torch.no_grad():
            for i in range(0, ids.shape[0], batch_size):
                x, m = ids[i : i + batch_size], mask[i : i + batch_size]
                seen.clear()
                model(input_ids=x, attention_mask=m)
                f = seen[-1]
                if f.ndim == 3:  # a head applied at every position: read it where the model pools
                    f = f[torch.arange(x.shape[0], device=f.device), last_token_index(m)]
                out.append(f.float().cpu())
    finally:
        hook.remove()
    return torch.cat(out) if out else torch.zeros(0)


def train_text_victim(
    target: Any, ids: torch.Tensor, mask: torch.Tensor, y: torch.Tensor, *, mode: str, epochs: int, lr: float,
    batch_size: int, seed: int,
) -> Any:
    """One victim: the target's architecture (fresh, or a copy of its weights) trained on ``(ids, y)``."""
    from transformers import AutoModelForSequenceClassification

    with torch.random.fork_rng():
        torch.manual_seed(seed)
        if mode == "finetune":
            model = copy.deepcopy(target.model)
        else:
            model = AutoModelForSequenceClassification.from_config(copy.deepcopy(target.model.config))
        model.to(ids.device)
        for prm in model.parameters():
            prm.requires_grad_(True)
        model.train()
        opt = torch.optim.Adam(model.parameters(), lr=lr)
        n = ids.shape[0]
        for _ in range(epochs):
            for b in torch.randperm(n).split(batch_size):
                logits = model(input_ids=ids[b], attention_mask=mask[b]).logits
                loss = F.cross_entropy(logits.float(), y[b])
                opt.zero_grad()
                loss.backward()
                opt.step()
                if not torch.isfinite(loss):
                    raise ConfigError(f"a poisoned text victim diverged (loss {float(loss)}); lower the "
                                      f"learning rate (lr={lr:g})")
    return model.eval()


def _predict(model: Any, ids: torch.Tensor, mask: torch.Tensor, batch_size: int = 128) -> torch.Tensor:
    with torch.no_grad():
        out = [model(input_ids=ids[i : i + batch_size], attention_mask=mask[i : i + batch_size]).logits.argmax(1)
               for i in range(0, ids.shape[0], batch_size)]
    return torch.cat(out).cpu() if out else torch.zeros(0, dtype=torch.long)


def run_text_poisoning(
    target: Target, data: Dataset, p: Any, trigger: WordTrigger, *, progress: Progress = no_progress,
) -> Result:
    """The poisoning check for a Hugging Face text target (see the module docstring)."""
    from aisec.data.text import decode_texts
    from aisec.detect.activation_clustering import activation_clustering

    t0 = time.perf_counter()
    if not (hasattr(target, "model") and hasattr(target, "tokenizer") and hasattr(target, "encode")):
        raise CapabilityError(f"text poisoning trains victims of the target's architecture; '{target.spec.name}' "
                              "is no local Hugging Face classifier (HfTextTarget)")
    tt: Any = target
    spec = target.spec
    x, y = take(data, p.samples)
    if x.dtype != torch.uint8:
        raise DataError("text poisoning needs the texts: give a text dataset (UTF-8 bytes), not token ids")
    texts = decode_texts(x)
    y = y.long().cpu()
    g = torch.Generator().manual_seed(p.seed)
    perm = torch.randperm(len(texts), generator=g)
    n_test = max(1, round(p.test_fraction * len(texts)))
    te, tr = perm[:n_test], perm[n_test:]
    tr_texts, ytr = [texts[i] for i in tr], y[tr]
    te_texts, yte = [texts[i] for i in te], y[te]
    n = len(tr_texts)
    src = p.source_class
    clean_label = p.attack == "clean-label-badnl"
    if clean_label:  # poisons are made from texts already labelled as the target: no label changes
        cand = (ytr == p.target_class).nonzero().squeeze(1)
    else:
        cand = ((ytr == src) if src is not None else (ytr != p.target_class)).nonzero().squeeze(1)
    victims_src = (yte == src) if src is not None else (yte != p.target_class)
    if not bool(victims_src.any()):
        raise DataError(f"the test part holds no samples of source class {src}; use more data or a larger "
                        "test_fraction")
    rates = p.rates
    m_of = [round(r * n) for r in rates]
    if max(m_of) > cand.numel():
        which = "target-class" if clean_label else "source-class"
        raise DataError(f"rate {rates[-1]} needs {max(m_of)} poisons but the training part holds only "
                        f"{cand.numel()} {which} texts (max rate {cand.numel() / n:.3f}); lower the rates")
    mode = p.mode or (p.recipe.mode if p.recipe is not None and "mode" in p.recipe.model_fields_set else "retrain")
    fields = dict(TEXT_DEFAULTS[mode])
    if p.recipe is not None:
        fields |= p.recipe.model_dump(include={"epochs", "lr"}, exclude_unset=True)
    bs = p.recipe.batch_size if p.recipe is not None and "batch_size" in p.recipe.model_fields_set else 32
    rng = random.Random(p.seed)
    idx = cand[torch.randperm(cand.numel(), generator=g)[: max(m_of)]]
    originals = [tr_texts[int(i)] for i in idx]
    # dirty label: the trigger now; clean label: after the rate-0 victim exists (the hardening surrogate)
    poisoned: list[str] | None = None if clean_label else trigger.apply_texts(originals, rng)
    warnings: list[str] = []
    unk = getattr(tt.tokenizer, "unk_token_id", None)
    trig_ids = tt.tokenizer(trigger.words, add_special_tokens=False)["input_ids"]
    if unk is not None and unk in trig_ids:
        warnings.append(f"the trigger '{trigger.words}' is (partly) an unknown token to the tokenizer: the "
                        "backdoor is keyed to the unknown-word token, as a rare word would be")
    dev = torch.device(spec.device)

    def encode(strs: list[str]) -> tuple[torch.Tensor, torch.Tensor]:
        ids = tt.encode(strs).to(dev)
        return ids, (ids != tt.pad_id).long()

    te_ids, te_mask = encode(te_texts)
    src_rows = victims_src.nonzero().squeeze(1)
    trig_te = trigger.apply_texts([te_texts[int(i)] for i in src_rows], random.Random(p.seed + 1))
    trig_ids_te, trig_mask_te = encode(trig_te)
    points: list[PoisonRatePoint] = []
    measurements: list[Measurement] = []
    base = {"attack": p.attack, "mode": mode, "trigger": trigger.model_dump(mode="json"), "source_class": src,
            "target_class": p.target_class, **fields}
    last_model = None
    last_ids = last_mask = None
    last_y = ytr
    last_train: list[str] | None = None
    onion = _onion_inputs(p, te_texts, trig_te, encode) if "onion" in p.detect else None
    onion_points: list[dict[str, Any]] = []
    for k, (rate, m) in enumerate(zip(rates, m_of, strict=True)):
        progress("training poisoned text victims", k, len(rates))
        if poisoned is None and m:
            assert last_model is not None  # rates start at 0: the clean victim is the surrogate
            poisoned = _clean_label_poisons(tt, last_model, originals, trigger, rng, p, encode)
        train_texts = list(tr_texts)
        yk = ytr.clone()
        for j in range(m):
            assert poisoned is not None
            train_texts[int(idx[j])] = poisoned[j]
            yk[int(idx[j])] = p.target_class
        ids, mask = encode(train_texts)
        model = train_text_victim(tt, ids, mask, yk.to(dev), mode=mode, epochs=int(fields["epochs"]),
                                  lr=float(fields["lr"]), batch_size=bs, seed=p.seed + k)
        hit = int((_predict(model, trig_ids_te, trig_mask_te) == p.target_class).sum())
        nv = int(src_rows.numel())
        acc = int((_predict(model, te_ids, te_mask) == yte).sum())
        if onion is not None:
            onion_points.append(_after_onion(model, onion, rate, p.target_class, yte, {**base, "rate": rate,
                                                                                     "poisons": m}))
            measurements += onion_points[-1].pop("measurements")
        ci_asr, ci_acc = wilson(hit, nv), wilson(acc, n_test)
        pp = {**base, "rate": rate, "poisons": m}
        points.append(PoisonRatePoint(rate=rate, poisons=m, asr=hit / nv,
                                      asr_ci=IntervalSummary.from_interval(ci_asr), clean_accuracy=acc / n_test,
                                      clean_ci=IntervalSummary.from_interval(ci_acc)))
        measurements += [
            Measurement(metric="poisoning.attack_success_rate", value=hit / nv, unit="fraction",
                        higher_is_better=False, interval=ci_asr, sample_count=nv, parameters=pp),
            Measurement(metric="poisoning.clean_accuracy", value=acc / n_test, unit="fraction",
                        higher_is_better=True, interval=ci_acc, sample_count=n_test, parameters=pp),
        ]
        last_model, last_ids, last_mask, last_y, last_train = model, ids, mask, yk, train_texts
    progress("training poisoned text victims", len(rates), len(rates))
    thr = p.success_threshold
    asr = [q.asr for q in points]
    reached = [q for q in points if q.rate > 0 and q.asr >= thr]
    min_rate = reached[0].rate if reached else rates[-1]
    if not reached:
        warnings.append(f"no swept rate up to {rates[-1]:g} reached ASR ≥ {thr:g}; min_poison_rate is a lower bound")
    sweep = {**base, "rates": rates, "success_threshold": thr, "reached": bool(reached)}
    measurements.append(Measurement(metric="poisoning.min_poison_rate", value=float(min_rate), unit="fraction",
                                    higher_is_better=True, interval=None, sample_count=nv, parameters=sweep))
    res = resilience_score(asr, rates)
    lo = resilience_score([points[0].asr] + [q.asr_ci.high for q in points[1:]], rates)
    hi = resilience_score([points[0].asr] + [q.asr_ci.low for q in points[1:]], rates)
    measurements.append(Measurement(
        metric="poisoning.resilience", value=res, unit="score", higher_is_better=True,
        interval=Interval(low=min(lo, res), high=max(hi, res), level=0.95, method="wilson-bounds-plug-in"),
        sample_count=nv,
        parameters={**sweep, "definition": "1 - mean over rates r>0 of max(0, ASR(r)-ASR(0))/(1-ASR(0))"},
    ))
    truth = np.zeros(n, dtype=bool)
    truth[idx[: m_of[-1]].numpy()] = True
    onion_summary: dict[str, Any] | None = None
    if onion is not None:
        onion_summary = {"threshold": p.onion_threshold, "lm": p.onion_lm, "points": onion_points,
                         "filtered_examples": [{"input": a, "filtered": b} for a, b in
                                               zip(trig_te[: p.examples], onion["trig_filtered"], strict=False)]}
        if m_of[-1] and last_train is not None:
            onion_summary |= _onion_training_scan(p, onion["lm"], last_train, truth, {**base, "rate": rates[-1],
                                                                         "poisons": m_of[-1]})
            measurements.append(onion_summary.pop("measurement"))
    detection: dict[str, Any] | None = None
    if last_model is not None and last_ids is not None and last_mask is not None and m_of[-1]:
        feats = head_features(last_model, last_ids, last_mask)
        det = activation_clustering(feats, last_y, spec.num_classes, threshold=p.text_detection_threshold,
                                    seed=p.seed)
        flagged = np.zeros(n, dtype=bool)
        flagged[det.flagged] = True
        tp = int((flagged & truth).sum())
        detection = {**det.to_dict(), "precision": tp / max(int(flagged.sum()), 1), "recall": tp / int(truth.sum()),
                     "representation": "input of the classification head's last linear layer", "rate": rates[-1]}
        detection.pop("flagged", None)
    drop = points[0].clean_accuracy - min(q.clean_accuracy for q in points)
    if drop > 0.05:
        warnings.append(f"clean accuracy fell by {drop:.3f} under poisoning: the backdoor is not stealthy")
    summary = TextPoisoningSummary(
        attack=p.attack, mode=mode, train_samples=n, test_samples=n_test, victim_samples=nv, source_class=src,
        target_class=p.target_class, points=points, pixels=[], pixels_needed=None, pixels_rate=rates[-1],
        min_poison_rate=float(min_rate), reached=bool(reached), success_threshold=thr, resilience=res,
        classes=list(data.info.classes), trigger=trigger.model_dump(mode="json"), poison_linf=None,
        examples=[{"clean": tr_texts[int(i)], "poisoned": t}
                  for i, t in zip(idx[: p.examples], poisoned or [], strict=False)],
        detection=detection, onion=onion_summary, clean_label=clean_label,
    )
    table = {"train_index": tr.numpy(), "poisoned": truth, "text": np.array(tr_texts, dtype=object),
             "label": ytr.numpy(), "trained_label": last_y.cpu().numpy(),
             "trained_text": np.array(last_train if last_train is not None else tr_texts, dtype=object)}
    return Result(check="poisoning", measurements=measurements, params=p.model_dump(mode="json"), summary=summary,
                  tables={"training": table}, images={}, warnings=warnings, seconds=time.perf_counter() - t0,
                  threats=ATLAS_POISONING)


def _clean_label_poisons(tt: Any, surrogate: Any, originals: list[str], trigger: WordTrigger, rng: random.Random,
                         p: Any, encode: Any) -> list[str]:
    """Clean-label BadNL's poisons: the target-class texts hardened against the clean (rate-0) victim,
    then triggered (:func:`aisec.attacks.poisoning.clean_label_text.clean_label_badnl`)."""
    from aisec.attacks.poisoning.clean_label_text import clean_label_badnl

    def target_prob(strs: list[str]) -> list[float]:
        if not strs:
            return []
        ids, mask = encode(strs)
        with torch.no_grad():
            out = [F.softmax(surrogate(input_ids=ids[i : i + 256], attention_mask=mask[i : i + 256]).logits.float(),
                             -1)[:, p.target_class] for i in range(0, ids.shape[0], 256)]
        return [float(v) for v in torch.cat(out).cpu()]

    return clean_label_badnl(originals, lambda ts: trigger.apply_texts(ts, rng), target_prob, p.clean_label_badnl)


def _onion_inputs(p: Any, te_texts: list[str], trig_te: list[str], encode: Any) -> dict[str, Any]:
    """ONION's test-time filter applied once to the clean and the triggered test texts (victim-independent)."""
    from aisec.detect.onion import load_lm, onion_filter

    if p.onion_lm is None:
        raise ConfigError("detect: [onion] needs onion_lm: a local causal-LM folder (e.g. --onion-lm models/tiny-lm)")
    lm = load_lm(p.onion_lm)
    t0 = time.perf_counter()
    clean_f = onion_filter(lm, te_texts, threshold=p.onion_threshold)
    trig_f = onion_filter(lm, trig_te, threshold=p.onion_threshold)
    ci, cm = encode(clean_f)
    ti, tm = encode(trig_f)
    return {"lm": lm, "clean": (ci, cm), "trig": (ti, tm), "trig_filtered": trig_f[: p.examples],
            "seconds": time.perf_counter() - t0}


def _after_onion(model: Any, onion: dict[str, Any], rate: float, target_class: int, yte: torch.Tensor,
                 pp: dict[str, Any]) -> dict[str, Any]:
    """One victim behind ONION: ASR on the filtered triggered texts, accuracy on the filtered clean ones."""
    ti, tm = onion["trig"]
    ci, cm = onion["clean"]
    hit = int((_predict(model, ti, tm) == target_class).sum())
    acc = int((_predict(model, ci, cm) == yte).sum())
    nv, nt = int(ti.shape[0]), int(ci.shape[0])
    a, c = wilson(hit, nv), wilson(acc, nt)
    q = {**pp, "defence": "onion"}
    return {"rate": rate, "asr": hit / nv, "asr_ci": IntervalSummary.from_interval(a).model_dump(),
            "clean_accuracy": acc / nt, "clean_ci": IntervalSummary.from_interval(c).model_dump(),
            "measurements": [
                Measurement(metric="poisoning.asr_after_onion", value=hit / nv, unit="fraction",
                            higher_is_better=False, interval=a, sample_count=nv, parameters=q),
                Measurement(metric="poisoning.clean_accuracy_after_onion", value=acc / nt, unit="fraction",
                            higher_is_better=True, interval=c, sample_count=nt, parameters=q)]}


def _onion_training_scan(p: Any, lm: Any, train_texts: list[str], truth: np.ndarray,
                         pp: dict[str, Any]) -> dict[str, Any]:
    """ONION's text scores on the largest rate's poisoned training set: AUC (DeLong) against the true poisons."""
    from aisec.detect.onion import onion_scan
    from aisec.metrics.membership import auc_delong

    scan = onion_scan(lm, train_texts, threshold=p.onion_threshold)
    scores = np.where(np.isfinite(scan.scores), scan.scores, np.min(scan.scores[np.isfinite(scan.scores)],
                                                                    initial=0.0) - 1.0)
    auc, ci, _ = auc_delong(scores[truth], scores[~truth])
    flagged = scan.flagged
    tp = int((flagged & truth).sum())
    trig_word = sum(w is not None and w in p.trigger.words.split() for w, t in zip(scan.words, truth, strict=True)
                    if t) if isinstance(p.trigger, WordTrigger) else 0
    return {"auc": auc, "auc_ci": IntervalSummary.from_interval(ci).model_dump(), "flagged_count": int(flagged.sum()),
            "precision": tp / max(int(flagged.sum()), 1), "recall": tp / max(int(truth.sum()), 1),
            "trigger_named": trig_word, "poisons": int(truth.sum()),
            "measurement": Measurement(metric="poisoning.onion_auc", value=auc, unit="fraction", higher_is_better=True,
                                       interval=ci, sample_count=int(truth.size),
                                       parameters={**pp, "defence": "onion", "threshold": p.onion_threshold})}


class TextPoisoningSummary(PoisoningSummary):
    """The image sweep's summary plus clean/poisoned text pairs, the backdoor scan of the largest rate and,
    when asked, ONION's effect (training-set detection AUC, ASR and clean accuracy after its filter per rate)."""

    examples: list[dict[str, str]]
    detection: dict[str, Any] | None
    onion: dict[str, Any] | None = None
    clean_label: bool = False

    def console_lines(self, result: Result, *, model: str, dataset: str) -> list[ConsoleLine]:
        """The sweep's line, then ONION's: AUC on the poisoned training set, ASR after its filter."""
        lines = super().console_lines(result, model=model, dataset=dataset)
        o = self.onion
        if o:
            auc = f"detection AUC {o['auc']:.3f} on the poisoned training set; " if "auc" in o else ""
            lines.append(f"ONION (threshold {o['threshold']:g}): {auc}ASR after filtering "
                         + ", ".join(f"{100 * q['rate']:g}%: {q['asr']:.2f}" for q in o["points"])
                         + "; clean accuracy after filtering "
                         + f"{min(q['clean_accuracy'] for q in o['points']):.3f}–"
                         + f"{max(q['clean_accuracy'] for q in o['points']):.3f}")
        return lines


__all__ = ["TextPoisoningSummary", "head_features", "run_text_poisoning", "train_text_victim"]
