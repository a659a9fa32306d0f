"""``aisec report RUN_DIR``: a run's report re-rendered from what its folder keeps, without re-running anything.

After an upgrade (new report sections, plainer words) or to judge the same evidence against another policy,
the run folder is enough: ``result.json`` holds each check's typed summary (as JSON), its warnings and every
evidence record; ``checkpoints/`` (when the run kept it) holds the same summaries with their type names and
the arrays behind the report's example images. The figures drawn from numbers (curves, histograms, ROC) are
re-drawn from the summaries; example images exist only in the checkpoints, and where they are missing the
re-rendered report says so instead of failing.

With a policy the evidence is judged again (:func:`aisec.policy.rules.evaluate_policy`); without one the
verdict stored in ``result.json`` is kept, so the re-rendered report says exactly what the original said.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, cast

from pydantic import ValidationError

from aisec.core.check import DictSummary, Result, Summary
from aisec.core.dataset import Dataset
from aisec.core.errors import ConfigError, DataError
from aisec.core.evidence import Evidence, Measurement
from aisec.core.run import Run
from aisec.core.target import Target
from aisec.core.types import Modality

#: check name -> its summary type, for a ``result.json`` whose folder has no checkpoint naming it
SUMMARY_TYPES: dict[str, str] = {
    "robustness": "aisec.checks.robustness:RobustnessSummary",
    "explainability": "aisec.checks.explainability:ExplainabilitySummary",
    "poisoning": "aisec.checks.poisoning:PoisoningSummary",
    "backdoor": "aisec.checks.backdoor:BackdoorSummary",
    "privacy": "aisec.checks.privacy:PrivacySummary",
    "extraction": "aisec.checks.extraction:ExtractionSummary",
    "model-scan": "aisec.checks.model_scan:ModelScanSummary",
    "spade": "aisec.checks.spade:SpadeSummary",
    "detection": "aisec.checks.detection:DetectionSummary",
}

#: checks whose report shows example images kept only in the checkpoints
_IMAGE_CHECKS = ("robustness", "explainability", "poisoning", "backdoor", "privacy", "spade")


@dataclass(frozen=True)
class _StoredSpec:
    """The model facts a report prints (name, access, sha256), read back from the evidence."""

    name: str
    digest: str
    access: Any
    modality: Modality = Modality.IMAGE


@dataclass(frozen=True)
class _Access:
    value: str


@dataclass
class _StoredTarget:
    spec: _StoredSpec


@dataclass(frozen=True)
class _StoredInfo:
    name: str
    digest: str
    classes: tuple[str, ...]
    modality: Modality = Modality.IMAGE

    @property
    def num_classes(self) -> int:
        return len(self.classes)


@dataclass
class _StoredData:
    info: _StoredInfo
    scaling: dict[str, Any] | None = None

    def __getattr__(self, name: str) -> Any:
        if name == "scaling_record" and self.scaling is not None:
            return lambda: self.scaling
        raise AttributeError(name)


@dataclass
class Restored:
    """A run read back from its folder, and what could not be restored (said in the re-rendered report)."""

    run: Run
    missing: list[str] = field(default_factory=list)


def load_run(folder: str | Path, policy: Any = None) -> Restored:
    """The run in ``folder`` (its ``result.json``, and ``checkpoints/`` when kept), judged against ``policy``
    when one is given, else carrying the verdict it was written with.

    Raises:
        ConfigError: ``folder`` holds no ``result.json`` (it is not a run folder), or the file is unreadable.
    """
    root = Path(folder)
    path = root / "result.json"
    if not path.is_file():
        raise ConfigError(f"{root} holds no result.json: give the folder an 'aisec assess' or 'aisec demo' run "
                          "wrote (its --out)")
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise ConfigError(f"{path} cannot be read as JSON: {exc}") from exc
    if not isinstance(doc, dict) or not isinstance(doc.get("checks"), dict):
        raise ConfigError(f"{path} is not an aisec result (no 'checks')")
    return _restore(doc, root, policy)


def _restore(doc: dict[str, Any], root: Path | None, policy: Any) -> Restored:
    missing: list[str] = []
    try:
        evidence = [Evidence.model_validate(e) for e in doc.get("evidence", [])]
    except ValidationError as exc:
        raise ConfigError(f"result.json of run {doc.get('run_id')}: an evidence record is invalid: "
                          f"{str(exc).splitlines()[0]}") from exc
    kept = _checkpointed(root) if root is not None else {}
    results: list[Result] = []
    for name, entry in doc["checks"].items():
        if name in kept:
            results.append(kept[name])
            continue
        results.append(_result(name, entry, evidence, missing))
        if name in _IMAGE_CHECKS:
            missing.append(f"{name}: example images (kept only in checkpoints/, which this folder lacks)")
    first = evidence[0].resource if evidence else None
    classes = _classes(results)
    target = _StoredTarget(_StoredSpec(name=str(doc.get("model") or (first.model_name if first else "?")),
                                       digest=first.model_sha256 if first else "",
                                       access=_Access(first.model_access if first else "white_box")))
    data = _StoredData(_StoredInfo(name=str(doc.get("dataset") or (first.dataset_name if first else "?")),
                                   digest=first.dataset_digest if first else "", classes=classes),
                       scaling=doc.get("input_scaling"))
    run = Run(run_id=str(doc.get("run_id", "")), plan=None, target=cast(Target, target), data=cast(Dataset, data),
              results=results, evidence=evidence, out=root, errors=list(doc.get("errors", [])),
              seconds=float(doc.get("seconds") or 0.0), notes=dict(doc.get("notes") or {}))
    if doc.get("residual_risk"):  # a threat-model run: its residual risk as written (the plan is not restored)
        from aisec.threats.residual import ResidualRisk

        run.residual = ResidualRisk.model_validate(doc["residual_risk"])
    for sub in doc.get("related", []):
        sub_root = _related_folder(root, doc.get("out"), sub.get("out"))
        restored = _restore(sub, sub_root, policy)
        run.related.append(restored.run)
        missing += [f"{restored.run.target.spec.name} {m}" for m in restored.missing]
    _judge(run, doc.get("verdict"), policy)
    return Restored(run=run, missing=missing)


def _judge(run: Run, stored: Any, policy: Any) -> None:
    from aisec.policy.rules import PolicyReport, evaluate_policy

    run.policy = policy
    if policy is not None:
        run.verdict = evaluate_policy(run.evidence, policy)
    elif stored is not None:
        try:
            run.verdict = PolicyReport.model_validate(stored)
        except ValidationError:  # written by an older aisec: judge the evidence by the default policy again
            run.verdict = evaluate_policy(run.evidence)
    run.judged = True


def _checkpointed(root: Path) -> dict[str, Result]:
    """The checks' results kept in ``root/checkpoints`` (typed summaries, tables, images); {} when unreadable."""
    from aisec.core.checkpoint import load_checkpoints

    try:
        return {c.result.check: c.result for c in load_checkpoints(root)}
    except DataError:
        return {}


def _result(name: str, entry: dict[str, Any], evidence: list[Evidence], missing: list[str]) -> Result:
    """A check's result from its ``result.json`` entry, its measurements from the run's evidence."""
    measurements = [Measurement(metric=e.metric, value=e.value, unit=e.unit, higher_is_better=e.higher_is_better,
                                interval=e.interval, sample_count=e.sample_count, parameters=e.parameters,
                                raw_key=None)
                    for e in evidence if e.check == name]
    raw = entry.get("summary") or {}
    summary = _summary(name, raw)
    if isinstance(summary, DictSummary) and name in SUMMARY_TYPES:
        missing.append(f"{name}: its summary does not match this aisec's {SUMMARY_TYPES[name].split(':')[1]} "
                       "(shown as a table of its measurements)")
    threats = tuple(dict.fromkeys(t for e in evidence if e.check == name for t in e.threats))
    return Result(check=name, measurements=measurements, params=dict(entry.get("params") or {}), summary=summary,
                  warnings=list(entry.get("warnings", [])), seconds=float(entry.get("seconds") or 0.0),
                  threats=threats)


def _summary(name: str, raw: dict[str, Any]) -> Summary:
    """``raw`` as the check's summary type; JSON's nulls for NaN are turned back into NaN where a float is due."""
    ref = SUMMARY_TYPES.get(name)
    if ref is None:
        return Summary.of(raw)
    if name == "robustness" and raw.get("modality") == "text":
        ref = "aisec.checks.robustness:TextRobustnessSummary"
    from aisec.core.checkpoint import summary_class

    cls = summary_class(ref)
    doc = json.loads(json.dumps(raw))
    for _ in range(10_000):  # each round fixes every null-for-NaN pydantic reports
        try:
            return cls.model_validate(doc)
        except ValidationError as exc:
            fixed = False
            for err in exc.errors():
                if err["type"] == "float_type" and err.get("input") is None:
                    fixed |= _set(doc, err["loc"], math.nan)
            if not fixed:
                break
    return Summary.of(raw)


def _set(doc: Any, loc: tuple[Any, ...], value: Any) -> bool:
    node = doc
    for key in loc[:-1]:
        try:
            node = node[key]
        except (KeyError, IndexError, TypeError):
            return False
    last = loc[-1]
    if isinstance(node, dict) and last in node and node[last] is None:
        node[last] = value
        return True
    if isinstance(node, list) and isinstance(last, int) and last < len(node) and node[last] is None:
        node[last] = value
        return True
    return False


def _classes(results: list[Result]) -> tuple[str, ...]:
    for r in results:
        classes = r.summary.get("classes")
        if classes:
            return tuple(str(c) for c in classes)
    return ()


def _related_folder(root: Path | None, out: Any, sub_out: Any) -> Path | None:
    """A related run's folder under ``root``, found from the two absolute paths the run was written with."""
    if root is None or not out or not sub_out:
        return None
    try:
        rel = Path(str(sub_out)).relative_to(Path(str(out)))
    except ValueError:
        return None
    folder = root / rel
    return folder if folder.is_dir() else None


def rerender(folder: str | Path, out: str | Path | None = None, *, policy: Any = None, force: bool = False) -> Path:
    """Write ``report.html``, ``report.md`` (and, with a policy, ``policy.json``) for the run in ``folder``.

    ``out`` defaults to ``folder/rerendered``; the run's own reports are replaced only when ``out`` is
    ``folder`` itself and ``force`` is given. Returns the folder written to.

    Raises:
        ConfigError: no ``result.json``, or ``out`` is the run's folder without ``force``.
    """
    from aisec.report.html import write_report
    from aisec.report.markdown import write_markdown

    root = Path(folder)
    restored = load_run(root, policy)
    target = Path(out) if out is not None else root / "rerendered"
    if target.resolve() == root.resolve() and not force:
        raise ConfigError(f"--out {target} is the run's own folder: its report.html would be replaced; add --force, "
                          "or leave --out out (default: RUN_DIR/rerendered)")
    target.mkdir(parents=True, exist_ok=True)
    run = restored.run
    banner = _banner(root, policy is not None, restored.missing)
    write_report(run, target / "report.html", banner=banner)
    write_markdown(run, target / "report.md", banner=banner)
    if policy is not None and run.verdict is not None:
        (target / "policy.json").write_text(json.dumps(run.verdict.model_dump(mode="json"), indent=2),
                                            encoding="utf-8")
    return target


def _banner(root: Path, judged: bool, missing: list[str]) -> str:
    from aisec.core.version import __version__

    when = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    verdict = "judged again against the policy given" if judged else "with the verdict it was written with"
    text = f"Re-rendered from {root / 'result.json'} on {when} by aisec {__version__}, {verdict}; nothing was re-run."
    if missing:
        text += " Not in this report (re-run the assessment to see them): " + "; ".join(missing) + "."
    return text
