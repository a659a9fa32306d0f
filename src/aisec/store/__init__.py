"""Evidence store: runs, hash-chained Ed25519-signed evidence records and artifacts in SQL.

>>> from aisec.store import open_store
>>> store = open_store()          # $AISEC_STORE_URL, else SQLite in the user's data folder
>>> store.save_run(run)
>>> store.verify().ok
"""

from __future__ import annotations

from aisec.store.chain import Head, Issue, Link, VerifyReport, verify_chain
from aisec.store.errors import (
    BundleError,
    EvidenceConflict,
    EvidenceNotFound,
    NotAStore,
    SigningKeyError,
    StoreMissing,
    StoreTampered,
    StoreUnavailable,
    UntrustedSigner,
)
from aisec.store.keys import Signer, trusted_keys
from aisec.store.paths import data_dir, default_store_url, key_dir
from aisec.store.store import (
    AddResult,
    ArtifactInfo,
    Bundle,
    EvidenceStore,
    RunInfo,
    StoredEvidence,
    normalize_url,
    open_store,
    read_bundle,
)

__all__ = [
    "AddResult",
    "ArtifactInfo",
    "Bundle",
    "BundleError",
    "EvidenceConflict",
    "EvidenceNotFound",
    "EvidenceStore",
    "Head",
    "Issue",
    "Link",
    "NotAStore",
    "RunInfo",
    "Signer",
    "SigningKeyError",
    "StoreMissing",
    "StoreTampered",
    "StoreUnavailable",
    "StoredEvidence",
    "UntrustedSigner",
    "VerifyReport",
    "data_dir",
    "default_store_url",
    "key_dir",
    "normalize_url",
    "open_store",
    "read_bundle",
    "trusted_keys",
    "verify_chain",
]
