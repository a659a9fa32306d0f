"""Exports of aisec evidence to other systems (Clouditor / EMERALD).

The Clouditor properties the evidence is mapped onto live with the policy (:mod:`aisec.policy.properties`)."""

from __future__ import annotations

from aisec.export.clouditor import (
    PushAuthError,
    PushConnectionError,
    PushError,
    PushRejected,
    PushReport,
    PushServerError,
    push,
    to_clouditor,
)

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
