"""The Python API: :func:`assess` runs a plan and returns (and optionally writes) its results.

Everything the CLI does goes through here, so a notebook, the CLI and a distributed worker
produce identical evidence.
"""

from __future__ import annotations

import csv
import json
import shutil
import time
import uuid
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import numpy as np
import torch

from aisec.core.artefacts import ARTEFACTS, ArtefactRef, csv_cell, write_artefacts
from aisec.core.check import Result
from aisec.core.checkpoint import (
    CHECKPOINTS,
    Checkpoint,
    capture_rng,
    load_checkpoints,
    restore_rng,
    save_checkpoint,
    steps_in,
)
from aisec.core.dataset import Dataset
from aisec.core.errors import AisecError, ConfigError, DataError, UnsafeModelError
from aisec.core.evidence import (
    DEFAULT_TOE,
    Environment,
    Evidence,
    Measurement,
    RawRef,
    Resource,
    file_sha256,
    read_jsonl,
    write_jsonl,
)
from aisec.core.plan import Plan
from aisec.core.progress import Progress, no_progress
from aisec.core.registry import get_check
from aisec.core.run import Run
from aisec.core.target import Target
from aisec.core.types import Modality
from aisec.data.table import CsvTable

if TYPE_CHECKING:
    from aisec.defences.training import DefenceRecipe, DefenceRecord

#: What to do with an output folder that already holds a run (see :func:`start_run`).
Existing = Literal["refuse", "overwrite", "resume"]


def load_model(plan_model: Any, data: Dataset) -> Target:
    """Resolve a plan's model reference (file or built-in name) into a target, behind its ``defence`` if any."""
    spec = getattr(plan_model, "defence", None)
    if spec is None:
        return _load_model(plan_model, data)
    from aisec.defences.preprocess import DefendedTarget, parse_defence

    defence = parse_defence(spec)  # a bad name or parameter fails before the model is loaded
    return DefendedTarget(_load_model(plan_model, data), defence)


def _load_model(plan_model: Any, data: Dataset) -> Target:
    from aisec.models.builtin import BUILTIN_MODELS, builtin_model_file
    from aisec.targets.loading import load_target
    from aisec.targets.torch import TorchTarget

    m = plan_model
    input_shape = tuple(m.input_shape) if m.input_shape else data.info.sample_shape
    num_classes = m.num_classes or data.info.num_classes
    if m.num_classes is not None and m.num_classes != data.info.num_classes:
        raise ConfigError(
            f"--classes {m.num_classes}: dataset '{data.info.name}' has {data.info.num_classes} classes; the model's "
            "class count must match the data's labels (give the dataset its model's classes, or drop --classes)"
        )
    # a value range the plan does not state is the data's: (0, 1) for images and min-max scaled tables,
    # the data's extremes for a table in raw units or z-scores (so attacks do not clamp raw rows to [0, 1])
    value_range = m.value_range if m.value_range is not None else (
        data.info.value_range if data.info.modality is Modality.TABULAR else (0.0, 1.0))
    if m.path in BUILTIN_MODELS:  # the built-in, even beside a same-named file (./NAME reads the file)
        build, shape, _ = BUILTIN_MODELS[m.path]
        input_shape = tuple(m.input_shape) if m.input_shape else shape
        module = build()
        f = builtin_model_file(m.path)
        return TorchTarget(
            module, input_shape=input_shape, num_classes=num_classes, name=m.path,
            class_names=data.info.classes if len(data.info.classes) == num_classes else None,
            normalization=m.normalization, value_range=value_range, device=m.device,
            digest=file_sha256(f) if f else None, modality=data.info.modality, memory_format="auto",
        )
    return load_target(
        m.path, arch=m.arch, arch_kwargs=m.arch_kwargs, input_shape=input_shape,
        num_classes=num_classes, normalization=m.normalization, value_range=value_range,
        device=m.device, trust_model_code=m.trust_model_code, query_budget=m.query_budget,
        modality=data.info.modality, endpoint=m.endpoint or None,
        class_names=data.info.classes if len(data.info.classes) == num_classes else None,
    )


#: model references whose tables are fed in raw units unless the plan says otherwise (``data.scale: auto``)
_RAW_MODEL_SUFFIXES = (".pkl", ".pickle", ".joblib", ".onnx")


def default_table_scale(model_ref: str) -> str:
    """The scaling ``data.scale: auto`` gives a CSV table for the model ``model_ref``.

    ``none`` (raw features) for pickled scikit-learn, ONNX and HTTP models: they are trained outside
    aisec, on the table's own units (or scale inside, e.g. a scikit-learn ``Pipeline``). ``minmax``
    for torch models and aisec's built-ins, which aisec's training helpers fit on [0, 1] inputs.
    """
    ref = model_ref.strip().lower()
    if ref.startswith(("http://", "https://")) or ref.endswith(_RAW_MODEL_SUFFIXES):
        return "none"
    return "minmax"


def plan_data(plan: Plan) -> Dataset:
    """The plan's dataset; a numeric CSV table scaled as ``plan.data.scale`` says (``auto``: by the model kind,
    :func:`default_table_scale`). A scale other than ``auto`` for data that is not a CSV table is an error."""
    from aisec.data.loading import is_numeric_table

    options = dict(plan.data.options)
    if is_numeric_table(plan.data.source, options):
        scale = plan.data.scale if plan.data.scale != "auto" else default_table_scale(plan.model.path)
        options["scale"] = scale
    elif plan.data.scale != "auto":
        raise ConfigError(f"data scale '{plan.data.scale}' applies to numeric CSV tables, and '{plan.data.source}' "
                          "is not one; its loader gives the inputs in their natural range (images in [0, 1])")
    return load_data(plan.data.source, options)


def load_data(source: str, options: dict[str, Any] | None = None) -> Dataset:
    """A dataset from a built-in name, a folder or a file (``options``: see :func:`aisec.data.loading.load_dataset`)."""
    from aisec.data.loading import load_dataset

    return load_dataset(source, **(options or {}))


def as_dataset(data: Dataset | str | Path) -> Dataset:
    """``data`` itself, or the dataset a built-in name, folder or file names."""
    return load_data(str(data)) if isinstance(data, (str, Path)) else data


def as_target(model: Target | torch.nn.Module | str | Path, data: Dataset) -> Target:
    """``model`` itself when it is a target; a torch module wrapped for ``data`` (its sample shape,
    class count and modality); a file, built-in name or URL loaded as :func:`load_model` does."""
    if isinstance(model, torch.nn.Module):
        from aisec.targets.torch import TorchTarget

        n = data.info.num_classes
        return TorchTarget(model, input_shape=data.info.sample_shape, num_classes=n, modality=data.info.modality,
                           class_names=data.info.classes if len(data.info.classes) == n else None)
    if isinstance(model, (str, Path)):
        from aisec.core.plan import ModelRef

        return load_model(ModelRef(path=str(model)), data)
    return model


def run_plan(
    plan: Plan,
    *,
    out: str | Path | None = None,
    progress: Progress = no_progress,
    on_evidence: Callable[[list[Evidence]], None] | None = None,
    policy: Any = None,
    existing: Existing = "refuse",
    run_id: str | None = None,
) -> Run:
    """Load the plan's data and model and run its checks (``existing``, ``run_id``: see :func:`assess`).

    A ``model-scan`` check runs first, on the plan's model file, **before** the model is loaded; when
    loading then refuses the file (an unsafe pickle without ``trust_model_code``), the refusal names
    the findings.
    """
    data = plan_data(plan)
    checks = dict(plan.checks)
    scanned: list[Result] = []
    if "model-scan" in checks:
        scanned.append(_scan_model_file(plan, checks.pop("model-scan"), progress))
    try:
        target = load_model(plan.model, data)
    except UnsafeModelError as exc:
        if scanned:
            found = "; ".join(w for w in scanned[0].warnings) or "no finding at the fail_at severity"
            raise UnsafeModelError(f"{exc} Model scan: {found}") from exc
        raise
    return assess(target, data, checks=checks or {}, seed=plan.seed, out=out, progress=progress,
                  plan=plan, on_evidence=on_evidence, policy=policy, results=scanned, existing=existing, run_id=run_id)


def _scan_model_file(plan: Plan, raw: dict[str, Any], progress: Progress) -> Result:
    """The model-scan check on the file behind ``plan.model`` (or the ``path`` the plan gives)."""
    from aisec.checks.model_scan import ModelScanCheck, ModelScanParams
    from aisec.models.builtin import BUILTIN_MODELS, builtin_model_file

    entry = dict(raw)
    if not entry.get("path"):
        ref = plan.model.path
        if ref.startswith(("http://", "https://")):
            raise ConfigError(f"model-scan needs a model file or folder, and '{ref}' is an endpoint; scan the file "
                              "the service was built from with 'aisec model-scan PATH'")
        if ref in BUILTIN_MODELS:
            f = builtin_model_file(ref)
            if f is None:
                raise ConfigError(f"built-in model '{ref}' is built in code and has no file to scan; "
                                  "drop model-scan from the checks")
            ref = str(f)
        entry["path"] = ref
    try:
        params = ModelScanParams(**entry)
    except Exception as exc:
        raise ConfigError(f"invalid parameters for check 'model-scan': {exc}") from exc
    return ModelScanCheck().run(None, None, params, progress=progress)


def assess(
    target: Target | torch.nn.Module | str | Path,
    data: Dataset | str | Path,
    *,
    checks: dict[str, dict[str, Any]] | list[str] | str = "robustness",
    seed: int = 0,
    out: str | Path | None = None,
    progress: Progress = no_progress,
    plan: Plan | None = None,
    target_of_evaluation_id: str | None = None,
    on_evidence: Callable[[list[Evidence]], None] | None = None,
    policy: Any = None,
    results: Sequence[Result] = (),
    existing: Existing = "refuse",
    run_id: str | None = None,
    defence: str | None = None,
) -> Run:
    """Run checks on a target and dataset; write evidence and a report to ``out`` if given.

    ``defence``: assess ``target`` behind this preprocessing defence (``"jpeg:quality=75"``, see
    :mod:`aisec.defences.preprocess`); every record then names it.

    Each finished check is checkpointed in ``out/checkpoints/``. ``existing="resume"`` continues the
    run already in ``out`` (same run id, model and data digests checked): checks with a checkpoint
    are taken from it, the random state is restored, and only the missing checks run, so a killed
    run resumed gives the evidence of an uninterrupted one. ``existing`` otherwise says what to do
    with a folder that holds a run (see :func:`start_run`).

    ``results``: results measured before the target was loaded (the model-file scan), recorded first.

    ``target`` may be a :class:`~aisec.core.target.Target`, a torch module (wrapped for the data's
    shape and classes) or a model file / built-in name; ``data`` a dataset or a built-in name,
    folder or file.

    Each check's evidence is written (and handed to ``on_evidence``, e.g. an evidence store) as soon
    as that check finishes, so a crash in a later check keeps what was measured before it.

    >>> run = assess(TorchTarget(net, input_shape=(1, 8, 8), num_classes=10), digits(),
    ...              checks={"robustness": {"attacks": ["pgd"], "eps": [0.1]}}, out="report")
    """
    data = as_dataset(data)
    target = as_target(target, data)
    if defence is not None:
        from aisec.defences.preprocess import DefendedTarget

        target = DefendedTarget(target, defence)
    if isinstance(checks, str):
        checks = [c.strip() for c in checks.split(",") if c.strip()]
    if isinstance(checks, list):
        checks = {c: {} for c in checks}
    if not checks and not results:
        raise ConfigError("no checks requested")
    resolved = []
    for name, raw in checks.items():  # validate every check's params before running any
        info = get_check(name)
        raw = _with_reference_eps(raw, info.cls.Params.model_fields, policy)
        try:
            params = info.cls.Params(**{"seed": seed, **raw}) if "seed" in info.cls.Params.model_fields \
                else info.cls.Params(**raw)
        except Exception as exc:
            raise ConfigError(f"invalid parameters for check '{name}': {exc}") from exc
        resolved.append((info, params))
    done: list[Checkpoint] = []
    if existing == "resume":
        if out is None:
            raise ConfigError("resuming needs the run's folder (out)")
        order = [r.check for r in results] + [i.name for i, _ in resolved]
        run_id, done = _resume_state(Path(out), target, data, order)
    run = start_run(target, data, seed=seed, out=out, plan=plan, policy=policy,
                    target_of_evaluation_id=target_of_evaluation_id, existing=existing, run_id=run_id)
    if done:
        _reuse(run, done)
    t0 = time.perf_counter()
    index = len(done)
    for early in results[index:] if done else results:
        record_result(run, early, on_evidence=on_evidence)
        index = _checkpoint(run, index, early)
    if done:
        restore_rng(done[-1].rng)
    else:
        torch.manual_seed(seed)
    try:
        for info, params in resolved[max(0, len(done) - len(results)):]:
            steps = run.out / CHECKPOINTS / f"steps-{index:02d}-{info.name}" if run.out is not None else None
            with steps_in(steps):  # a check that keeps its steps (robustness: each attack) resumes mid-way
                result = info.cls().run(target, data, params, progress=progress)
            record_result(run, result, on_evidence=on_evidence)
            index = _checkpoint(run, index, result)
            if steps is not None:
                shutil.rmtree(steps, ignore_errors=True)  # the check's own checkpoint now holds it all
    except Exception:
        # an error (not a kill: Ctrl-C and SIGTERM keep everything to resume) before any check finished
        # leaves the folder as it found it but for plan.yaml: nothing to resume, nothing measured
        if run.out is not None and not run.results:
            shutil.rmtree(run.out / CHECKPOINTS, ignore_errors=True)
        raise
    run.seconds = time.perf_counter() - t0
    return finish_run(run)


def _with_reference_eps(raw: dict[str, Any], fields: Mapping[str, Any], policy: Any) -> dict[str, Any]:
    """``raw`` with the policy's ``reference_eps`` for a check that measures at reference budgets (robustness),
    unless the plan sets them: the budgets the verdict reads are then the ones measured."""
    budgets = getattr(policy, "reference_eps", None)
    if not budgets or "reference_eps" not in fields or "reference_eps" in raw:
        return raw
    return {**raw, "reference_eps": dict(budgets)}


def _checkpoint(run: Run, index: int, result: Result) -> int:
    if run.out is not None:
        save_checkpoint(run.out, index, result, capture_rng())
    return index + 1


def _resume_state(out: Path, target: Target, data: Dataset, order: list[str]) -> tuple[str, list[Checkpoint]]:
    """The run id and the checkpoints of the run in ``out``, after checking they belong to this plan,
    model and data; evidence of a check that has no checkpoint (killed mid-way) is dropped."""
    rid = previous_run_id(out) if out.is_dir() else None
    if rid is None:
        raise ConfigError(f"{out} holds no run to resume (no result.json, evidence.jsonl or checkpoints/run.json)")
    started = out / CHECKPOINTS / "run.json"
    if started.is_file():
        first = json.loads(started.read_text(encoding="utf-8"))
        if (first.get("model_sha256"), first.get("dataset_digest")) != (target.spec.digest, data.info.digest):
            raise ConfigError(f"{out}: the model or data differ from the ones the run started with (model "
                              f"{str(first.get('model_sha256'))[:12]} vs {target.spec.digest[:12]}, data "
                              f"{str(first.get('dataset_digest'))[:12]} vs {data.info.digest[:12]}); resuming "
                              "would mix them")
    done = load_checkpoints(out)
    names = [c.result.check for c in done]
    if names != order[:len(names)]:
        raise ConfigError(f"{out}: its finished checks {names} are not the start of the plan's {order}; "
                          "resume with the plan the run was started with")
    evidence = out / "evidence.jsonl"
    records = read_jsonl(evidence) if evidence.is_file() and evidence.stat().st_size else []
    for r in records:
        if r.run_id != rid:
            raise ConfigError(f"{evidence} mixes runs ({r.run_id} and {rid}); it cannot be resumed")
        if r.resource.model_sha256 != target.spec.digest or r.resource.dataset_digest != data.info.digest:
            raise ConfigError(f"{out}: the model or data differ from the ones the run started with "
                              f"(model {r.resource.model_sha256[:12]} vs {target.spec.digest[:12]}, data "
                              f"{r.resource.dataset_digest[:12]} vs {data.info.digest[:12]}); resuming would mix them")
    keep = [r for r in records if r.check in set(names)]
    if len(keep) != len(records):  # a check killed after writing part of its evidence: it runs again
        tmp = evidence.with_suffix(".jsonl.tmp")
        tmp.unlink(missing_ok=True)
        write_jsonl(keep, tmp)
        tmp.replace(evidence)
    return rid, done


def _reuse(run: Run, done: list[Checkpoint]) -> None:
    """Put the checkpointed checks and their recorded evidence back into the resumed run."""
    evidence = run.out / "evidence.jsonl" if run.out is not None else None
    records = read_jsonl(evidence) if evidence is not None and evidence.is_file() and evidence.stat().st_size else []
    for c in done:
        run.results.append(c.result)
        run.seconds += c.result.seconds
    run.evidence += records
    if run.out is not None:
        run.artefacts += kept_artefacts(run.out, {c.result.check for c in done})


def kept_artefacts(out_dir: Path, checks: set[str]) -> list[ArtefactRef]:
    """The artefacts the run in ``out_dir`` listed in its ``result.json`` for ``checks`` whose files are still
    there with the listed sha256 (what a resumed run keeps: the artefacts are not in the checkpoints)."""
    path = out_dir / "result.json"
    try:
        listed = json.loads(path.read_text(encoding="utf-8")).get("artefacts") or [] if path.is_file() else []
        refs = [ArtefactRef.model_validate(a) for a in listed]
    except (ValueError, OSError, AttributeError):
        return []
    return [r for r in refs if r.check in checks and (out_dir / r.path).is_file()
            and file_sha256(out_dir / r.path) == r.sha256]


def start_run(
    target: Target,
    data: Dataset,
    *,
    seed: int = 0,
    out: str | Path | None = None,
    plan: Plan | None = None,
    policy: Any = None,
    target_of_evaluation_id: str | None = None,
    existing: Existing = "refuse",
    run_id: str | None = None,
) -> Run:
    """Open a run whose results go through the one evidence path (:func:`record_result`, :func:`finish_run`).

    ``out`` is one run's folder: one that already holds a run is refused (``existing="refuse"``: two
    runs' records would mix), cleared of aisec's files first (``"overwrite"``), or continued
    (``"resume"``, see :func:`assess`).

    :func:`assess` and every other runner (e.g. :func:`aisec.campaigns.scan.run_scan`) start their run here,
    so each one's evidence carries the same provenance (tool version, run id, resource digests, environment,
    seed, target of evaluation) and each out folder holds the same files. Creates ``out`` and writes the
    plan there when given.
    """
    out_dir = Path(out) if out is not None else None
    if out_dir is not None:
        prepare_out(out_dir, existing)
        out_dir.mkdir(parents=True, exist_ok=True)
        if plan is not None:
            tmp = out_dir / "plan.yaml.tmp"
            tmp.write_text(plan.to_yaml(), encoding="utf-8")
            tmp.replace(out_dir / "plan.yaml")
    toe = target_of_evaluation_id or (plan.target_of_evaluation_id if plan else None)
    run = Run(run_id=run_id or str(uuid.uuid4()), plan=plan, target=target, data=data, out=out_dir, policy=policy,
              seed=seed, target_of_evaluation_id=toe)
    if out_dir is not None:  # what a resume checks before it continues, even if no check finished
        start = out_dir / CHECKPOINTS / "run.json"
        if not start.is_file():
            start.parent.mkdir(parents=True, exist_ok=True)
            tmp = start.with_suffix(".json.tmp")
            tmp.write_text(json.dumps({"run_id": run.run_id, "model_sha256": target.spec.digest,
                                       "dataset_digest": data.info.digest, "seed": seed}), encoding="utf-8")
            tmp.replace(start)
    return run


#: What aisec writes into a run folder; ``existing="overwrite"`` removes exactly these.
RUN_FILES = ("evidence.jsonl", "result.json", "report.html", "report.md", "plan.yaml", "policy.json", "policy.md",
             "scan.json", "constraints.yaml")
RUN_FOLDERS = ("samples", ARTEFACTS, CHECKPOINTS, "explanations")


def previous_run_id(out_dir: Path) -> str | None:
    """The run id of the run already in ``out_dir`` (from ``result.json``, else ``evidence.jsonl``), if any."""
    result = out_dir / "result.json"
    if result.is_file():
        try:
            rid = json.loads(result.read_text(encoding="utf-8")).get("run_id")
        except (ValueError, OSError) as exc:
            raise DataError(f"{result} is not a readable result.json: {exc}") from exc
        if isinstance(rid, str):
            return rid
    evidence = out_dir / "evidence.jsonl"
    if evidence.is_file() and evidence.stat().st_size:
        records = read_jsonl(evidence)
        if records:
            return records[0].run_id
    started = out_dir / CHECKPOINTS / "run.json"
    if started.is_file():
        try:
            rid = json.loads(started.read_text(encoding="utf-8")).get("run_id")
        except (ValueError, OSError) as exc:
            raise DataError(f"{started} is not readable: {exc}") from exc
        return rid if isinstance(rid, str) else None
    return None


def prepare_out(out_dir: Path, existing: Existing) -> None:
    """Apply the one-run-per-folder rule to ``out_dir`` (see :func:`start_run`)."""
    if not out_dir.exists():
        return
    if not out_dir.is_dir():
        raise ConfigError(f"output folder {out_dir} is a file")
    held = [n for n in (*RUN_FILES, *RUN_FOLDERS) if (out_dir / n).exists()]
    if held == ["plan.yaml"] and existing != "resume":
        # a run that failed before anything was measured leaves only its plan (see run_plan): not a run to
        # protect, so the same folder takes the corrected command (its plan.yaml is replaced)
        return
    if not held or existing == "resume":
        return
    if existing == "overwrite":
        for n in held:
            path = out_dir / n
            if path.is_dir():
                shutil.rmtree(path)
            else:
                path.unlink()
        return
    rid = previous_run_id(out_dir)
    raise ConfigError(
        f"output folder {out_dir} already holds a run{f' ({rid})' if rid else ''}: a second run there would mix "
        f"its records with the first. Give a new folder, --resume {out_dir} to finish that run, or --overwrite "
        "to replace it")


def record_result(
    run: Run,
    result: Result,
    *,
    measurements: Sequence[Measurement] | None = None,
    on_evidence: Callable[[list[Evidence]], None] | None = None,
) -> list[Evidence]:
    """Turn a result's measurements into evidence of the run, as soon as they exist.

    Adds ``result`` to the run (once), turns ``measurements`` (default: all of the result's) into
    :class:`Evidence`, writes their per-sample tables to ``samples/``, appends the records to
    ``evidence.jsonl``, rewrites ``result.json`` and hands the records to ``on_evidence`` (e.g. an
    evidence store's recorder). A runner whose result grows while it runs (a scan adds a measurement
    per finished attack run) calls this once per new measurement; a crash later keeps what was recorded.

    Returns:
        The new evidence records (also appended to ``run.evidence``).
    """
    if not any(r is result for r in run.results):
        run.results.append(result)
    records = _evidence(result, run, measurements)
    records += _accuracy_skill(run, records)
    run.evidence += records
    if run.out is not None:
        if result.artefacts:  # the files first: result.json lists them with their sha256
            refs = write_artefacts(run.out, result.check, result.artefacts)
            new = {r.path for r in refs}
            run.artefacts = [a for a in run.artefacts if a.path not in new] + refs
        write_jsonl(records, run.out / "evidence.jsonl")
        _write_result(run.out, run)
    if on_evidence is not None:
        on_evidence(records)
    return records


def finish_run(run: Run) -> Run:
    """End the run: judge its policy (once, see :func:`judge`), read a threat-model run's residual risk
    (:func:`aisec.threats.residual.residual_risk`) and write ``result.json`` and the reports."""
    from aisec.threats.residual import residual_risk

    judge(run)
    run.residual = residual_risk(run)
    write_reports(run)
    return run


def judge(run: Run) -> None:
    """Judge the run's evidence against its policy (default: Clouditor's AISecurity thresholds), once.

    The verdict heads every report and is what a policy gate (:class:`aisec.policy.gate.Gate`) reuses;
    a policy that cannot be applied is reported as an error of the run rather than hiding the measurements.
    """
    from aisec.policy.gate import judge as judge_once

    judge_once(run)


def write_reports(run: Run) -> None:
    """(Re)write the run's ``result.json``, ``report.html`` and ``report.md``."""
    from aisec.report.html import write_report
    from aisec.report.markdown import write_markdown

    if run.out is None:
        return
    _write_result(run.out, run)
    write_report(run, run.out / "report.html")
    write_markdown(run, run.out / "report.md")


def _evidence(result: Result, run: Run, measurements: Sequence[Measurement] | None = None) -> list[Evidence]:
    """Evidence records for ``measurements`` (default: all) of ``result``, their tables written to ``samples/``.

    With an explicit list only the tables those measurements point to are (re)written; without, every
    table of the result is.
    """
    target, data, out_dir = run.target, run.data, run.out
    chosen = list(result.measurements if measurements is None else measurements)
    spec = target.spec
    refs: dict[str, RawRef] = {}
    if out_dir is not None:
        keys = list(result.tables) if measurements is None else \
            [k for k in dict.fromkeys(m.raw_key for m in chosen) if k is not None and k in result.tables]
        for key in keys:
            path = out_dir / "samples" / f"{result.check}-{key}.csv"
            rows = _write_table(result.tables[key], path)
            refs[key] = RawRef(path=str(path.relative_to(out_dir)), sha256=file_sha256(path), rows=rows)
    resource = Resource(
        model_name=spec.name, model_sha256=spec.digest, model_access=spec.access.value,
        dataset_name=data.info.name, dataset_digest=data.info.digest, dataset_source=data.info.source,
    )
    env = Environment.capture(spec.device)
    # a model assessed behind a preprocessing defence: every record says which, with its parameters
    defence = getattr(target, "defence_record", None)
    from aisec.core.version import __version__

    # a table's scaling says what unit eps, distances and the value range are in: every record keeps it
    scaling = data.scaling_record() if isinstance(data, CsvTable) else None

    toe = run.target_of_evaluation_id or DEFAULT_TOE
    return [
        Evidence(
            tool_version=__version__, run_id=run.run_id, check=result.check, metric=m.metric,
            value=m.value, unit=m.unit, higher_is_better=m.higher_is_better, interval=m.interval,
            sample_count=m.sample_count, seed=run.seed, resource=resource,
            parameters={**m.parameters, **({"defence": defence["spec"]} if defence else {}),
                        **({"input_scaling": scaling} if scaling is not None else {})},
            environment=env, raw=refs.get(m.raw_key) if m.raw_key else None,
            threats=result.threats, target_of_evaluation_id=toe,
        )
        for m in chosen
    ]


def _accuracy_skill(run: Run, records: Sequence[Evidence]) -> list[Evidence]:
    """For a check's best clean accuracy among ``records``, its normalised margin over chance
    (:data:`aisec.policy.sanity.SKILL_METRIC`), one run-level record: what the near-chance warning and the
    default policy's sanity rule read. Chance is the larger of 1/K and the majority-class share of the
    first ``sample_count`` labels of the run's data (the samples the checks evaluate)."""
    from aisec.policy.sanity import SKILL_METRIC, accuracy_skill

    clean = [e for e in records if e.metric.endswith(".clean_accuracy") and e.sample_count > 0]
    if not clean:
        return []
    best = max(clean, key=lambda e: e.value)
    k = max(run.target.spec.num_classes, run.data.info.num_classes, 1)
    counts = np.zeros(k, dtype=np.int64)
    for _, y in run.data.batches(512, limit=best.sample_count):
        yy = y.cpu().numpy().astype(np.int64)
        counts += np.bincount(yy[(yy >= 0) & (yy < k)], minlength=k)
    share = float(counts.max() / counts.sum()) if counts.sum() else 0.0
    chance = max(1.0 / k, share)
    basis = (f"majority class, {share:.1%} of the {int(counts.sum())} evaluated labels" if share > 1.0 / k
             else f"uniform guess over {k} classes")
    params = {"source_metric": best.metric, "clean_accuracy": best.value, "chance": round(chance, 6),
              "chance_basis": basis, "classes": k}
    return [best.model_copy(update={
        "id": str(uuid.uuid4()), "metric": SKILL_METRIC, "value": accuracy_skill(best.value, chance),
        "unit": "skill (0 = chance, 1 = perfect)", "higher_is_better": True,
        # the accuracy's interval through the same (monotone) map
        "interval": best.interval.model_copy(update={
            "low": accuracy_skill(best.interval.low, chance), "high": accuracy_skill(best.interval.high, chance),
            "method": f"{best.interval.method} of the accuracy, mapped"}) if best.interval is not None else None,
        "parameters": {**params, **({"input_scaling": best.parameters["input_scaling"]}
                                    if "input_scaling" in best.parameters else {})},
        "raw": None, "threats": (),
    })]


def _write_table(table: dict[str, np.ndarray], path: Path) -> int:
    path.parent.mkdir(parents=True, exist_ok=True)
    cols = list(table)
    n = len(next(iter(table.values()))) if table else 0
    tmp = path.with_suffix(".tmp")
    with tmp.open("w", newline="", encoding="utf-8") as fh:
        w = csv.writer(fh)
        w.writerow(cols)
        for i in range(n):
            w.writerow([csv_cell(table[c][i]) for c in cols])
    tmp.replace(path)
    return n




def _write_result(out_dir: Path, run: Run) -> None:
    tmp = out_dir / "result.json.tmp"
    tmp.write_text(json.dumps(run.summary(), indent=2, default=str), encoding="utf-8")
    tmp.replace(out_dir / "result.json")


def defend(
    model: Target | torch.nn.Module | str | Path,
    data: Dataset | str | Path,
    recipe: str | dict[str, Any] | DefenceRecipe,
    out: str | Path,
    *,
    arch: str | None = None,
    arch_kwargs: dict[str, Any] | None = None,
    eval_data: Dataset | str | Path | None = None,
    seed: int = 0,
    force: bool = False,
    device: str | None = None,
    progress: Progress = no_progress,
) -> DefenceRecord:
    """Train a defended copy of ``model`` on ``data`` with a training defence and write it to ``out``.

    ``out`` (``*.safetensors``) holds the weights and names the architecture, so ``aisec assess -m out``
    loads it without running code from it; ``out`` with ``.defence.json`` for ``.safetensors`` holds the
    returned :class:`~aisec.defences.training.DefenceRecord`. An existing output is refused unless ``force``;
    the input model file is never overwritten.

    >>> rec = aisec.defend("digits-cnn", aisec.digits(split="train"), "pgd-at:eps=0.1,epochs=5",
    ...                    "defended.safetensors", eval_data=aisec.digits(split="test"))
    >>> rec.clean_accuracy_after, rec.epochs_per_minute

    Args:
        model: a target, a torch module, a built-in name or a model file (weights need ``arch``
            unless aisec wrote them).
        recipe: ``pgd-at:eps=0.1,epochs=5``, ``{"name": "trades", "beta": 6}`` or a ``DefenceRecipe``
            (defences: ``aisec plugins`` lists the ``training`` family).
        eval_data: held-out data for clean accuracy before and after (default: the training data).
    """
    from aisec.core.plan import ModelRef
    from aisec.defences.training import check_out, parse_recipe, save_defended, train_defended

    r = parse_recipe(recipe)  # a bad recipe or output fails before the model is loaded or trained
    inputs = (model,) if isinstance(model, (str, Path)) else ()
    check_out(out, force=force, inputs=inputs)
    train = as_dataset(data)
    held = as_dataset(eval_data) if eval_data is not None else None
    if isinstance(model, (str, Path)):
        target = load_model(ModelRef(path=str(model), arch=arch, arch_kwargs=arch_kwargs or {}, device=device), train)
    else:
        target = as_target(model, train)
    defended = train_defended(target, train, r, eval_data=held, arch=arch, arch_kwargs=arch_kwargs, seed=seed,
                              progress=progress)
    return save_defended(defended, out, force=force, inputs=inputs)


__all__ = [
    "AisecError", "Run", "as_dataset", "as_target", "assess", "default_table_scale", "defend", "finish_run", "judge",
    "load_data", "load_model", "plan_data",
    "record_result", "run_plan", "start_run", "write_reports",
]
