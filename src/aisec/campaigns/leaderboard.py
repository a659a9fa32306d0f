"""The campaign leaderboard: one RobustBench-style table per dataset and threat model.

An *entry* is one model behind one defence on one dataset; its numbers come from the robustness records of
every job the campaign ran for it, read from the evidence store:

- **clean accuracy**: ``robustness.clean_accuracy`` (of the job that scored the most samples);
- **ensemble**: the robust accuracy under the AutoAttack-grade ensemble (``autoattack``) at the threat
  model's budget, where the campaign ran it;
- **best known**: the lowest robust accuracy any attack run reached at that budget (the per-sample worst
  case over attacks included) — the number the table is ranked by, highest first, since the strongest
  attack found so far is what bounds a model's robustness;
- **reliable**: every ``robustness.reliable`` record of the entry says yes (no masking flag fired);
- **SAFAIR delta**: clean minus robust accuracy, the largest over the attacks at that budget (the SAFAIR
  contest ranked defences by it);
- **certified**: a ``*certified_accuracy`` record at that budget, where a certifier ran;
- **time**: the seconds of the entry's jobs; each entry links to its jobs' reports.

Written as HTML, JSON, CSV, JUnit XML (one test case per entry: fails when unreliable, below
``--min-robust-accuracy`` or a job did not finish) and SARIF 2.1.0 (the same findings, for code-scanning UIs).
"""

from __future__ import annotations

import contextlib
import csv
import json
import math
from dataclasses import asdict, dataclass, field
from html import escape
from pathlib import Path
from typing import Any
from xml.etree import ElementTree as ET

from aisec.campaigns.campaign import MANIFEST, campaign_out
from aisec.campaigns.contest import read_contest_results
from aisec.campaigns.spec import Campaign, ThreatModel
from aisec.core.errors import DataError
from aisec.core.evidence import Evidence
from aisec.core.types import REFERENCE_EPS

ENSEMBLE_ATTACKS = ("autoattack",)


@dataclass
class Row:
    rank: int
    model: str
    defence: str | None
    clean_accuracy: float | None
    ensemble_robust_accuracy: float | None
    best_known_robust_accuracy: float
    best_attack: str
    reliable: bool | None
    flags: list[str]
    safair_delta: float | None
    certified_accuracy: float | None
    seconds: float
    samples: int
    jobs: list[str]
    reports: list[str]
    unfinished: list[str] = field(default_factory=list)

    @property
    def name(self) -> str:
        return f"{self.model}+{self.defence}" if self.defence else self.model


@dataclass
class Table:
    dataset: str
    norm: str
    eps: float
    rows: list[Row]

    @property
    def threat(self) -> str:
        return f"{self.norm} eps={self.eps:.4g}" + (f" ({self.eps * 255:.3g}/255)" if self.norm == "linf" else "")


@dataclass
class Leaderboard:
    name: str
    folder: Path
    tables: list[Table]
    unfinished: list[dict[str, Any]]
    contest: bool = False
    #: a contest block's results per model (:mod:`aisec.campaigns.contest`): hidden split digest, ranked rows
    submissions: dict[str, dict[str, Any]] = field(default_factory=dict)

    @property
    def ranked_by(self) -> str:
        return "safair_delta" if self.contest else "best_known_robust_accuracy"

    def to_json(self) -> dict[str, Any]:
        return {"campaign": self.name, "ranked_by": self.ranked_by, "contest": self.contest,
                "tables": [{"dataset": t.dataset, "norm": t.norm, "eps": t.eps,
                            "rows": [{**asdict(r), "name": r.name} for r in t.rows]} for t in self.tables],
                "unfinished": self.unfinished, **({"submissions": self.submissions} if self.submissions else {})}


def _manifest(source: str | Path) -> tuple[Path, dict[str, Any]]:
    p = Path(source)
    folder = p if p.is_dir() else campaign_out(Campaign.from_yaml(p), p.parent)
    path = folder / MANIFEST
    if not path.is_file():
        raise DataError(f"{folder} holds no {MANIFEST}: run 'aisec campaign run' first")
    try:
        return folder, json.loads(path.read_text(encoding="utf-8"))
    except ValueError as exc:
        raise DataError(f"{path} is not readable JSON: {exc}") from exc


def build_leaderboard(source: str | Path, *, store: str | None = None,
                      key_dir: str | Path | None = None) -> Leaderboard:
    """The leaderboard of the campaign whose file or folder is ``source``, from its store."""
    from aisec.store import EvidenceNotFound, open_store

    folder, manifest = _manifest(source)
    spec = Campaign.model_validate(manifest["campaign"])
    entries: dict[tuple[str, str, str | None], list[dict[str, Any]]] = {}
    records: dict[str, list[Evidence]] = {}
    unfinished: list[dict[str, Any]] = []
    with open_store(store or manifest["store"], key_dir=key_dir, create=False) as s:
        for job in manifest["jobs"]:
            try:
                info = s.run(job["job_id"])
                status = info.status
            except EvidenceNotFound:
                status, info = "not run", None
            job = {**job, "status": status, "error": info.error if info is not None else None}
            if status != "complete":
                unfinished.append({k: job[k] for k in ("job_id", "model", "defence", "dataset", "check", "status",
                                                       "error")})
            entries.setdefault((job["dataset"], job["model"], job["defence"]), []).append(job)
            records[job["job_id"]] = [x.evidence for x in s.query(run_id=job["job_id"])] if status == "complete" \
                else []
    threats = spec.threat_models or [ThreatModel(norm=n, eps=e) for n, e in REFERENCE_EPS.items()]
    tables = []
    for dataset in dict.fromkeys(k[0] for k in entries):
        for tm in threats:
            rows = [r for (d, m, dfn), jobs in entries.items() if d == dataset
                    if (r := _row(m, dfn, jobs, records, tm, folder)) is not None]
            if spec.contest:  # SAFAIR: the smallest drop from clean to robust accuracy wins
                rows.sort(key=lambda r: (r.safair_delta if r.safair_delta is not None else math.inf,
                                         -r.best_known_robust_accuracy, r.name))
            else:
                rows.sort(key=lambda r: (-r.best_known_robust_accuracy, -(r.clean_accuracy or 0.0), r.name))
            for i, r in enumerate(rows):
                r.rank = i + 1
            if rows:
                tables.append(Table(dataset=dataset, norm=tm.norm, eps=tm.eps, rows=rows))
    return Leaderboard(name=manifest["name"], folder=folder, tables=tables, unfinished=unfinished,
                       contest=bool(spec.contest), submissions=read_contest_results(folder))


def _at(e: Evidence, tm: ThreatModel) -> bool:
    eps = e.parameters.get("eps", e.parameters.get("radius"))
    return (isinstance(eps, (int, float)) and math.isclose(float(eps), tm.eps, rel_tol=1e-3)
            and e.parameters.get("norm", tm.norm) == tm.norm)


def _row(model: str, defence: str | None, jobs: list[dict[str, Any]], records: dict[str, list[Evidence]],
         tm: ThreatModel, folder: Path) -> Row | None:
    recs = [e for j in jobs for e in records[j["job_id"]] if e.check == "robustness"]
    robust = [e for e in recs if e.metric in ("robustness.robust_accuracy", "robustness.worst_case_robust_accuracy")
              and _at(e, tm) and not e.parameters.get("targeted")]
    if not robust:
        return None
    best = min(robust, key=lambda e: e.value)
    ensemble = [e.value for e in robust if e.parameters.get("attack") in ENSEMBLE_ATTACKS]
    clean = [e for e in recs if e.metric == "robustness.clean_accuracy"]
    reliable = [e for e in recs if e.metric == "robustness.reliable"]
    deltas = [e.value for e in recs if e.metric == "robustness.safair_delta" and _at(e, tm)]
    certified = [e.value for j in jobs for e in records[j["job_id"]] if e.metric.endswith("certified_accuracy")
                 and _at(e, tm)]
    flags = sorted({f for e in reliable for f in e.parameters.get("flags", [])})
    seconds = 0.0
    reports = []
    for j in jobs:
        res = folder / j["folder"] / "result.json"
        if res.is_file():
            with contextlib.suppress(ValueError, OSError):
                seconds += float(json.loads(res.read_text(encoding="utf-8")).get("seconds") or 0.0)
        if (folder / j["folder"] / "report.html").is_file():
            reports.append(f"{j['folder']}/report.html")
    attack = best.parameters.get("attack") or "worst case over " + ", ".join(best.parameters.get("attacks", []))
    return Row(
        rank=0, model=model, defence=defence,
        clean_accuracy=max(clean, key=lambda e: e.sample_count).value if clean else None,
        ensemble_robust_accuracy=min(ensemble) if ensemble else None,
        best_known_robust_accuracy=best.value, best_attack=str(attack),
        reliable=all(e.value == 1.0 for e in reliable) if reliable else None, flags=flags,
        safair_delta=max(deltas) if deltas else None, certified_accuracy=max(certified) if certified else None,
        seconds=round(seconds, 3), samples=best.sample_count, jobs=[j["job_id"] for j in jobs], reports=reports,
        unfinished=[j["job_id"] for j in jobs if j["status"] != "complete"])


COLUMNS = ("rank", "model", "defence", "clean_accuracy", "ensemble_robust_accuracy", "best_known_robust_accuracy",
           "best_attack", "reliable", "safair_delta", "certified_accuracy", "seconds", "samples")


def write_leaderboard(board: Leaderboard, out: str | Path | None = None, *,
                      min_robust_accuracy: float | None = None) -> list[Path]:
    """Write ``leaderboard.{html,json,csv}``, ``leaderboard.junit.xml`` and ``leaderboard.sarif`` into ``out``."""
    folder = Path(out) if out is not None else board.folder
    folder.mkdir(parents=True, exist_ok=True)
    paths = {ext: folder / f"leaderboard.{ext}" for ext in ("html", "json", "csv", "junit.xml", "sarif")}
    rel = _relative(board.folder, folder)
    paths["json"].write_text(json.dumps(board.to_json(), indent=2), encoding="utf-8")
    with paths["csv"].open("w", newline="", encoding="utf-8") as fh:
        w = csv.writer(fh)
        w.writerow(["dataset", "norm", "eps", *COLUMNS])
        for t in board.tables:
            for r in t.rows:
                w.writerow([t.dataset, t.norm, f"{t.eps:.6g}", *(_cell(getattr(r, c)) for c in COLUMNS)])
    paths["html"].write_text(_html(board, rel), encoding="utf-8")
    findings = _findings(board, min_robust_accuracy)
    paths["junit.xml"].write_bytes(_junit(board, findings))
    paths["sarif"].write_text(json.dumps(_sarif(board, findings, rel), indent=2), encoding="utf-8")
    return list(paths.values())


def _relative(target: Path, start: Path) -> str:
    """``target`` relative to ``start`` for links (``.`` when the same folder)."""
    import os

    return os.path.relpath(target.resolve(), start.resolve()).replace(os.sep, "/")


def _cell(v: Any) -> Any:
    if v is None:
        return ""
    if isinstance(v, bool):
        return "yes" if v else "no"
    if isinstance(v, float):
        return f"{v:.6g}"
    return v


def _pct(v: float | None) -> str:
    return "–" if v is None else f"{100 * v:.1f}%"


def _html(board: Leaderboard, rel: str) -> str:
    parts = [f"<!doctype html><html><head><meta charset='utf-8'><title>aisec leaderboard: {escape(board.name)}"
             "</title><style>body{font-family:sans-serif;margin:2em}table{border-collapse:collapse;margin-bottom:2em}"
             "td,th{border:1px solid #ccc;padding:4px 8px;text-align:right}td.l,th.l{text-align:left}"
             ".no{color:#c0392b}.yes{color:#1e8449}</style></head><body>",
             f"<h1>Leaderboard: {escape(board.name)}</h1><p>Ranked by "
             + ("the SAFAIR delta, smallest first (contest rules: Linf 8/255, 8-bit adversarials, time limits). "
                if board.contest else "the best known robust accuracy (the lowest any attack reached). ")
             + "Ensemble: AutoAttack where it ran. SAFAIR delta: clean minus robust accuracy, "
             "largest over the attacks.</p>"]
    for t in board.tables:
        parts.append(f"<h2>{escape(t.dataset)}, {escape(t.threat)}</h2><table><tr><th>rank</th><th class=l>model"
                     "</th><th class=l>defence</th><th>clean</th><th>ensemble</th><th>best known</th><th class=l>"
                     "by</th><th>reliable</th><th>SAFAIR delta</th><th>certified</th><th>time (s)</th><th class=l>"
                     "reports</th></tr>")
        for r in t.rows:
            rel_flag = "–" if r.reliable is None else (
                "<span class=yes>yes</span>" if r.reliable
                else f"<span class=no>no</span> {escape(', '.join(r.flags))}")
            links = " ".join(f"<a href='{escape(rel + '/' + p if rel != '.' else p)}'>{i + 1}</a>"
                             for i, p in enumerate(r.reports))
            parts.append(f"<tr><td>{r.rank}</td><td class=l>{escape(r.model)}</td><td class=l>"
                         f"{escape(r.defence or '–')}</td><td>{_pct(r.clean_accuracy)}</td><td>"
                         f"{_pct(r.ensemble_robust_accuracy)}</td><td><b>{_pct(r.best_known_robust_accuracy)}</b></td>"
                         f"<td class=l>{escape(r.best_attack)}</td><td>{rel_flag}</td><td>{_pct(r.safair_delta)}</td>"
                         f"<td>{_pct(r.certified_accuracy)}</td><td>{r.seconds:.1f}</td><td class=l>{links}</td></tr>")
        parts.append("</table>")
    for model, res in board.submissions.items():
        parts.append(_submissions_html(model, res))
    if board.unfinished:
        parts.append("<h2>Jobs not finished</h2><ul>" + "".join(
            f"<li>{escape(u['model'])}{'+' + escape(u['defence']) if u['defence'] else ''} / {escape(u['check'])}: "
            f"{escape(u['status'])} {escape(u['error'] or '')}</li>" for u in board.unfinished) + "</ul>")
    parts.append("</body></html>")
    return "".join(parts)


def _submissions_html(model: str, res: dict[str, Any]) -> str:
    """One contest block's table: each defence submission against every attack submission and the ensemble."""
    attacks = [str(a) for a in res.get("attacks", [])]
    head = "".join(f"<th>{escape(a)}</th>" for a in attacks)
    out = [f"<h2>Contest submissions on {escape(model)}: {escape(str(res.get('dataset')))} hidden split</h2>"
           f"<p>{int(res.get('hidden_samples', 0))} hidden samples, sha256 <code>"
           f"{escape(str(res.get('hidden_digest')))}</code>; Linf 8/255, 8-bit adversarials; ranked by SAFAIR "
           "delta.</p><table><tr><th>rank</th><th class=l>defence</th><th>clean</th>" + head
           + "<th>ensemble</th><th>SAFAIR delta</th><th>time (s)</th><th class=l>over time</th></tr>"]
    for r in res.get("rows", []):
        cells = "".join(f"<td>{_pct(r['robust_accuracy'].get(a))}</td>" for a in attacks)
        out.append(f"<tr><td>{r['rank']}</td><td class=l>{escape(str(r['defence']))}</td>"
                   f"<td>{_pct(r['clean_accuracy'])}</td>{cells}<td><b>{_pct(r['ensemble_robust_accuracy'])}</b></td>"
                   f"<td>{_pct(r['safair_delta'])}</td><td>{r['seconds']:.1f}</td>"
                   f"<td class=l>{'yes' if r['over_time'] else 'no'}</td></tr>")
    out.append("</table>")
    return "".join(out)


@dataclass(frozen=True)
class Finding:
    rule: str
    table: Table
    row: Row
    message: str


RULES = {
    "unreliable-robustness": "The robustness numbers of this entry carry a reliability flag (possible masking).",
    "below-robust-accuracy": "The best known robust accuracy is below the required minimum.",
    "job-not-finished": "A job of this entry did not finish (failed, over its time limit or not run).",
}


def _findings(board: Leaderboard, minimum: float | None) -> list[Finding]:
    out = []
    for t in board.tables:
        for r in t.rows:
            if r.reliable is False:
                out.append(Finding("unreliable-robustness", t, r, f"{r.name} on {t.dataset} ({t.threat}): flags "
                                   f"{', '.join(r.flags) or 'unnamed'}"))
            if minimum is not None and r.best_known_robust_accuracy < minimum:
                out.append(Finding("below-robust-accuracy", t, r, f"{r.name} on {t.dataset} ({t.threat}): best "
                                   f"known robust accuracy {_pct(r.best_known_robust_accuracy)} < {_pct(minimum)} "
                                   f"({r.best_attack})"))
            if r.unfinished:
                out.append(Finding("job-not-finished", t, r, f"{r.name} on {t.dataset}: jobs "
                                   f"{', '.join(r.unfinished)} did not finish"))
    return out


def _junit(board: Leaderboard, findings: list[Finding]) -> bytes:
    suites = ET.Element("testsuites", name=f"aisec campaign {board.name}")
    for t in board.tables:
        mine = [f for f in findings if f.table is t]
        failed = {id(f.row) for f in mine}
        suite = ET.SubElement(suites, "testsuite", name=f"{t.dataset} {t.threat}", tests=str(len(t.rows)),
                              failures=str(len(failed)), errors="0")
        for r in t.rows:
            case = ET.SubElement(suite, "testcase", classname=f"{board.name}.{t.dataset}", name=r.name,
                                 time=f"{r.seconds:.3f}")
            for f in (f for f in mine if f.row is r):
                ET.SubElement(case, "failure", type=f.rule, message=f.message).text = RULES[f.rule]
            ET.SubElement(case, "system-out").text = (
                f"rank {r.rank}; clean {_pct(r.clean_accuracy)}; best known {_pct(r.best_known_robust_accuracy)} "
                f"({r.best_attack}); ensemble {_pct(r.ensemble_robust_accuracy)}")
    body: bytes = ET.tostring(suites, encoding="utf-8", xml_declaration=False)
    return b'<?xml version="1.0" encoding="UTF-8"?>\n' + body


def _sarif(board: Leaderboard, findings: list[Finding], rel: str) -> dict[str, Any]:
    from aisec.core.version import __version__

    level = {"unreliable-robustness": "warning", "below-robust-accuracy": "error", "job-not-finished": "error"}
    results = []
    for f in findings:
        uri = f.row.reports[0] if f.row.reports else "campaign.json"
        results.append({
            "ruleId": f.rule, "level": level[f.rule], "message": {"text": f.message},
            "locations": [{"physicalLocation": {"artifactLocation": {
                "uri": uri if rel == "." else f"{rel}/{uri}"}}}],
            "properties": {"dataset": f.table.dataset, "norm": f.table.norm, "eps": f.table.eps, "rank": f.row.rank,
                           "best_known_robust_accuracy": f.row.best_known_robust_accuracy},
        })
    return {
        "$schema": "https://json.schemastore.org/sarif-2.1.0.json", "version": "2.1.0",
        "runs": [{"tool": {"driver": {"name": "aisec", "version": __version__, "rules": [
            {"id": k, "shortDescription": {"text": v}} for k, v in RULES.items()]}}, "results": results}],
    }
