"""Model extraction: train a surrogate ("proxy") from a query budget, measure fidelity, transfer attacks."""

from aisec.attacks.extraction.surrogate import (
    Extraction,
    FidelityResult,
    TransferResult,
    extract,
    fidelity,
    transfer_attack,
)

__all__ = ["Extraction", "FidelityResult", "TransferResult", "extract", "fidelity", "transfer_attack"]
