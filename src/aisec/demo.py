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
                "clever": {"samples": 20, "norms": ["l2", "linf"]},
            },
            "explainability": {"samples": 50, "num_samples": 1000, "stability_samples": 10},
        },
    })


def run_demo(
    *,
    out: str | Path = "aisec-report",
    samples: int = 300,
    privacy: bool = False,
    reference_models: int = 8,
    progress: Progress = no_progress,
) -> Run:
    """Run the demo; with ``privacy`` also assess a deliberately over-fitted and a well-regularised
    digits model for membership leakage, shown next to each other in the same report."""
    from aisec.api import load_data, load_model, write_reports

    out = Path(out)
    plan = demo_plan(samples)
    data = load_data(plan.data.source, plan.data.options)
    target = load_model(plan.model, data)
    run = assess(target, data, checks=plan.checks, seed=plan.seed, out=out, progress=progress, plan=plan)
    if privacy:
        from aisec.demo_privacy import privacy_demo_models

        for demo in privacy_demo_models():
            run.related.append(assess(
                demo.target(), demo.members, checks={"privacy": demo.check_params(reference_models=reference_models)},
                seed=plan.seed, out=out / "privacy" / demo.name, progress=progress,
            ))
        write_reports(run)
    return run
