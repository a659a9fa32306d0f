"""Errors of the evidence store (all :class:`aisec.core.errors.StoreError`).

::

    StoreError
    ├── StoreUnavailable     the store URL cannot be opened or reached
    │   ├── StoreMissing     a read-only command found no store there (nothing was created)
    │   └── NotAStore        the file or database holds no aisec store (e.g. a 0-byte file)
    ├── EvidenceNotFound     no record with that id (or prefix)
    ├── EvidenceConflict     a record with the same id but different content is already stored
    ├── SigningKeyError      the signing key cannot be created, read or parsed
    ├── BundleError          an export file is malformed or fails verification on import
    │   └── UntrustedSigner  a bundle or its records are signed by keys not in the trust store
    └── StoreTampered        a write found the store changed outside aisec (verify names what)
"""

from __future__ import annotations

from aisec.core.errors import StoreError


class StoreUnavailable(StoreError):
    """The store URL cannot be opened or reached."""


class StoreMissing(StoreUnavailable):
    """A read-only command was pointed at a store that does not exist; nothing was created."""


class NotAStore(StoreUnavailable):
    """The file or database exists but holds no aisec evidence store."""


class EvidenceNotFound(StoreError, LookupError):
    """No evidence record with that id."""


class EvidenceConflict(StoreError):
    """A record with the same id but different content is already stored."""


class SigningKeyError(StoreError):
    """The signing key cannot be created, read or parsed."""


class BundleError(StoreError):
    """An evidence file is malformed, or fails verification on import."""


class UntrustedSigner(BundleError):
    """A bundle, or records in it, are signed by keys that are not in the trust store."""


class StoreTampered(StoreError):
    """A write found runs or the head changed outside aisec, and refuses to sign over the change."""


__all__ = ["BundleError", "EvidenceConflict", "EvidenceNotFound", "NotAStore", "SigningKeyError", "StoreError",
           "StoreMissing", "StoreTampered", "StoreUnavailable", "UntrustedSigner"]
