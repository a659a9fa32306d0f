"""The ``aisec`` command line. It calls the Python API only; errors become one clear line.

Every command lives in its own module and is imported only when it runs (click's lazy-group
pattern), so ``aisec --help`` and ``aisec evidence list`` never load torch or the checks.

Exit codes: 0 success, 1 an unexpected failure, 2 a usage/config/data/model error, 3 a failed policy.
Every failure is one line on stderr (``error: ...``); ``aisec --debug <command>`` (or
``AISEC_DEBUG=1``) also prints the traceback of an unexpected one.
"""

from __future__ import annotations

import importlib
import os
import sys
import traceback
from typing import Any

import click

from aisec.core.errors import AisecError

#: command name -> "module:attribute" of its click command, in the order ``aisec --help`` lists them.
COMMANDS: dict[str, str] = {
    "assess": "aisec.cli.assess:assess",
    "plan": "aisec.cli.plan:plan",
    "threats": "aisec.cli.threats:threats",
    "demo": "aisec.cli.demo:demo",
    "scan": "aisec.cli.scan:scan_command",
    "detect-backdoor": "aisec.cli.detect_backdoor:detect_backdoor",
    "defend": "aisec.cli.defend:defend",
    "model-scan": "aisec.cli.model_scan:model_scan",
    "evidence": "aisec.cli.evidence:evidence",
    "graph": "aisec.cli.graph:graph",
    "reproduce": "aisec.cli.reproduce:reproduce",
    "campaign": "aisec.cli.campaign:campaign",
    "compare": "aisec.cli.compare:compare",
    "report": "aisec.cli.report:report",
    "plugins": "aisec.cli.plugins:plugins",
    "serve": "aisec.cli.serve:serve",
}

#: one-line summaries for ``aisec --help`` without importing every command
_SUMMARIES: dict[str, str] = {
    "assess": "Assess a model: run checks, write evidence.jsonl, samples/ and report.html.",
    "plan": "Write the plan that tests a threat model (--threat-model FILE), with a reason per choice.",
    "threats": "The threat knowledge base: list, or show one threat's checks and countermeasures.",
    "demo": "Train (cached) small CNNs on digits, assess them, write one report.",
    "scan": "Run black-box attacks over all samples and print a Counterfit-style summary.",
    "detect-backdoor": "Report suspected backdoor target classes and the samples that carry a trigger.",
    "defend": "Train a defended copy of a model (adversarial training, TRADES, noise) and write it.",
    "model-scan": "Scan model files for code they would run when loaded, without loading them.",
    "evidence": "Query, export, verify and push stored evidence.",
    "graph": "Link stored evidence to models, runs, requirements and threats.",
    "reproduce": "Re-run the plan behind a stored evidence record and compare.",
    "campaign": "Run a campaign file (models x defences x checks), resumable, and rank it (leaderboard).",
    "compare": "Compare two runs metric by metric: differences, CIs, paired McNemar on shared samples.",
    "report": "Re-render a run folder's report from its result.json (another policy, a newer aisec).",
    "plugins": "List every attack, method and check with what it needs.",
    "serve": "Serve the web UI and JSON API (runs execute in worker processes).",
}


class LazyGroup(click.Group):
    """A group whose subcommands are imported on first use; aisec errors become one line and exit 2."""

    def __init__(self, *args: Any, lazy: dict[str, str], **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.lazy = lazy

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        ctx.meta["aisec.args"] = list(args)  # kept for the one-line error of an unexpected failure
        return super().parse_args(ctx, args)

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
        """Run the command; an aisec error is one line and exit 2, anything unexpected one line naming
        the command and its inputs and exit 1 (the traceback only with ``--debug``). Click's own usage
        errors, ``--help`` and explicit exits pass through unchanged."""
        try:
            return super().invoke(ctx)
        except (click.exceptions.ClickException, click.exceptions.Exit, click.exceptions.Abort, SystemExit):
            raise
        except AisecError as exc:
            if _debug(ctx):
                traceback.print_exc()
            click.echo(f"error: {one_line(str(exc))}", err=True)
            sys.exit(2)
        except KeyboardInterrupt:
            click.echo("error: interrupted", err=True)
            sys.exit(130)
        except Exception as exc:
            if _debug(ctx):
                traceback.print_exc()
            what = _inputs(ctx)
            detail = one_line(str(exc)) or "(no message)"
            hint = "" if _debug(ctx) else "; rerun with aisec --debug for the traceback"
            click.echo(f"error: unexpected {type(exc).__name__} in {what}: {detail[:500]}{hint}", err=True)
            sys.exit(1)


def one_line(message: str) -> str:
    """A message on one line: the first line, then the other lines joined by '; '."""
    lines = [ln.strip() for ln in message.splitlines() if ln.strip()]
    if len(lines) <= 1:
        return lines[0] if lines else ""
    head = lines[0]
    return f"{head} {'; '.join(lines[1:])}" if head.endswith(":") else "; ".join(lines)


def _debug(ctx: click.Context) -> bool:
    return bool(ctx.params.get("debug")) or os.environ.get("AISEC_DEBUG", "") not in ("", "0")


_INPUT_OPTIONS = ("-m", "--model", "-d", "--data", "--plan", "--threat-model", "--policy", "-o", "--out")


def _inputs(ctx: click.Context) -> str:
    """``'aisec assess' (--model m.pt, --data d/)``: the command and the inputs it was given, for the error line."""
    args: list[str] = list(ctx.meta.get("aisec.args", []))
    name = next((a for a in args if not a.startswith("-")), "")
    given = []
    for i, a in enumerate(args):
        key, eq, val = a.partition("=")
        if key in _INPUT_OPTIONS:
            v = val if eq else (args[i + 1] if i + 1 < len(args) else "")
            given.append(f"{key} {v}")
    cmd = f"'aisec {name}'" if name else "'aisec'"
    return f"{cmd} ({', '.join(given)})" if given else cmd


@click.group(cls=LazyGroup, lazy=COMMANDS, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="aisec")
@click.option("--debug", is_flag=True, help="Print the traceback of an unexpected error (also AISEC_DEBUG=1).")
def main(debug: bool) -> None:
    """aisec: measure the security of trained ML models and write audit evidence."""


if __name__ == "__main__":
    main()
