"""Runners above the orchestrator: many attacks or runs at once, and re-running what was recorded.

- :mod:`aisec.campaigns.scan`: a Counterfit-style scan of attacks × parameter grids over every sample.
- :mod:`aisec.campaigns.reproduce`: re-run the plan behind a stored record and compare.
"""

from __future__ import annotations
