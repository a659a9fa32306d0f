"""Deterministic bounds on small feed-forward and convolutional nets: IBP and CROWN.

Importing this package registers the ``ibp`` and ``crown`` certifiers in
:data:`aisec.certify.base.CERTIFIERS`. The pieces: :mod:`.network` reads a model as a chain of layers,
:mod:`.ibp` and :mod:`.crown` bound its margins over a box, :mod:`.certifier` turns the bounds into
per-sample certificates.
"""

from aisec.certify.bounds.certifier import certify_bounds, certify_crown, certify_ibp, margin_lower_bounds
from aisec.certify.bounds.crown import crown_margin_bounds
from aisec.certify.bounds.ibp import ibp_margin_bounds, interval_bounds
from aisec.certify.bounds.network import SUPPORTED, Network, read_module, read_network

__all__ = ["SUPPORTED", "Network", "certify_bounds", "certify_crown", "certify_ibp", "crown_margin_bounds",
           "ibp_margin_bounds", "interval_bounds", "margin_lower_bounds", "read_module", "read_network"]
