"""A 4-model × 3-check campaign on 1 worker, 2 local workers and a local Ray: same results, wall time, overhead.

The models are the digits CNN trained with seeds 0-3 (safetensors files, so the model-file scan has files to
read); the checks are robustness (FGSM + 10-step PGD, 64 samples, reliability probes without escalation),
explainability (saliency, 32 samples) and model-scan: 12 jobs. Each backend runs the campaign from scratch
into its own folder and store; the script then checks that the three stores hold the same measurements
(values, parameters and per-sample table digests, per job) and prints per backend the wall time, the sum of
the jobs' own seconds and the overhead per job against the in-process run:
``(wall × workers − in-process wall) / jobs``, i.e. what parallelism cost each job in process starts, imports
and scheduling. Times are wall-clock on a shared machine: compare the rows with each other.

    python bench/bench_campaign.py [--out /tmp/aisec-bench-campaign] [--skip-ray] [--samples 64] [--steps 10]
"""

from __future__ import annotations

import argparse
import json
import shutil
import time
from pathlib import Path
from typing import Any

import torch

from aisec.campaigns.backends import Backend, InProcess, LocalPool, RayBackend
from aisec.campaigns.campaign import execute, prepare
from aisec.campaigns.spec import Campaign


def models(folder: Path) -> list[dict[str, Any]]:
    from safetensors.torch import save_file

    from aisec.models.train import digits_cnn

    folder.mkdir(parents=True, exist_ok=True)
    out = []
    for seed in range(4):
        f = folder / f"digits-cnn-seed{seed}.safetensors"
        if not f.exists():
            save_file(digits_cnn(seed=seed).state_dict(), str(f))
        out.append({"path": str(f), "arch": "aisec.models.zoo:DigitsCNN", "name": f"cnn-seed{seed}"})
    return out


def spec(model_refs: list[dict[str, Any]], samples: int = 64, steps: int = 10) -> Campaign:
    return Campaign.parse({
        "name": "bench", "models": model_refs, "datasets": ["digits"],
        "checks": {
            "robustness": {"attacks": ["fgsm", {"name": "pgd", "params": {"steps": steps}}], "eps": [0.1],
                           "samples": samples, "clever": {"enabled": False}, "reliability": {"escalate": False},
                           "examples": 0, "save_adversarial": 0},
            "explainability": {"explainer": "saliency", "samples": 32},
            "model-scan": {},
        },
        "budget": {"confirm_above_seconds": 1e9},
    })


def evidence_of(store_url: str) -> dict[str, list[tuple[Any, ...]]]:
    from aisec.store import open_store

    out: dict[str, list[tuple[Any, ...]]] = {}
    with open_store(store_url, create=False) as s:
        for e in (x.evidence for x in s.query()):
            out.setdefault(e.run_id, []).append((e.check, e.metric, e.value, json.dumps(e.parameters, sort_keys=True,
                                                 default=str), e.raw.sha256 if e.raw else None))
    return {k: sorted(v) for k, v in out.items()}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", default="/tmp/aisec-bench-campaign")
    ap.add_argument("--skip-ray", action="store_true")
    ap.add_argument("--samples", type=int, default=64, help="Robustness samples per job.")
    ap.add_argument("--steps", type=int, default=10, help="PGD steps.")
    a = ap.parse_args()
    root = Path(a.out)
    refs = models(root / "models")
    campaign = spec(refs, a.samples, a.steps)
    backends: list[tuple[str, Backend, int]] = [("1 worker (in-process)", InProcess(), 1),
                                                ("2 local workers", LocalPool(2), 2)]
    if not a.skip_ray:
        backends.append(("Ray local, 2 CPUs", RayBackend("local", init_kwargs={"num_cpus": 2}), 2))
    rows = []
    stores = []
    for label, backend, workers in backends:
        base = root / backend.name
        shutil.rmtree(base, ignore_errors=True)
        torch.set_num_threads(1)  # every backend runs each job on one thread: the comparison is of scheduling
        prepared = prepare(campaign, base_dir=base)  # loading, keying and calibration: the same for every backend
        est = prepared.estimate_seconds
        t0 = time.perf_counter()
        result = execute(prepared, backend, threads=1)
        wall = time.perf_counter() - t0
        jobs = len(result.outcomes)
        rows.append((label, workers, jobs, result.counts, wall, sum(o["seconds"] for o in result.outcomes), est))
        for o in result.outcomes:
            if o["status"] != "complete":
                print(f"{label}: job {o['job_id']} {o['status']}: {o['error']}")
        stores.append(evidence_of(result.prepared.store_url))
    same = all(s == stores[0] for s in stores[1:])
    base_wall = rows[0][4]
    print(f"{'backend':24} {'jobs':>4} {'wall s':>7} {'job s':>7} {'est. s':>7} {'overhead/job s':>14}  outcome")
    for label, workers, jobs, counts, wall, job_s, est in rows:
        over = (wall * workers - base_wall) / max(jobs, 1)
        print(f"{label:24} {jobs:4d} {wall:7.1f} {job_s:7.1f} {est:7.1f} {over:14.2f}  {counts}")
    print(f"same evidence on every backend: {same} ({sum(len(v) for v in stores[0].values())} records, "
          f"{len(stores[0])} jobs)")


if __name__ == "__main__":
    main()
