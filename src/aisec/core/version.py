"""The package version, in one place (evidence records carry it as ``tool_version``)."""

from __future__ import annotations

__version__ = "0.1.0"
