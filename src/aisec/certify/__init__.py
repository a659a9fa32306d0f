"""Certified robustness: per-sample proofs that no input in a ball is misclassified (lower bounds).

Certifier modules register themselves in :data:`aisec.certify.base.CERTIFIERS`; see that module.
"""

from aisec.certify.base import (
    CERTIFIERS,
    STATUSES,
    Certificate,
    Certifier,
    Status,
    get_certifier,
    register_certifier,
)

__all__ = ["CERTIFIERS", "STATUSES", "Certificate", "Certifier", "Status", "get_certifier", "register_certifier"]
