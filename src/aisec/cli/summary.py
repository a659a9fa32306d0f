"""What ``aisec assess`` and ``aisec demo`` print when a run ends."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from aisec.core.run import Run


def print_summary(run: Run) -> None:
    """Each check's headline numbers and warnings on the console, then where the report is.

    What a check prints is its summary's :meth:`~aisec.core.check.Summary.console_lines` (plain text and
    tables), so this knows no check by name; a check without lines of its own prints its measurements.
    """
    from rich.console import Console
    from rich.markup import escape
    from rich.table import Table

    from aisec.core.check import ConsoleTable

    console = Console()
    from aisec.policy.sanity import alerts
    from aisec.report.html import input_note

    for a in alerts(run.evidence):  # first, before any figure: those figures describe a model that guesses
        console.print(f"[bold red]WARNING: useless model?[/] {escape(a)}", highlight=False)
    if note := input_note(run):
        console.print(f"inputs: {note}", markup=False)
    for r in run.results:
        for item in r.summary.console_lines(r, model=run.target.spec.name, dataset=run.data.info.name):
            if isinstance(item, ConsoleTable):
                t = Table(title=item.title)
                for col in item.columns:
                    t.add_column(col, justify="right")
                for row in item.rows:
                    t.add_row(*row)
                console.print(t)
            else:
                console.print(item, markup=False)  # plain text: a class name may hold "[...]"
        for w in r.warnings:
            console.print(f"[yellow]warning:[/] {w}")
    if run.out:
        console.print(f"report: {run.out / 'report.html'}   evidence: {run.out / 'evidence.jsonl'}")
