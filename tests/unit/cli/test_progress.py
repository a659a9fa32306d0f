"""Progress as a user sees it: per-sample counts, a plain line per finished step off a terminal, no stale bars."""

from __future__ import annotations

import io

from rich.console import Console

from aisec.attacks.base import run_attack
from aisec.cli.progress import RichProgress


def test_off_a_terminal_each_finished_step_is_one_line_and_nothing_else() -> None:
    out = io.StringIO()
    with RichProgress(console=Console(file=out, force_terminal=False, width=120)) as p:
        for done in (64, 128, 150):
            p("pgd", done, 150)
        p("fgsm", 10, 150)  # never finishes: no line for it
    lines = out.getvalue().splitlines()
    assert len(lines) == 1 and lines[0].startswith("pgd: 150/150 done in ") and "(run 0:00:0" in lines[0]


def test_on_a_terminal_unfinished_bars_are_removed_at_the_end() -> None:
    out = io.StringIO()
    prog = RichProgress(console=Console(file=out, force_terminal=True, width=120))
    with prog as p:
        p("pgd", 150, 150)
        p("fgsm", 10, 150)
        p("pgd", 64, 150)  # the same attack again (the next eps): its bar starts over, not backwards
        assert prog._bar.tasks[prog._tasks["pgd"]].completed == 64
        p("pgd", 150, 150)
    assert [t.description for t in prog._bar.tasks] == ["pgd"]


def test_attacks_report_samples_not_batches(digits_target, digits_test_batch) -> None:
    x, y = digits_test_batch
    seen: list[tuple[str, int, int]] = []
    run_attack("fgsm", digits_target, x[:50], y[:50], {"eps": 0.1}, batch_size=16,
               progress=lambda t, d, n: seen.append((t, d, n)))
    assert seen == [("fgsm", 16, 50), ("fgsm", 32, 50), ("fgsm", 48, 50), ("fgsm", 50, 50)]
