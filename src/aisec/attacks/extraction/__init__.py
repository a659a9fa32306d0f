"""Model extraction: train a surrogate ("proxy") from a query budget, measure fidelity, transfer attacks."""

from aisec.attacks.extraction.surrogate import (
    Extraction,
    FidelityResult,
    TransferResult,
    extract,
    fidelity,
    surrogate_transfer,
)

__all__ = ["Extraction", "FidelityResult", "TransferResult", "extract", "fidelity", "surrogate_transfer"]
