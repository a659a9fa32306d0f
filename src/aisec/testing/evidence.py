"""Evidence records for tests: realistic, deterministic, no model needed.

>>> records = fake_run(metrics={"robustness.robust_accuracy": 0.62})
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

from aisec.core.evidence import DEFAULT_TOE, Environment, Evidence, Resource
from aisec.core.stats import Interval

_ENV = Environment(aisec="0.1.0", torch="2.13.0+cpu", numpy="2.0", python="3.11", platform="test", device="cpu")
_T0 = datetime(2026, 1, 1, tzinfo=UTC)


def fake_evidence(
    metric: str = "robustness.robust_accuracy",
    value: float = 0.5,
    *,
    run_id: str | None = None,
    index: int = 0,
    parameters: dict[str, Any] | None = None,
    model_sha256: str = "a" * 64,
    dataset_digest: str = "b" * 64,
    toe: str = DEFAULT_TOE,
    interval: tuple[float, float] | None = None,
    higher_is_better: bool = True,
    unit: str = "fraction",
    sample_count: int = 100,
    timestamp: datetime | None = None,
    threats: tuple[str, ...] = (),
) -> Evidence:
    """One record with a deterministic id (from ``run_id`` and ``index``) unless given a fresh run."""
    run_id = run_id or str(uuid.uuid4())
    lo, hi = interval if interval is not None else (max(0.0, value - 0.05), min(1.0, value + 0.05))
    return Evidence(
        id=str(uuid.uuid5(uuid.NAMESPACE_URL, f"aisec-test/{run_id}/{index}")),
        timestamp=timestamp or _T0 + timedelta(seconds=index),
        tool_version="0.1.0", run_id=run_id, target_of_evaluation_id=toe,
        check=metric.split(".", 1)[0], metric=metric, value=value, unit=unit, higher_is_better=higher_is_better,
        interval=Interval(low=lo, high=hi, method="wilson"), sample_count=sample_count,
        parameters=dict(parameters or {}), seed=0,
        resource=Resource(model_name="digits-cnn", model_sha256=model_sha256, model_access="white_box",
                          dataset_name="digits", dataset_digest=dataset_digest),
        environment=_ENV, threats=threats,
    )


def fake_run(n: int = 5, *, run_id: str | None = None, metrics: dict[str, float] | None = None,
             **kwargs: Any) -> list[Evidence]:
    """``n`` robust-accuracy records at growing eps, or one record per entry of ``metrics``."""
    run_id = run_id or str(uuid.uuid4())
    if metrics:
        return [fake_evidence(m, v, run_id=run_id, index=i, **kwargs) for i, (m, v) in enumerate(metrics.items())]
    return [
        fake_evidence("robustness.robust_accuracy", 0.9 - 0.1 * i, run_id=run_id, index=i,
                      parameters={"attack": "pgd", "norm": "linf", "eps": round(0.05 * (i + 1), 4)}, **kwargs)
        for i in range(n)
    ]
