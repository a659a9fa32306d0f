"""The Python API: :func:`assess` runs a plan and returns (and optionally writes) its results.

Everything the CLI does goes through here, so a notebook, the CLI and a distributed worker
produce identical evidence.
"""

from __future__ import annotations

import csv
import json
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch

from aisec.core.check import Result
from aisec.core.dataset import Dataset
from aisec.core.errors import AisecError, ConfigError
from aisec.core.evidence import Environment, Evidence, RawRef, Resource, file_sha256, write_jsonl
from aisec.core.plan import Plan
from aisec.core.progress import Progress, no_progress
from aisec.core.registry import get_check
from aisec.core.run import Run
from aisec.core.target import Target


def load_model(plan_model: Any, data: Dataset) -> Target:
    """Resolve a plan's model reference (file or built-in name) into a target."""
    from aisec.models.builtin import BUILTIN_MODELS, builtin_model_file
    from aisec.targets.loading import load_target
    from aisec.targets.torch import TorchTarget

    m = plan_model
    input_shape = tuple(m.input_shape) if m.input_shape else data.info.sample_shape
    num_classes = m.num_classes or data.info.num_classes
    if m.path in BUILTIN_MODELS and not Path(m.path).exists():
        build, shape, _ = BUILTIN_MODELS[m.path]
        input_shape = tuple(m.input_shape) if m.input_shape else shape
        module = build()
        f = builtin_model_file(m.path)
        return TorchTarget(
            module, input_shape=input_shape, num_classes=num_classes, name=m.path,
            class_names=data.info.classes if len(data.info.classes) == num_classes else None,
            normalization=m.normalization, value_range=m.value_range, device=m.device,
            digest=file_sha256(f) if f else None, modality=data.info.modality,
        )
    return load_target(
        m.path, arch=m.arch, arch_kwargs=m.arch_kwargs, input_shape=input_shape,
        num_classes=num_classes, normalization=m.normalization, value_range=m.value_range,
        device=m.device, trust_model_code=m.trust_model_code, query_budget=m.query_budget,
        modality=data.info.modality, endpoint=m.endpoint or None,
        class_names=data.info.classes if len(data.info.classes) == num_classes else None,
    )


def load_data(source: str, options: dict[str, Any]) -> Dataset:
    from aisec.data.loading import load_dataset

    return load_dataset(source, **options)


def run_plan(
    plan: Plan,
    *,
    out: str | Path | None = None,
    progress: Progress = no_progress,
    on_evidence: Callable[[list[Evidence]], None] | None = None,
    policy: Any = None,
) -> Run:
    """Load the plan's data and model and run its checks."""
    data = load_data(plan.data.source, plan.data.options)
    target = load_model(plan.model, data)
    return assess(target, data, checks=plan.checks, seed=plan.seed, out=out, progress=progress,
                  plan=plan, on_evidence=on_evidence, policy=policy)


def assess(
    target: Target,
    data: Dataset,
    *,
    checks: dict[str, dict[str, Any]] | list[str] | str = "robustness",
    seed: int = 0,
    out: str | Path | None = None,
    progress: Progress = no_progress,
    plan: Plan | None = None,
    target_of_evaluation_id: str | None = None,
    on_evidence: Callable[[list[Evidence]], None] | None = None,
    policy: Any = None,
) -> Run:
    """Run checks on a target and dataset; write evidence and a report to ``out`` if given.

    Each check's evidence is written (and handed to ``on_evidence``, e.g. an evidence store) as soon
    as that check finishes, so a crash in a later check keeps what was measured before it.

    >>> run = assess(TorchTarget(net, input_shape=(1, 8, 8), num_classes=10), digits(),
    ...              checks={"robustness": {"attacks": ["pgd"], "eps": [0.1]}}, out="report")
    """
    if isinstance(checks, str):
        checks = [c.strip() for c in checks.split(",") if c.strip()]
    if isinstance(checks, list):
        checks = {c: {} for c in checks}
    if not checks:
        raise ConfigError("no checks requested")
    resolved = []
    for name, raw in checks.items():  # validate every check's params before running any
        info = get_check(name)
        try:
            params = info.cls.Params(**{"seed": seed, **raw}) if "seed" in info.cls.Params.model_fields \
                else info.cls.Params(**raw)
        except Exception as exc:
            raise ConfigError(f"invalid parameters for check '{name}': {exc}") from exc
        resolved.append((info, params))
    run_id = str(uuid.uuid4())
    out_dir = Path(out) if out is not None else None
    if out_dir is not None:
        out_dir.mkdir(parents=True, exist_ok=True)
        if plan is not None:
            (out_dir / "plan.yaml").write_text(plan.to_yaml(), encoding="utf-8")
    run = Run(run_id=run_id, plan=plan, target=target, data=data, out=out_dir, policy=policy)
    toe = target_of_evaluation_id or (plan.target_of_evaluation_id if plan else None)
    t0 = time.perf_counter()
    torch.manual_seed(seed)
    for info, params in resolved:
        result = info.cls().run(target, data, params, progress=progress)
        run.results.append(result)
        records = _evidence(result, target, data, run_id, seed, out_dir, toe)
        run.evidence += records
        if out_dir is not None:
            write_jsonl(records, out_dir / "evidence.jsonl")
            _write_result(out_dir, run)
        if on_evidence is not None:
            on_evidence(records)
    run.seconds = time.perf_counter() - t0
    judge(run)
    if out_dir is not None:
        write_reports(run)
    return run


def judge(run: Run) -> None:
    """Judge the run's evidence against its policy (default: Clouditor's AISecurity thresholds), once.

    The verdict heads every report; a policy that cannot be applied is reported as an error
    of the run rather than hiding the measurements.
    """
    from aisec.policy.rules import evaluate_policy

    try:
        run.verdict = evaluate_policy(run.evidence, run.policy)
    except AisecError as exc:
        run.errors.append(f"policy could not be applied: {exc}")


def write_reports(run: Run) -> None:
    """(Re)write the run's ``result.json``, ``report.html`` and ``report.md``."""
    from aisec.report.html import write_report
    from aisec.report.markdown import write_markdown

    if run.out is None:
        return
    _write_result(run.out, run)
    write_report(run, run.out / "report.html")
    write_markdown(run, run.out / "report.md")


def _evidence(
    result: Result, target: Target, data: Dataset, run_id: str, seed: int,
    out_dir: Path | None, toe: str | None,
) -> list[Evidence]:
    spec = target.spec
    refs: dict[str, RawRef] = {}
    if out_dir is not None:
        for key, table in result.tables.items():
            path = out_dir / "samples" / f"{result.check}-{key}.csv"
            rows = _write_table(table, path)
            refs[key] = RawRef(path=str(path.relative_to(out_dir)), sha256=file_sha256(path), rows=rows)
    resource = Resource(
        model_name=spec.name, model_sha256=spec.digest, model_access=spec.access.value,
        dataset_name=data.info.name, dataset_digest=data.info.digest, dataset_source=data.info.source,
    )
    env = Environment.capture(spec.device)
    from aisec import __version__

    extra: dict[str, Any] = {"target_of_evaluation_id": toe} if toe else {}
    return [
        Evidence(
            tool_version=__version__, run_id=run_id, check=result.check, metric=m.metric,
            value=m.value, unit=m.unit, higher_is_better=m.higher_is_better, interval=m.interval,
            sample_count=m.sample_count, parameters=m.parameters, seed=seed, resource=resource,
            environment=env, raw=refs.get(m.raw_key) if m.raw_key else None,
            threats=result.threats, **extra,
        )
        for m in result.measurements
    ]


def _write_table(table: dict[str, np.ndarray], path: Path) -> int:
    path.parent.mkdir(parents=True, exist_ok=True)
    cols = list(table)
    n = len(next(iter(table.values()))) if table else 0
    tmp = path.with_suffix(".tmp")
    with tmp.open("w", newline="", encoding="utf-8") as fh:
        w = csv.writer(fh)
        w.writerow(cols)
        for i in range(n):
            w.writerow([_cell(table[c][i]) for c in cols])
    tmp.replace(path)
    return n


def _cell(v: Any) -> Any:
    if isinstance(v, (np.bool_, bool)):
        return int(v)
    if isinstance(v, (np.floating, float)):
        return "" if not np.isfinite(v) else f"{float(v):.6g}"
    return v.item() if hasattr(v, "item") else v


def _write_result(out_dir: Path, run: Run) -> None:
    tmp = out_dir / "result.json.tmp"
    tmp.write_text(json.dumps(run.summary(), indent=2, default=str), encoding="utf-8")
    tmp.replace(out_dir / "result.json")


__all__ = ["AisecError", "Run", "assess", "load_data", "load_model", "run_plan"]
