"""Exports of aisec evidence to other systems (Clouditor / EMERALD)."""

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
from aisec.export.properties import PROPERTIES, Derived, Reference, derive_properties

__all__ = [
    "PROPERTIES",
    "Derived",
    "PushAuthError",
    "PushConnectionError",
    "PushError",
    "PushRejected",
    "PushReport",
    "PushServerError",
    "Reference",
    "derive_properties",
    "push",
    "to_clouditor",
]
