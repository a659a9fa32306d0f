"""The ``aisec`` command line. It calls the Python API only; errors become one clear line.

Every command lives in its own module and is imported only when it runs (click's lazy-group
pattern), so ``aisec --help`` and ``aisec evidence list`` never load torch or the checks.

Exit codes: 0 success, 1 an unexpected failure, 2 a usage/config/data/model error, 3 a failed policy.
"""

from __future__ import annotations

import importlib
import sys
from typing import Any

import click

from aisec.core.errors import AisecError

#: command name -> "module:attribute" of its click command, in the order ``aisec --help`` lists them.
COMMANDS: dict[str, str] = {
    "assess": "aisec.cli.assess:assess",
    "demo": "aisec.cli.demo:demo",
    "scan": "aisec.cli.scan:scan_command",
    "detect-backdoor": "aisec.cli.detect_backdoor:detect_backdoor",
    "model-scan": "aisec.cli.model_scan:model_scan",
    "evidence": "aisec.cli.evidence:evidence",
    "graph": "aisec.cli.graph:graph",
    "reproduce": "aisec.cli.reproduce:reproduce",
    "plugins": "aisec.cli.plugins:plugins",
}

#: one-line summaries for ``aisec --help`` without importing every command
_SUMMARIES: dict[str, str] = {
    "assess": "Assess a model: run checks, write evidence.jsonl, samples/ and report.html.",
    "demo": "Train (cached) small CNNs on digits, assess them, write one report.",
    "scan": "Run black-box attacks over all samples and print a Counterfit-style summary.",
    "detect-backdoor": "Report suspected backdoor target classes and the samples that carry a trigger.",
    "model-scan": "Scan model files for code they would run when loaded, without loading them.",
    "evidence": "Query, export, verify and push stored evidence.",
    "graph": "Link stored evidence to models, runs, requirements and threats.",
    "reproduce": "Re-run the plan behind a stored evidence record and compare.",
    "plugins": "List every attack, method and check with what it needs.",
}


class LazyGroup(click.Group):
    """A group whose subcommands are imported on first use; aisec errors become one line and exit 2."""

    def __init__(self, *args: Any, lazy: dict[str, str], **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.lazy = lazy

    def list_commands(self, ctx: click.Context) -> list[str]:
        return [*self.lazy, *(c for c in super().list_commands(ctx) if c not in self.lazy)]

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        if cmd_name in self.lazy:
            module, _, attr = self.lazy[cmd_name].partition(":")
            cmd = getattr(importlib.import_module(module), attr)
            if not isinstance(cmd, click.Command):
                raise TypeError(f"{self.lazy[cmd_name]} is not a click command")
            return cmd
        return super().get_command(ctx, cmd_name)

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        rows = [(name, _SUMMARIES.get(name, "")) for name in self.lazy]
        with formatter.section("Commands"):
            formatter.write_dl(rows)

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except AisecError as exc:
            click.echo(f"error: {exc}", err=True)
            sys.exit(2)


@click.group(cls=LazyGroup, lazy=COMMANDS, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="aisec")
def main() -> None:
    """aisec: measure the security of trained ML models and write audit evidence."""


if __name__ == "__main__":
    main()
