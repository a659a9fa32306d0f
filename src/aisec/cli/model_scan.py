"""``aisec model-scan PATH``: what a model file would run when loaded, found without loading it.

Exit codes: 0 nothing at ``--fail-at`` or worse, 3 unsafe findings (as a failed policy), 2 bad input.
"""

from __future__ import annotations

import json
import sys

import click

from aisec.cli.store_options import AisecCommand
from aisec.targets.file_scan import SEVERITIES

_STYLE = {"critical": "bold red", "high": "red", "medium": "yellow", "low": "cyan", "info": "dim"}


@click.command("model-scan", cls=AisecCommand)
@click.argument("paths", nargs=-1, required=True, type=click.Path(exists=True))
@click.option("--fail-at", type=click.Choice(list(SEVERITIES)), default="high", show_default=True,
              help="Findings at this severity or worse make the exit code 3.")
@click.option("--json", "as_json", is_flag=True, help="Print the findings as JSON.")
@click.option("--all", "show_all", is_flag=True, help="Also list info findings (allow-listed pickles).")
def model_scan(paths: tuple[str, ...], fail_at: str, as_json: bool, show_all: bool) -> None:
    """Scan model files or folders for code they would run when loaded (pickle payloads, remote code)."""
    from aisec.checks.model_scan import ModelScanParams, ModelScanSummary, scan_result
    from aisec.report.sections import summary_of
    from aisec.targets.file_scan import scan_model_path

    results = [scan_result(scan_model_path(p), ModelScanParams.model_validate({"path": p, "fail_at": fail_at}))
               for p in paths]
    summaries = [summary_of(r, ModelScanSummary) for r in results]
    unsafe = sum(s.unsafe for s in summaries)
    if as_json:
        click.echo(json.dumps([s.to_json() for s in summaries]))
    else:
        from rich.console import Console
        from rich.markup import escape

        console = Console()
        for s in summaries:
            worst = s.max_severity or "nothing found"
            console.print(f"[bold]{escape(s.path)}[/]: {len(s.files)} file(s), worst: "
                          f"[{_STYLE.get(worst, 'green')}]{worst}[/]")
            for f in s.findings:
                if f.severity == "info" and not show_all:
                    continue
                console.print(f"  [{_STYLE[f.severity]}]{f.severity:8s}[/] {escape(f.file)}: {escape(f.summary)}")
        console.print(f"scanner: {summaries[0].scanner} ({summaries[0].scanner_version})")
    if unsafe:
        sys.exit(3)
