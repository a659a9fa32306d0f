"""A small stand-in for the ``/api/v1`` contract (i17api's brief), so the pages can be driven in a browser
before/without the real backend: token → cookie auth, the CSRF double-submit check, a catalogue, a plan
preview built the same way for every change, and an upload endpoint with the suffix/size limits.

It is only the contract's shape; the real server (``aisec.web.app.create_app``) is used by test_e2e.py.
"""

from __future__ import annotations

import secrets
from typing import Any

import yaml
from fastapi import Depends, FastAPI, File, Form, HTTPException, Request, UploadFile
from fastapi.responses import JSONResponse, RedirectResponse, Response

from aisec.web.pages import make_router

MAX_UPLOAD = 1024
SUFFIXES = (".safetensors", ".onnx", ".npz", ".csv", ".pt")


def create_stub_app(token: str) -> FastAPI:
    csrf = secrets.token_urlsafe(16)

    def auth(request: Request) -> None:
        if request.cookies.get("aisec_session") != token and request.headers.get("authorization") != f"Bearer {token}":
            raise HTTPException(401, "missing or wrong token: open the URL aisec serve printed (…/?token=…)")
        if request.method not in ("GET", "HEAD") and "authorization" not in request.headers \
                and request.headers.get("x-csrf-token") != request.cookies.get("aisec_csrf"):
            raise HTTPException(403, "CSRF token missing or wrong")

    app = FastAPI()

    @app.middleware("http")
    async def token_login(request: Request, call_next: Any) -> Response:
        if request.query_params.get("token") == token:
            resp = RedirectResponse(str(request.url.remove_query_params("token")), status_code=303)
            resp.set_cookie("aisec_session", token, httponly=True, samesite="strict")
            resp.set_cookie("aisec_csrf", csrf, samesite="strict")
            return resp
        response: Response = await call_next(request)
        return response

    @app.get("/api/v1/catalogue", dependencies=[Depends(auth)])
    def catalogue() -> dict[str, Any]:
        return {"tasks": [{"name": "image", "datasets": ["digits"], "models": ["digits-cnn"]},
                          {"name": "text", "datasets": ["rotten"], "models": ["minilm"]},
                          {"name": "tabular", "datasets": ["adult"], "models": ["adult-mlp"]}],
                "checks": [{"name": "robustness", "help": "evasion attacks", "tasks": ["image", "text", "tabular"],
                            "params": [{"name": "eps", "type": "array", "default": [0.1]},
                                       {"name": "n_samples", "type": "integer", "default": 256}],
                            "attacks": ["fgsm", "pgd"]},
                           {"name": "privacy", "tasks": ["image", "tabular"],
                            "params": [{"name": "n_samples", "type": "integer", "default": 256}]}]}

    @app.post("/api/v1/plans/preview", dependencies=[Depends(auth)])
    def preview(body: dict[str, Any]) -> dict[str, str]:
        if not body.get("checks"):
            raise HTTPException(422, "no checks: pick at least one")
        checks = body["checks"]
        cmd = f"aisec assess --model {body['model']} --data {body['dataset']} --checks {','.join(checks)}"
        for name, ps in checks.items():
            for k, v in ps.items():
                cmd += f" --set {name}.{k}={','.join(map(str, v)) if isinstance(v, list) else v}"
        plan = {"model": body["model"], "data": body["dataset"], "seed": body.get("seed", 0), "checks": checks}
        return {"command": cmd, "plan_yaml": yaml.safe_dump(plan, sort_keys=False)}

    @app.post("/api/v1/uploads", dependencies=[Depends(auth)])
    async def upload(kind: str = Form(...), file: UploadFile = File(...)) -> JSONResponse:
        name = file.filename or ""
        if not name.endswith(SUFFIXES):
            raise HTTPException(415, f"{name}: not an allowed file type (one of {', '.join(SUFFIXES)})")
        data = await file.read()
        if len(data) > MAX_UPLOAD:
            raise HTTPException(413, f"{name}: {len(data)} bytes is over the {MAX_UPLOAD}-byte upload limit")
        return JSONResponse({"upload_id": "u1", "name": name, "size": len(data)})

    app.include_router(make_router([auth]))
    return app
