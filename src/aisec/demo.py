"""``aisec demo``: the embedded default, end to end on shipped data in well under a minute."""

from __future__ import annotations

from pathlib import Path

from aisec.api import Run, assess
from aisec.core.progress import Progress, no_progress
from aisec.plan import Plan


def demo_plan(samples: int = 300) -> Plan:
    """The demo as a plan: digits CNN, digits test split, five attacks and CLEVER."""
    return Plan.parse({
        "model": "digits-cnn",
        "data": {"source": "digits", "options": {"split": "test"}},
        "seed": 0,
        "checks": {
            "robustness": {
                "samples": samples,
                "eps": [0.02, 0.05, 0.1, 0.15, 0.2, 0.3],
                "eps_l2": [0.1, 0.25, 0.5, 1.0, 1.5, 2.0],
                "attacks": [
                    {"name": "fgsm"},
                    {"name": "pgd", "params": {"steps": 20}},
                    {"name": "pgd", "norm": "l2", "params": {"steps": 20}},
                    {"name": "deepfool", "norm": "l2"},
                    {"name": "cw", "params": {"steps": 50, "binary_search_steps": 4}},
                ],
                "clever": {"samples": 30, "norms": ["l2", "linf"]},
            },
            "explainability": {"samples": 50, "num_samples": 1000, "stability_samples": 10},
        },
    })


def run_demo(*, out: str | Path = "aisec-report", samples: int = 300, progress: Progress = no_progress) -> Run:
    from aisec.api import load_data, load_model

    plan = demo_plan(samples)
    data = load_data(plan.data.source, plan.data.options)
    target = load_model(plan.model, data)
    return assess(target, data, checks=plan.checks, seed=plan.seed, out=out, progress=progress, plan=plan)
