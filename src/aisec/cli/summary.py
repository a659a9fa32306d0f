"""What ``aisec assess`` and ``aisec demo`` print when a run ends."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from rich.table import Table

    from aisec.core.check import ConsoleTable
    from aisec.core.run import Run


def print_summary(run: Run) -> None:
    """Each check's headline numbers and warnings on the console, then where the report is.

    What a check prints is its summary's :meth:`~aisec.core.check.Summary.console_lines` (plain text and
    tables), so this knows no check by name; a check without lines of its own prints its measurements.
    """
    from rich.console import Console
    from rich.markup import escape

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
                t, width = _table(item)
                # wide enough for every cell: an interval cut to "0.839–…" or an attack to "hopskip…" reads as
                # another number (a narrow terminal wraps the lines instead; a pipe or CI log has room)
                console.print(t, width=max(console.width, width))
            else:
                console.print(item, markup=False)  # plain text: a class name may hold "[...]"
        for w in r.warnings:
            console.print(f"[yellow]warning:[/] {w}")
    if run.out and run.artefacts:
        kinds = ", ".join(sorted({a.kind for a in run.artefacts}))
        console.print(f"artefacts: {len(run.artefacts)} file(s) in {run.out / 'artefacts'} ({kinds}); listed with "
                      "their sha256 in result.json", markup=False, highlight=False)
        if cmd := surrogate_command(run):
            console.print(f"assess the extracted surrogate: {cmd}", markup=False, highlight=False)
    if run.out:
        console.print(f"report: {run.out / 'report.html'}   evidence: {run.out / 'evidence.jsonl'}")


def surrogate_command(run: Run) -> str | None:
    """The ``aisec assess`` command that assesses the run's saved extraction surrogate on the run's data
    (None without one): the surrogate file records its architecture, so ``-m`` alone loads it."""
    import shlex

    if run.out is None:
        return None
    model = next((a for a in run.artefacts if a.kind == "surrogate-model"), None)
    if model is None:
        return None
    parts = ["aisec", "assess", "-m", str(run.out / model.path)]
    data = run.plan.data if run.plan is not None else None
    parts += ["-d", data.source if data is not None else "DATA"]
    if data is not None:
        for key, flag in (("split", "--split"), ("text_column", "--text-column"), ("label_column", "--label-column")):
            if data.options.get(key) is not None:
                parts += [flag, str(data.options[key])]
        if data.scale != "auto":
            parts += ["--scale", data.scale]
    parts += ["-o", f"{run.out}-surrogate"]
    return " ".join(shlex.quote(p) for p in parts)


def _table(item: ConsoleTable) -> tuple[Table, int]:
    """The rich table of ``item``, cells never wrapped nor cut, and the width it needs."""
    from rich.table import Table

    t = Table(title=item.title)
    widths = []
    for i, col in enumerate(item.columns):
        cells = [len(row[i]) for row in item.rows if i < len(row)]
        w = max([*cells, len(col)])
        widths.append(w)
        t.add_column(col, justify="right", no_wrap=True, min_width=w)
    for row in item.rows:
        t.add_row(*row)
    return t, sum(widths) + 3 * len(widths) + 1
