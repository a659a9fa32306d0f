"""Tally of the fuzz corpus: cases tried / clear error / traceback / hang / code executed / data lost."""

from __future__ import annotations

from collections import Counter
from typing import Any

import pytest

TALLY: Counter[str] = Counter()


@pytest.fixture()
def fuzz_tally() -> Counter[str]:
    """The session's tally, filled by every fuzz case."""
    return TALLY


def pytest_terminal_summary(terminalreporter: Any) -> None:
    if not TALLY:
        return
    keys = ("tried", "clear error", "ran fine", "traceback", "hang", "code executed", "data lost", "unclear")
    line = ", ".join(f"{k}: {TALLY.get(k, 0)}" for k in keys)
    terminalreporter.write_sep("-", "aisec fuzz corpus")
    terminalreporter.write_line(line)
