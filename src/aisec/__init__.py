"""aisec: measure the security of trained ML models and turn it into audit evidence."""

from __future__ import annotations

__version__ = "0.1.0"
