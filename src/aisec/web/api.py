"""The public JSON API under ``/api/v1`` (the browser pages and :mod:`aisec.web.client` use only this)."""

from __future__ import annotations

import asyncio
import json
import re
import shlex
import shutil
import tempfile
import time
import types
import uuid
from collections import defaultdict, deque
from pathlib import Path
from typing import Any, Literal

from fastapi import APIRouter, File, Form, HTTPException, Query, Request, UploadFile
from fastapi.responses import FileResponse, HTMLResponse, JSONResponse
from pydantic import BaseModel, Field, ValidationError
from sse_starlette.sse import EventSourceResponse
from starlette.background import BackgroundTask

from aisec.core.errors import AisecError
from aisec.core.plan import Plan
from aisec.web.runs import RunManager, RunNotFound
from aisec.web.settings import PICKLE_SUFFIXES, ServeSettings
from aisec.web.worker import OUT, PLAN_FILE, TERMINAL

TASKS: dict[str, dict[str, list[str]]] = {
    "image": {"datasets": ["digits", "mnist", "fashion-mnist"], "models": ["digits-cnn", "lenet5-mnist",
                                                                           "lenet5-mnist-adv"]},
    "tabular": {"datasets": ["breast-cancer"], "models": []},
    "text": {"datasets": [], "models": []},
}
_SAFE_NAME = re.compile(r"[^A-Za-z0-9._-]+")
REPORT_CSP = "default-src 'none'; img-src 'self' data:; style-src 'unsafe-inline'; frame-ancestors 'self'"


def _robustness() -> dict[str, dict[str, Any]]:
    return {"robustness": {}}


class PlanRequest(BaseModel):
    """An assessment as the form gives it, or a whole plan YAML."""

    task: Literal["image", "text", "tabular"] = "image"
    dataset: str | None = Field(default=None, max_length=300)
    split: str | None = Field(default=None, max_length=20)
    model: str | None = Field(default=None, max_length=300)
    checks: dict[str, dict[str, Any]] = Field(default_factory=_robustness)
    seed: int = Field(default=0, ge=0, le=2**31 - 1)
    plan_yaml: str | None = Field(default=None, max_length=200_000)


class Preview(BaseModel):
    plan_yaml: str
    command: str


class RunCreated(BaseModel):
    run_id: str
    status: str


class RunSummary(BaseModel):
    id: str
    created: float | None = None
    status: str
    model: str
    dataset: str
    checks: list[str]
    verdict: bool | None = None
    rerun_of: str | None = None


class RunDetail(RunSummary):
    progress: dict[str, dict[str, Any]] = Field(default_factory=dict)
    log_tail: list[dict[str, Any]] = Field(default_factory=list)
    error: str | None = None
    summary: dict[str, Any] | None = None
    policy: dict[str, Any] | None = None
    links: dict[str, str] = Field(default_factory=dict)


class Upload(BaseModel):
    upload_id: str
    name: str
    size: int
    kind: str


class CheckParam(BaseModel):
    name: str
    type: str
    default: Any = None
    help: str = ""


class CheckEntry(BaseModel):
    name: str
    summary: str
    params: list[CheckParam]


class Catalogue(BaseModel):
    tasks: dict[str, dict[str, list[str]]]
    checks: list[CheckEntry]


class EvidenceItem(BaseModel):
    id: str
    run_id: str
    check: str | None = None
    metric: str
    value: Any = None
    stored_at: str


class VerifyResult(BaseModel):
    ok: bool
    text: str


class Health(BaseModel):
    status: str
    runs: int


def _one_line(exc: Exception) -> str:
    return " ".join(str(exc).split())[:500]


def _kind(annotation: Any) -> str:
    """A form field's kind for an annotation: list, dict, bool, int, float, str or object (a nested block)."""
    import typing

    args = [a for a in typing.get_args(annotation) if a is not type(None)]
    origin = typing.get_origin(annotation)
    if origin in (typing.Union, types.UnionType) and len(args) == 1:
        return _kind(args[0])
    if origin is typing.Annotated:
        return _kind(args[0])
    if origin is list or annotation is list:
        return "list"
    if origin is dict or annotation is dict:
        return "dict"
    if isinstance(annotation, type):
        if issubclass(annotation, BaseModel):
            return "object"
        for kind, cls in (("bool", bool), ("int", int), ("float", float)):
            if issubclass(annotation, cls):
                return kind
    return "str"


def _catalogue() -> Catalogue:
    from aisec.core.registry import CHECKS, load_plugins

    load_plugins()
    checks = []
    for name, info in CHECKS.items():
        params_model = getattr(info.cls, "Params", None)
        params = []
        if params_model is not None:
            for pname, field in params_model.model_fields.items():
                default = field.get_default(call_default_factory=True) if not field.is_required() else None
                if isinstance(default, BaseModel):
                    default = default.model_dump(mode="json")
                try:
                    json.dumps(default)
                except TypeError:
                    default = str(default)
                params.append(CheckParam(name=pname, type=_kind(field.annotation), default=default,
                                         help=field.description or ""))
        checks.append(CheckEntry(name=name, summary=info.summary or "", params=params))
    return Catalogue(tasks=TASKS, checks=checks)


def _dataset_options(name: str) -> list[str]:
    from aisec.data.loading import BUILTIN_NAMES

    return list(BUILTIN_NAMES)


class WebApi:
    """The routes, bound to one server's settings and run manager."""

    def __init__(self, settings: ServeSettings, manager: RunManager) -> None:
        self.settings = settings
        self.manager = manager
        self.hits: dict[str, deque[float]] = defaultdict(deque)

    # -- plans ---------------------------------------------------------------------------------

    def resolve(self, ref: str, what: str) -> str:
        """A built-in name, or ``upload:<id>`` as the uploaded file's path; anything else is refused."""
        from aisec.data.loading import BUILTIN_NAMES
        from aisec.models.builtin import BUILTIN_MODELS

        builtins = set(BUILTIN_MODELS) if what == "model" else set(BUILTIN_NAMES)
        if ref in builtins:
            return ref
        if ref.startswith("upload:"):
            uid = ref.removeprefix("upload:")
            try:
                uuid.UUID(uid)
            except ValueError:
                raise HTTPException(422, f"{what} {ref}: not an upload id (POST /api/v1/uploads gives one)") from None
            files = list((self.settings.uploads_dir / uid).glob("*"))
            if not files:
                raise HTTPException(422, f"{what} {ref}: no such upload on this server")
            return str(files[0])
        if self.settings.allow_outside_paths:
            return ref
        raise HTTPException(422, f"{what} '{ref}': give a built-in ({', '.join(sorted(builtins))}) or "
                            "'upload:<id>' from POST /api/v1/uploads; server paths are not accepted")

    def plan(self, body: PlanRequest) -> Plan:
        if body.plan_yaml is not None:
            import yaml

            try:
                raw = yaml.safe_load(body.plan_yaml)
            except yaml.YAMLError as exc:
                raise HTTPException(422, f"plan_yaml is not YAML: {_one_line(exc)}") from None
            if not isinstance(raw, dict):
                raise HTTPException(422, "plan_yaml must be a mapping with model, data and checks")
            model = raw.get("model")
            data = raw.get("data")
            mpath = model.get("path") if isinstance(model, dict) else model
            dsrc = data.get("source") if isinstance(data, dict) else data
            if not isinstance(mpath, str) or not isinstance(dsrc, str):
                raise HTTPException(422, "plan_yaml needs model.path and data.source")
            uploads = str(self.settings.uploads_dir)
            if not mpath.startswith(uploads):
                self.resolve(mpath, "model")
            if not dsrc.startswith(uploads):
                self.resolve(dsrc, "dataset")
        else:
            if not body.model or not body.dataset:
                raise HTTPException(422, "give model and dataset (or plan_yaml)")
            options: dict[str, Any] = {"split": body.split} if body.split else {}
            source = {"source": self.resolve(body.dataset, "dataset"), "options": options}
            raw = {"model": {"path": self.resolve(body.model, "model")}, "data": source,
                   "checks": body.checks, "seed": body.seed}
        model_raw = raw["model"] if isinstance(raw["model"], dict) else {"path": raw["model"]}
        raw["model"] = {**model_raw, "trust_model_code": self.settings.trust_model_code}
        try:
            plan = Plan.model_validate(raw)
            from aisec.core.registry import get_check

            for name, params in plan.checks.items():
                get_check(name).cls.Params.model_validate(params)
        except ValidationError as exc:
            from aisec.core.safety import validation_lines

            raise HTTPException(422, "invalid plan: " + "; ".join(validation_lines(exc, limit=3))) from None
        except AisecError as exc:
            raise HTTPException(422, _one_line(exc)) from None
        return plan

    def preview(self, body: PlanRequest) -> Preview:
        plan = self.plan(body)
        if any(plan.checks.values()) or plan.model.trust_model_code:
            command = "aisec assess --plan plan.yaml -o aisec-report"
        else:
            parts = ["aisec", "assess", "-m", str(plan.model.path), "-d", str(plan.data.source)]
            if plan.data.options.get("split"):
                parts += ["--split", str(plan.data.options["split"])]
            parts += ["-t", ",".join(plan.checks), "--seed", str(plan.seed)]
            command = shlex.join(parts)
        return Preview(plan_yaml=plan.to_yaml(), command=command)

    def rate_limit(self, request: Request) -> None:
        client = request.client.host if request.client else "?"
        now = time.monotonic()
        hits = self.hits[client]
        while hits and now - hits[0] > 60:
            hits.popleft()
        if len(hits) >= self.settings.runs_per_minute:
            retry = int(60 - (now - hits[0])) + 1
            raise HTTPException(429, f"more than {self.settings.runs_per_minute} runs a minute; retry later",
                                headers={"Retry-After": str(retry)})
        hits.append(now)

    # -- runs ----------------------------------------------------------------------------------

    def summary(self, run_id: str) -> RunSummary:
        d = self.manager.folder(run_id)
        st = self.manager.state(run_id)
        plan = Plan.from_yaml(d / PLAN_FILE)
        return RunSummary(id=run_id, created=st.get("created"), status=st.get("status", "unknown"),
                          model=str(plan.model.path), dataset=str(plan.data.source), checks=list(plan.checks),
                          verdict=st.get("passed"), rerun_of=st.get("rerun_of"))

    def detail(self, run_id: str) -> RunDetail:
        base = self.summary(run_id)
        st = self.manager.state(run_id)
        events = self.manager.progress(run_id)
        per_task: dict[str, dict[str, Any]] = {}
        for e in events:
            per_task[e["task"]] = {"done": e["done"], "total": e["total"], "time": e["time"]}
        result = self.manager.folder(run_id) / OUT / "result.json"
        summary = json.loads(result.read_text(encoding="utf-8")) if result.is_file() else None
        links = {k: f"/api/v1/runs/{run_id}/{k}" for k in ("events", "report", "result", "bundle")}
        return RunDetail(**base.model_dump(), progress=per_task, log_tail=events[-20:], error=st.get("error"),
                         summary=summary, policy=st.get("verdict"), links=links)

    def artifact(self, run_id: str, path: str) -> Path:
        root = (self.manager.folder(run_id) / OUT).resolve()
        target = (root / path).resolve()
        if not target.is_relative_to(root) or not target.is_file():
            raise HTTPException(404, f"no file '{path}' in run {run_id}")
        return target


def build_router(settings: ServeSettings, manager: RunManager) -> APIRouter:
    """The ``/api/v1`` router of one server."""
    api = WebApi(settings, manager)
    r = APIRouter(prefix="/api/v1")

    def found(run_id: str) -> None:
        try:
            manager.folder(run_id)
        except RunNotFound as exc:
            raise HTTPException(404, str(exc)) from None

    @r.get("/health", response_model=Health)
    def health() -> Health:
        return Health(status="ok", runs=len(manager.ids()))

    @r.get("/catalogue", response_model=Catalogue)
    def catalogue() -> Catalogue:
        return _catalogue()

    @r.post("/plans/preview", response_model=Preview)
    def preview(body: PlanRequest) -> Preview:
        return api.preview(body)

    @r.post("/runs", response_model=RunCreated, status_code=202)
    def create_run(body: PlanRequest, request: Request) -> RunCreated:
        plan = api.plan(body)
        api.rate_limit(request)
        return RunCreated(run_id=manager.submit(plan), status="queued")

    @r.get("/runs", response_model=list[RunSummary])
    def runs() -> list[RunSummary]:
        return [api.summary(i) for i in reversed(manager.ids())]

    @r.get("/runs/{run_id}", response_model=RunDetail)
    def run(run_id: str) -> RunDetail:
        found(run_id)
        return api.detail(run_id)

    @r.post("/runs/{run_id}/cancel", response_model=RunSummary)
    def cancel(run_id: str) -> RunSummary:
        found(run_id)
        manager.cancel(run_id)
        return api.summary(run_id)

    @r.post("/runs/{run_id}/rerun", response_model=RunCreated, status_code=202)
    def rerun(run_id: str, request: Request) -> RunCreated:
        found(run_id)
        api.rate_limit(request)
        return RunCreated(run_id=manager.rerun(run_id), status="queued")

    @r.get("/runs/{run_id}/events")
    async def events(run_id: str) -> EventSourceResponse:
        found(run_id)

        async def stream() -> Any:
            sent = 0
            while True:
                evs = manager.progress(run_id)
                for e in evs[sent:]:
                    yield {"event": "progress", "data": json.dumps(e)}
                sent = len(evs)
                status = manager.state(run_id).get("status")
                if status in TERMINAL:
                    yield {"event": "status", "data": json.dumps({"status": status})}
                    yield {"event": "done", "data": json.dumps({"status": status})}
                    return
                await asyncio.sleep(0.25)

        return EventSourceResponse(stream())

    @r.get("/runs/{run_id}/report", response_class=HTMLResponse)
    def report(run_id: str) -> FileResponse:
        found(run_id)
        path = api.artifact(run_id, "report.html")
        return FileResponse(path, media_type="text/html", headers={"Content-Security-Policy": REPORT_CSP})

    @r.get("/runs/{run_id}/result")
    def result(run_id: str) -> FileResponse:
        found(run_id)
        return FileResponse(api.artifact(run_id, "result.json"), media_type="application/json")

    @r.get("/runs/{run_id}/artifacts/{path:path}")
    def artifact(run_id: str, path: str) -> FileResponse:
        found(run_id)
        return FileResponse(api.artifact(run_id, path), headers={"Content-Security-Policy": REPORT_CSP})

    @r.get("/runs/{run_id}/bundle")
    def bundle(run_id: str) -> FileResponse:
        found(run_id)
        return _bundle(settings, run_id=run_id)

    @r.post("/uploads", response_model=Upload)
    async def upload(kind: Literal["model", "dataset"] = Form(...), file: UploadFile = File(...)) -> Upload:
        name = _SAFE_NAME.sub("_", Path(file.filename or "upload").name).lstrip("._") or "upload"
        suffix = Path(name).suffix.lower()
        if suffix not in settings.upload_suffixes:
            raise HTTPException(415, f"'{suffix or name}' files are not accepted; give one of "
                                f"{', '.join(settings.upload_suffixes)}")
        if suffix == ".zip" and kind != "model":
            raise HTTPException(415, "a .zip is accepted for models only (a zipped Hugging Face model folder)")
        uid = str(uuid.uuid4())
        folder = settings.uploads_dir / uid
        folder.mkdir(parents=True)
        size = 0
        with (folder / name).open("wb") as fh:
            while chunk := await file.read(1 << 20):
                size += len(chunk)
                if size > settings.max_upload_bytes:
                    fh.close()
                    (folder / name).unlink()
                    folder.rmdir()
                    raise HTTPException(413, f"upload larger than {settings.max_upload_bytes} bytes")
                fh.write(chunk)
        if suffix == ".zip":
            _unzip_model(folder / name, settings.max_upload_bytes)
        return Upload(upload_id=uid, name=name, size=size, kind=kind)

    @r.get("/compare")
    def compare(runs: list[str] = Query(...)) -> JSONResponse:
        rows: dict[str, dict[str, Any]] = {}
        for rid in runs:
            found(rid)
            res = api.manager.folder(rid) / OUT / "result.json"
            doc = json.loads(res.read_text(encoding="utf-8")) if res.is_file() else {}
            rows[rid] = {"status": api.manager.state(rid).get("status"), "headline": _headline(doc)}
        metrics = sorted({m for r in rows.values() for m in r["headline"]})
        table = [{"metric": m, **{rid: r["headline"].get(m) for rid, r in rows.items()}} for m in metrics]
        return JSONResponse({"runs": rows, "rows": table})

    @r.get("/leaderboard")
    def leaderboard() -> JSONResponse:
        """Every campaign leaderboard under ``--campaigns`` (rows flattened, with campaign and threat model)."""
        from aisec.campaigns.campaign import MANIFEST
        from aisec.campaigns.leaderboard import build_leaderboard

        rows: list[dict[str, Any]] = []
        root = settings.campaigns_dir
        folders = sorted(p.parent for p in root.glob(f"*/{MANIFEST}")) if root is not None else []
        if root is not None and (root / MANIFEST).is_file():
            folders.insert(0, root)
        for folder in folders:
            board = build_leaderboard(folder).to_json()  # each campaign's own store, as its manifest names it
            for t in board["tables"]:
                for row in t["rows"]:
                    rows.append({"campaign": board["campaign"], "dataset": t["dataset"], "norm": t["norm"],
                                 "eps": t["eps"], **{k: row[k] for k in (
                                     "rank", "name", "clean_accuracy", "ensemble_robust_accuracy",
                                     "best_known_robust_accuracy", "best_attack", "reliable", "safair_delta",
                                     "certified_accuracy")}})
        return JSONResponse({"rows": rows})

    @r.get("/evidence", response_model=list[EvidenceItem])
    def evidence(run: str | None = None, check: str | None = None, metric: str | None = None,
                 limit: int = 200) -> list[EvidenceItem]:
        from aisec.store import open_store

        store = open_store(settings.store_url)
        rows = store.query(run_id=run, check=check, metric=metric, limit=max(1, min(limit, 1000)))
        return [_item(s) for s in rows]

    @r.get("/evidence/export")
    def export() -> FileResponse:
        return _bundle(settings)

    @r.get("/evidence/{evidence_id}")
    def evidence_one(evidence_id: str) -> JSONResponse:
        from aisec.store import EvidenceNotFound, open_store

        try:
            entry = open_store(settings.store_url).get_entry(evidence_id)
        except EvidenceNotFound as exc:
            raise HTTPException(404, str(exc)) from None
        return JSONResponse(entry.model_dump(mode="json"))

    @r.post("/evidence/verify", response_model=VerifyResult)
    def verify() -> VerifyResult:
        from aisec.store import open_store

        rep = open_store(settings.store_url).verify(allow_empty=True)
        text = rep.text() if hasattr(rep, "text") else str(rep)
        return VerifyResult(ok=bool(getattr(rep, "ok", False)), text=text)

    return r


def _unzip_model(archive: Path, max_bytes: int) -> None:
    """A zipped model folder (e.g. Hugging Face ``save_pretrained``) becomes that folder, the upload's one entry."""
    from aisec.core.errors import DataError
    from aisec.web.unpack import ZipTooLarge, unpack_model_zip

    folder = archive.parent
    try:
        model_dir = unpack_model_zip(archive, folder / ".unpack", max_bytes=max_bytes)
    except DataError as exc:
        shutil.rmtree(folder)
        raise HTTPException(413 if isinstance(exc, ZipTooLarge) else 422, _one_line(exc)) from None
    model_dir.rename(folder / archive.stem)
    shutil.rmtree(folder / ".unpack", ignore_errors=True)
    archive.unlink()


def _item(s: Any) -> EvidenceItem:
    ev = s.evidence
    return EvidenceItem(id=ev.id, run_id=ev.run_id, check=getattr(ev, "check", None), metric=ev.metric,
                        value=getattr(ev, "value", None), stored_at=s.stored_at.isoformat())


def _headline(doc: dict[str, Any]) -> dict[str, Any]:
    """Per ``check.metric``, the numbers ``result.json`` gives (what the compare view sets side by side): each
    summary's scalar fields, and for robustness curves the robust accuracy at each attack's largest eps."""
    out: dict[str, Any] = {}
    checks = doc.get("checks") or {}
    for name, res in checks.items() if isinstance(checks, dict) else []:
        summary = (res or {}).get("summary") or {}
        for k, v in summary.items():
            if isinstance(v, (int, float)) and not isinstance(v, bool):
                out[f"{name}.{k}"] = v
        for c in summary.get("curves") or []:
            pts = [p for p in c.get("points") or [] if isinstance(p.get("robust_accuracy"), (int, float))]
            if pts:
                last = max(pts, key=lambda p: p.get("eps") or 0)
                out[f"{name}.{c.get('attack')}-{c.get('norm')} robust accuracy @ {last.get('eps', 0):.4g}"] = \
                    last["robust_accuracy"]
    return out


def _bundle(settings: ServeSettings, **filters: Any) -> FileResponse:
    from aisec.store import open_store

    folder = Path(tempfile.mkdtemp(prefix="aisec-bundle-"))
    tmp = folder / "evidence-bundle.jsonl"
    store = open_store(settings.store_url)
    try:
        store.export_bundle(tmp, **filters)
    except AisecError as exc:
        shutil.rmtree(folder, ignore_errors=True)
        raise HTTPException(404, _one_line(exc)) from None
    # the copy is deleted once sent: a server that exports often must not fill /tmp
    return FileResponse(tmp, media_type="application/jsonl", filename=tmp.name,
                        background=BackgroundTask(shutil.rmtree, folder, ignore_errors=True))


__all__ = ["PICKLE_SUFFIXES", "build_router"]
