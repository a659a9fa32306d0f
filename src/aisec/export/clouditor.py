"""Clouditor (EMERALD / MEDINA) evidence: export aisec records and push them to an Evidence Store.

One Clouditor ``Evidence`` per assessed model and run (``confirmate.evidence.v1``, REST JSON,
lowerCamelCase)::

    {"id": "<uuid4>", "timestamp": "2026-01-01T00:00:00Z", "targetOfEvaluationId": "<uuid>",
     "toolId": "aisec",
     "resource": {"machineLearningModel": {
        "id": "urn:aisec:model:sha256:<digest>", "name": "digits-cnn", "description": "...",
        "labels": {"aisec.run_id": "...", ...},
        "adversarialRobustnessScore": 0.61, "evasionEfficacyLevel": 12.5, ...,   # see properties.py
        "explainabilityEnabled": false,
        "raw": "<JSON: the signed aisec records, their chain links, keys and how each property was derived>"}}}

``push`` sends them to ``POST {url}/v1/evidence_store/evidence`` with an OAuth 2.0
client-credentials token (``{url}/v1/auth/token`` unless told otherwise), retrying connection
errors, 429 and 5xx with exponential backoff. It never changes anything local: what was not
accepted is returned (and raised) so it can be sent again with the same evidence ids.

Errors::

    PushError                 (AisecError)
    ├── PushAuthError         401/403 from the token endpoint or the evidence store
    ├── PushServerError       5xx (or 429) still failing after the retries
    ├── PushRejected          another 4xx: the store refused the message (body says why)
    └── PushConnectionError   the server cannot be reached
"""

from __future__ import annotations

import json
import random
import time
import uuid
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from typing import Any

import httpx
from pydantic import BaseModel, ConfigDict

from aisec.core.errors import AisecError
from aisec.core.evidence import Evidence
from aisec.policy.properties import PROPERTIES, Reference, derive_properties

TOOL_ID = "aisec"
EVIDENCE_PATH = "/v1/evidence_store/evidence"
TOKEN_PATH = "/v1/auth/token"
RAW_FORMAT = "aisec-signed-evidence/1"


class PushError(AisecError):
    """Evidence could not be delivered; ``pending`` holds the messages not accepted."""

    def __init__(self, message: str, *, sent: Sequence[str] = (), pending: Sequence[dict[str, Any]] = (),
                 status: int | None = None) -> None:
        super().__init__(message)
        self.sent = list(sent)
        self.pending = list(pending)
        self.status = status


class PushAuthError(PushError):
    """The token endpoint or the evidence store refused our credentials (401/403)."""


class PushServerError(PushError):
    """The server kept answering 5xx (or 429) after all retries."""


class PushRejected(PushError):
    """The server refused a message with a 4xx other than 401/403/429."""


class PushConnectionError(PushError):
    """The server could not be reached (after all retries)."""


class PushReport(BaseModel):
    model_config = ConfigDict(frozen=True)

    url: str
    sent: tuple[str, ...]
    attempts: int


def to_clouditor(
    records: Sequence[Any],
    *,
    reference: Reference | None = None,
    signer: Any = None,
    head: Any = None,
    keys: dict[str, str] | None = None,
) -> list[dict[str, Any]]:
    """Clouditor ``Evidence`` messages (JSON-ready dicts) for aisec records.

    Args:
        records: :class:`~aisec.core.evidence.Evidence` or :class:`~aisec.store.StoredEvidence`
            (the latter keep their chain link and signature in ``raw``).
        signer: a :class:`~aisec.store.Signer`; each record also gets a detached Ed25519 signature
            over its sha256, so records that never went through a store are signed too.
        head, keys: the store's signed chain head and public keys, copied into ``raw``.
    """
    groups: dict[tuple[str, str, str], list[Any]] = {}
    for r in records:
        ev: Evidence = getattr(r, "evidence", r)
        groups.setdefault((ev.target_of_evaluation_id, ev.resource.model_sha256, ev.run_id), []).append(r)
    return [_message(items, reference or Reference(), signer, head, keys) for items in groups.values()]


def _message(items: list[Any], ref: Reference, signer: Any, head: Any, keys: dict[str, str] | None) -> dict[str, Any]:
    evs: list[Evidence] = [getattr(r, "evidence", r) for r in items]
    first = evs[0]
    props = derive_properties(evs, ref)
    raw_records = []
    for r, ev in zip(items, evs, strict=True):
        item: dict[str, Any] = {"id": ev.id, "sha256": ev.sha256(), "body": ev.canonical_json().decode()}
        link = getattr(r, "link", None)
        if link is not None:
            item["chain"] = link.model_dump()
        if signer is not None:
            item["signature"] = {"algorithm": "ed25519", "key_id": signer.key_id,
                                 "over": "sha256", "value": signer.sign(ev.sha256().encode())}
        raw_records.append(item)
    all_keys = dict(keys or {})
    if signer is not None:
        all_keys[signer.key_id] = signer.public_pem
    raw = {
        "format": RAW_FORMAT,
        "tool": {"id": TOOL_ID, "version": first.tool_version},
        "run_id": first.run_id,
        "reference_eps": ref.eps,
        "properties": {k: {"value": d.value, "basis": d.basis, "evidence_ids": list(d.evidence_ids),
                           "scale": PROPERTIES[k].scale,
                           "higher_is_better": PROPERTIES[k].higher_is_better} for k, d in props.items()},
        "records": raw_records,
        "keys": all_keys,
        "head": head.model_dump() if head is not None else None,
    }
    model: dict[str, Any] = {
        "id": f"urn:aisec:model:sha256:{first.resource.model_sha256}",
        "name": first.resource.model_name,
        "description": (f"{first.resource.model_name} assessed by aisec {first.tool_version} on "
                        f"{first.resource.dataset_name}: {len(evs)} measurement(s) from checks "
                        f"{', '.join(sorted({e.check for e in evs}))}"),
        "labels": {
            "aisec.run_id": first.run_id,
            "aisec.model_sha256": first.resource.model_sha256,
            "aisec.dataset": first.resource.dataset_name,
            "aisec.dataset_digest": first.resource.dataset_digest,
            "aisec.checks": ",".join(sorted({e.check for e in evs})),
            "aisec.threats": ",".join(sorted({t for e in evs for t in e.threats})),
        },
        "explainabilityEnabled": False,
    }
    for name, d in props.items():
        if name == "explainabilityEnabled":
            model[name] = bool(d.value)
        else:
            model[name] = float(d.value)
    model["raw"] = json.dumps(raw, sort_keys=True, allow_nan=False)
    return {
        "id": str(uuid.uuid4()),
        "timestamp": _rfc3339(max(e.timestamp for e in evs)),
        "targetOfEvaluationId": first.target_of_evaluation_id,
        "toolId": TOOL_ID,
        "resource": {"machineLearningModel": model},
    }


def _rfc3339(t: datetime) -> str:
    t = t.astimezone(UTC) if t.tzinfo else t.replace(tzinfo=UTC)
    return t.isoformat().replace("+00:00", "Z")


class _Token:
    def __init__(self, client: httpx.Client, token_url: str, client_id: str, client_secret: str) -> None:
        self.client, self.url, self.id, self.secret = client, token_url, client_id, client_secret
        self.value: str | None = None
        self.expires = 0.0

    def get(self, *, refresh: bool = False) -> str:
        if self.value and not refresh and time.monotonic() < self.expires - 30:
            return self.value
        try:
            r = self.client.post(self.url, data={"grant_type": "client_credentials"}, auth=(self.id, self.secret))
        except httpx.TransportError as exc:
            raise PushConnectionError(f"cannot reach the token endpoint {self.url}: {exc}") from exc
        if r.status_code in (400, 401, 403):
            raise PushAuthError(f"the token endpoint {self.url} rejected client '{self.id}' (HTTP {r.status_code}: "
                                f"{_snippet(r)}); check --client-id/--client-secret", status=r.status_code)
        if r.status_code >= 300:
            raise PushServerError(f"the token endpoint {self.url} answered HTTP {r.status_code}: {_snippet(r)}",
                                  status=r.status_code)
        try:
            body = r.json()
            self.value = str(body["access_token"])
        except (ValueError, KeyError, TypeError) as exc:
            raise PushAuthError(f"the token endpoint {self.url} returned no access_token") from exc
        self.expires = time.monotonic() + float(body.get("expires_in") or 300)
        return self.value


def push(
    url: str,
    evidences: Sequence[dict[str, Any]],
    *,
    client_id: str | None = None,
    client_secret: str | None = None,
    token_url: str | None = None,
    token: str | None = None,
    retries: int = 4,
    backoff: float = 0.5,
    timeout: float = 10.0,
    transport: httpx.BaseTransport | None = None,
    sleep: Callable[[float], None] = time.sleep,
) -> PushReport:
    """POST each Clouditor evidence message to ``url`` (the Clouditor base URL or the full endpoint).

    Authenticates with OAuth 2.0 client credentials (HTTP Basic to ``token_url``, default
    ``{url}/v1/auth/token``) when ``client_id`` is given, or with a ready bearer ``token``.
    Retries connection errors, 429 and 5xx ``retries`` times with exponential backoff and jitter;
    a 401 triggers one token refresh. Raises a :class:`PushError` subclass carrying ``sent`` and
    ``pending`` (nothing local is modified, so ``pending`` can be pushed again unchanged).
    """
    endpoint = url.rstrip("/")
    base = endpoint[: -len(EVIDENCE_PATH)] if endpoint.endswith(EVIDENCE_PATH) else endpoint
    endpoint = base + EVIDENCE_PATH
    sent: list[str] = []
    attempts = 0
    with httpx.Client(timeout=timeout, transport=transport) as client:
        auth = _Token(client, token_url or base + TOKEN_PATH, client_id, client_secret or "") if client_id else None
        for i, msg in enumerate(evidences):
            pending = list(evidences[i:])
            refreshed = False
            delay = backoff
            attempt = 0
            while True:
                attempt += 1
                attempts += 1
                headers = {"Content-Type": "application/json", "Accept": "application/json"}
                try:
                    bearer = auth.get() if auth else token
                except PushError as exc:
                    exc.sent, exc.pending = list(sent), pending
                    raise
                if bearer:
                    headers["Authorization"] = f"Bearer {bearer}"
                try:
                    r = client.post(endpoint, content=json.dumps(msg, allow_nan=False), headers=headers)
                except httpx.TransportError as exc:
                    if attempt > retries:
                        raise PushConnectionError(f"cannot reach {endpoint} after {attempt} attempt(s): {exc}",
                                                  sent=sent, pending=pending) from exc
                    sleep(delay * (1 + random.random() / 2))
                    delay *= 2
                    continue
                if r.status_code < 300:
                    sent.append(str(msg.get("id")))
                    break
                if r.status_code == 401 and auth is not None and not refreshed:
                    refreshed = True
                    try:
                        auth.get(refresh=True)
                    except PushError as exc:
                        exc.sent, exc.pending = list(sent), pending
                        raise
                    continue
                if r.status_code in (401, 403):
                    raise PushAuthError(f"{endpoint} refused the request (HTTP {r.status_code}: {_snippet(r)}); "
                                        "check the client credentials or token", sent=sent, pending=pending,
                                        status=r.status_code)
                if r.status_code == 429 or r.status_code >= 500:
                    if attempt > retries:
                        raise PushServerError(f"{endpoint} answered HTTP {r.status_code} {attempt} time(s): "
                                              f"{_snippet(r)}; {len(pending)} message(s) not delivered",
                                              sent=sent, pending=pending, status=r.status_code)
                    sleep(_retry_after(r) or delay * (1 + random.random() / 2))
                    delay *= 2
                    continue
                raise PushRejected(f"{endpoint} rejected evidence {msg.get('id')} (HTTP {r.status_code}: "
                                   f"{_snippet(r)})", sent=sent, pending=pending, status=r.status_code)
    return PushReport(url=endpoint, sent=tuple(sent), attempts=attempts)


def _retry_after(r: httpx.Response) -> float | None:
    try:
        return min(30.0, float(r.headers.get("Retry-After", "")))
    except ValueError:
        return None


def _snippet(r: httpx.Response) -> str:
    text = r.text.strip().replace("\n", " ")
    return text[:200] or r.reason_phrase


__all__ = [
    "PushAuthError",
    "PushConnectionError",
    "PushError",
    "PushRejected",
    "PushReport",
    "PushServerError",
    "push",
    "to_clouditor",
]
