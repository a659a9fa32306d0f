"""Clouditor export and push, against a local server that checks REFERENCES.md §2's message shape and OAuth2."""

from __future__ import annotations

import base64
import hashlib
import json
import re
import socket
import threading
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs

import pytest

from aisec.export.clouditor import (
    PushAuthError,
    PushConnectionError,
    PushRejected,
    PushServerError,
    push,
    to_clouditor,
)
from aisec.testing.evidence import fake_evidence

RFC3339 = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?(Z|[+-]\d{2}:\d{2})$")
ML_FIELDS = {  # confirmate.ontology.v1.MachineLearningModel, protojson lowerCamelCase
    "adversarialRobustnessScore", "creationTime", "description", "evasionEfficacyLevel", "explainability",
    "explainabilityEnabled", "id", "labels", "membershipInferenceResilience", "modelStealResilience", "name",
    "poisonedDataLevel", "poisoningResilienceLevel", "raw", "dataLocation", "parentId", "vulnerabilities",
}
SCALES = {"adversarialRobustnessScore": 1, "membershipInferenceResilience": 1, "poisoningResilienceLevel": 1,
          "evasionEfficacyLevel": 100, "modelStealResilience": 100, "poisonedDataLevel": 100, "explainability": 1}


def validate(msg: dict) -> list[str]:
    """An independent reading of the Evidence message (not aisec's code): returns what is wrong."""
    errs = []
    extra = set(msg) - {"id", "timestamp", "targetOfEvaluationId", "toolId", "resource",
                        "experimentalRelatedResourceIds"}
    if extra:
        errs.append(f"unknown fields {extra}")
    try:
        if uuid.UUID(msg["id"]).version != 4:
            errs.append("id is not a UUIDv4")
        uuid.UUID(msg["targetOfEvaluationId"])
    except (KeyError, ValueError, TypeError) as exc:
        errs.append(f"bad uuid: {exc}")
    if not RFC3339.match(str(msg.get("timestamp", ""))):
        errs.append("timestamp is not RFC 3339")
    if not msg.get("toolId"):
        errs.append("toolId missing")
    res = msg.get("resource", {})
    if set(res) != {"machineLearningModel"}:
        return [*errs, f"resource must hold machineLearningModel, got {set(res)}"]
    m = res["machineLearningModel"]
    if set(m) - ML_FIELDS:
        errs.append(f"not ontology fields: {set(m) - ML_FIELDS}")
    if not (isinstance(m.get("id"), str) and m["id"] and isinstance(m.get("name"), str) and m["name"]):
        errs.append("id and name are required strings")
    for k, top in SCALES.items():
        if k in m and not (isinstance(m[k], float | int) and not isinstance(m[k], bool) and 0 <= m[k] <= top):
            errs.append(f"{k}={m[k]!r} outside [0, {top}]")
    if "explainabilityEnabled" in m and not isinstance(m["explainabilityEnabled"], bool):
        errs.append("explainabilityEnabled must be a bool")
    if not all(isinstance(k, str) and isinstance(v, str) for k, v in m.get("labels", {}).items()):
        errs.append("labels must map strings to strings")
    try:
        raw = json.loads(m["raw"])
        from cryptography.hazmat.primitives.serialization import load_pem_public_key

        for r in raw["records"]:
            if hashlib.sha256(r["body"].encode()).hexdigest() != r["sha256"]:
                errs.append(f"raw record {r['id']} does not match its sha256")
            sig = r["signature"]
            key = load_pem_public_key(raw["keys"][sig["key_id"]].encode())
            key.verify(base64.b64decode(sig["value"]), r["sha256"].encode())  # raises if forged
    except Exception as exc:
        errs.append(f"raw is not signed aisec evidence: {exc!r}")
    return errs


class FakeClouditor:
    """Token endpoint + evidence store on loopback; behaviour set per test."""

    def __init__(self, *, fail_first: int = 0, status: int = 200, evidence_401: bool = False) -> None:
        self.fail_first, self.status, self.evidence_401 = fail_first, status, evidence_401
        self.tokens: set[str] = set()
        self.accepted: list[dict] = []
        self.errors: list[str] = []
        self.requests = 0
        self.lock = threading.Lock()
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):  # keep test output clean
                pass

            def _reply(self, code: int, body: dict) -> None:
                data = json.dumps(body).encode()
                self.send_response(code)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def do_POST(self):
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                with fake.lock:
                    fake.requests += 1
                    if self.path == "/v1/auth/token":
                        return self._token(body)
                    if self.path == "/v1/evidence_store/evidence":
                        return self._evidence(body)
                return self._reply(404, {"message": "not found"})

            def _token(self, body: bytes) -> None:
                auth = self.headers.get("Authorization", "")
                ok = auth == "Basic " + base64.b64encode(b"clouditor:secret").decode()
                if not ok or parse_qs(body.decode()).get("grant_type") != ["client_credentials"]:
                    return self._reply(401, {"error": "invalid_client"})
                tok = f"tok-{len(fake.tokens)}"
                fake.tokens.add(tok)
                return self._reply(200, {"access_token": tok, "token_type": "Bearer", "expires_in": 3600})

            def _evidence(self, body: bytes) -> None:
                bearer = self.headers.get("Authorization", "").removeprefix("Bearer ")
                if fake.evidence_401 or bearer not in fake.tokens:
                    return self._reply(401, {"message": "invalid token"})
                if fake.fail_first > 0:
                    fake.fail_first -= 1
                    return self._reply(500, {"message": "internal"})
                if fake.status != 200:
                    return self._reply(fake.status, {"message": "evidence.id: value must be a valid UUID"})
                msg = json.loads(body)
                errs = validate(msg)
                if errs:
                    fake.errors += errs
                    return self._reply(400, {"message": "; ".join(errs)})
                fake.accepted.append(msg)
                return self._reply(200, {})

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self) -> FakeClouditor:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join()


RUN = str(uuid.uuid4())


@pytest.fixture
def messages(tmp_path, monkeypatch):
    monkeypatch.setenv("AISEC_KEY_DIR", str(tmp_path / "keys"))
    from aisec.store import Signer

    p = {"attack": "pgd", "norm": "linf", "eps": 8 / 255}
    ev = [
        fake_evidence("robustness.robust_accuracy", 0.62, run_id=RUN, index=0, parameters=p),
        fake_evidence("robustness.attack_success_rate", 0.3, run_id=RUN, index=1, parameters=p),
        fake_evidence("privacy.mia_auc", 0.58, run_id=RUN, index=2),
        fake_evidence("explainability.faithfulness_deletion", 0.8, run_id=RUN, index=3),
        fake_evidence("robustness.clean_accuracy", 0.97, run_id=str(uuid.uuid4()), index=4),
    ]
    return to_clouditor(ev, signer=Signer.load_or_create())


def no_sleep(_: float) -> None:
    pass


def test_export_shape_and_scales(messages):
    assert len(messages) == 2  # one per (model, run)
    for m in messages:
        assert validate(m) == []
        assert m["toolId"] == "aisec"
    model = messages[0]["resource"]["machineLearningModel"]
    assert model["adversarialRobustnessScore"] == pytest.approx(0.62)
    assert model["evasionEfficacyLevel"] == pytest.approx(30.0)
    assert model["membershipInferenceResilience"] == pytest.approx(0.16)
    assert model["explainabilityEnabled"] is True and model["explainability"] == pytest.approx(0.8)
    raw = json.loads(model["raw"])
    assert len(raw["records"]) == 4 and raw["properties"]["evasionEfficacyLevel"]["scale"] == "% [0, 100]"
    assert messages[1]["resource"]["machineLearningModel"]["explainabilityEnabled"] is False


def test_push_with_client_credentials(messages):
    with FakeClouditor() as srv:
        rep = push(srv.url, messages, client_id="clouditor", client_secret="secret", sleep=no_sleep)
    assert srv.errors == []
    assert [m["id"] for m in srv.accepted] == [m["id"] for m in messages] == list(rep.sent)


def test_push_retries_server_errors_with_backoff(messages):
    waits: list[float] = []
    with FakeClouditor(fail_first=3) as srv:
        rep = push(srv.url + "/v1/evidence_store/evidence", messages, client_id="clouditor",
                   client_secret="secret", sleep=waits.append, backoff=0.1)
    assert len(rep.sent) == 2 and len(srv.accepted) == 2
    assert len(waits) == 3 and waits[0] < waits[1] < waits[2]  # exponential


def test_push_500_is_a_server_error_and_keeps_everything_pending(messages):
    with FakeClouditor(fail_first=100) as srv, pytest.raises(PushServerError, match="HTTP 500") as exc:
        push(srv.url, messages, client_id="clouditor", client_secret="secret", retries=2, sleep=no_sleep)
    assert exc.value.status == 500 and exc.value.sent == [] and exc.value.pending == messages


def test_push_bad_credentials_is_an_auth_error(messages):
    with FakeClouditor() as srv, pytest.raises(PushAuthError, match="rejected client 'clouditor'"):
        push(srv.url, messages, client_id="clouditor", client_secret="wrong", sleep=no_sleep)
    with FakeClouditor(evidence_401=True) as srv, pytest.raises(PushAuthError, match="HTTP 401") as exc:
        push(srv.url, messages, client_id="clouditor", client_secret="secret", sleep=no_sleep)
    assert exc.value.pending == messages
    with FakeClouditor() as srv, pytest.raises(PushAuthError):
        push(srv.url, messages, sleep=no_sleep)  # no credentials at all


def test_push_rejected_message_is_specific(messages):
    with FakeClouditor(status=400) as srv, pytest.raises(PushRejected, match="valid UUID"):
        push(srv.url, messages, client_id="clouditor", client_secret="secret", sleep=no_sleep)


def test_push_to_nowhere_is_a_connection_error(messages):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    with pytest.raises(PushConnectionError):
        push(f"http://127.0.0.1:{port}", messages, token="t", retries=1, sleep=no_sleep)
