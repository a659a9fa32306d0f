"""Model-file scan: does the model file run code when it is loaded? (supply chain, ATLAS AML.T0011.000)

Scans the file or folder a model came from (:func:`aisec.targets.file_scan.scan_model_path`: pickles
disassembled and walked by a restricted unpickler that runs nothing, plus fickling's verdict; Hugging
Face remote code; ONNX external data; safetensors headers) **without loading it**, and records the
findings as evidence: ``model_scan.findings`` per severity and ``model_scan.unsafe_findings`` (high
or critical), read by the property ``modelFileVulnerabilities``; a policy gates it with
``{metric: modelFileVulnerabilities, operator: "<=", target: 0}`` (not a default: the defaults are Clouditor's).

The scan needs the path, not a loaded model: ``aisec model-scan PATH`` runs it alone (before anyone
loads the file), ``aisec assess --checks model-scan`` scans the plan's model file, and a plan or a
Python call may name ``path`` explicitly. Per-file findings go to ``samples/model-scan-findings.csv``.
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from aisec.core.check import ConsoleLine, Result, Summary
from aisec.core.dataset import Dataset
from aisec.core.errors import ConfigError
from aisec.core.evidence import Measurement
from aisec.core.progress import Progress, no_progress
from aisec.core.registry import register_check
from aisec.core.target import Target
from aisec.targets.file_scan import SEVERITIES, ScanReport, Severity, scan_model_path

ATLAS_SUPPLY_CHAIN = ("AML.T0011.000", "AML.T0010.003")


class FindingSummary(Summary):
    """One finding, as the report and ``result.json`` show it."""

    severity: str
    kind: str
    file: str
    summary: str
    detail: str = ""


class ModelScanSummary(Summary):
    """What the model-file scan found: files read, findings by severity, the worst one."""

    path: str
    files: list[str]
    max_severity: str | None
    counts: dict[str, int]
    unsafe: int
    fail_at: str
    scanner: str
    scanner_version: str
    findings: list[FindingSummary]

    def console_lines(self, result: Result, *, model: str, dataset: str) -> list[ConsoleLine]:
        """One line for the file, one per finding at ``fail_at`` or worse."""
        worst = self.max_severity or "nothing found"
        lines: list[ConsoleLine] = [f"model-scan {self.path}: {len(self.files)} file(s), worst finding: {worst}, "
                                    f"{self.unsafe} at {self.fail_at} or worse"]
        floor = SEVERITIES.index(self.fail_at)
        lines += [f"  {f.severity}: {f.file}: {f.summary}" for f in self.findings
                  if SEVERITIES.index(f.severity) >= floor]
        return lines


class ModelScanParams(BaseModel):
    """Options of the model-scan check."""

    model_config = ConfigDict(extra="forbid")

    path: str | None = Field(default=None, description="Model file or folder to scan (default: the plan's model).")
    fail_at: Severity = Field(default="high", description="Findings at this severity or worse count as unsafe.")


@register_check("model-scan")
class ModelScanCheck:
    """Model-file scan: code a model file would run when loaded (pickle globals, remote code), by severity."""

    Params = ModelScanParams

    def run(self, target: Target | None, data: Dataset | None, params: ModelScanParams, *,
            progress: Progress = no_progress) -> Result:
        if params.path is None:
            raise ConfigError("the model-scan check needs the model's path: give checks.model-scan.path, or run it "
                              "through 'aisec assess' / 'aisec model-scan PATH', which pass the model file")
        t0 = time.perf_counter()
        progress("model-scan", 0, 1)
        report = scan_model_path(Path(params.path))
        progress("model-scan", 1, 1)
        return scan_result(report, params, seconds=time.perf_counter() - t0)


def scan_result(report: ScanReport, params: ModelScanParams, *, seconds: float = 0.0) -> Result:
    """The check's :class:`Result` for a finished scan (also used by ``aisec model-scan`` without a model)."""
    counts: dict[str, int] = {s: sum(1 for f in report.findings if f.severity == s) for s in SEVERITIES}
    unsafe = report.count(params.fail_at)
    n = max(1, len(report.files))
    common = {"path": report.path, "scanner": report.scanner, "scanner_version": report.scanner_version}
    measurements = [
        Measurement(metric="model_scan.unsafe_findings", value=float(unsafe), unit="count", higher_is_better=False,
                    sample_count=n, parameters={**common, "fail_at": params.fail_at}, raw_key="findings"),
        *(Measurement(metric="model_scan.findings", value=float(c), unit="count", higher_is_better=False,
                      sample_count=n, parameters={**common, "severity": s}) for s, c in counts.items()),
    ]
    table = {
        "file": np.array([f.file for f in report.findings], dtype=object),
        "severity": np.array([f.severity for f in report.findings], dtype=object),
        "kind": np.array([f.kind for f in report.findings], dtype=object),
        "summary": np.array([f.summary for f in report.findings], dtype=object),
        "detail": np.array([f.detail for f in report.findings], dtype=object),
    }
    warnings = [f"model file {f.file}: {f.summary}" for f in report.findings
                if SEVERITIES.index(f.severity) >= SEVERITIES.index(params.fail_at)]
    summary = ModelScanSummary(
        path=report.path, files=report.files, max_severity=report.max_severity, counts=counts, unsafe=unsafe,
        fail_at=params.fail_at, scanner=report.scanner, scanner_version=report.scanner_version,
        findings=[FindingSummary(severity=f.severity, kind=f.kind, file=f.file, summary=f.summary, detail=f.detail)
                  for f in report.findings],
    )
    return Result(check="model-scan", measurements=measurements, params=params.model_dump(), summary=summary,
                  tables={"findings": table} if report.findings else {}, warnings=warnings, seconds=seconds,
                  threats=ATLAS_SUPPLY_CHAIN)
