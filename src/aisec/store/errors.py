"""Errors of the evidence store (all :class:`aisec.core.errors.StoreError`).

::

    StoreError
    ├── StoreUnavailable     the store URL cannot be opened or reached
    ├── EvidenceNotFound     no record with that id (or prefix)
    ├── EvidenceConflict     a record with the same id but different content is already stored
    ├── SigningKeyError      the signing key cannot be created, read or parsed
    └── BundleError          an export file is malformed or fails verification on import
"""

from __future__ import annotations

from aisec.core.errors import StoreError


class StoreUnavailable(StoreError):
    """The store URL cannot be opened or reached."""


class EvidenceNotFound(StoreError, LookupError):
    """No evidence record with that id."""


class EvidenceConflict(StoreError):
    """A record with the same id but different content is already stored."""


class SigningKeyError(StoreError):
    """The signing key cannot be created, read or parsed."""


class BundleError(StoreError):
    """An evidence file is malformed, or fails verification on import."""


__all__ = ["BundleError", "EvidenceConflict", "EvidenceNotFound", "SigningKeyError", "StoreError", "StoreUnavailable"]
