"""Options and error handling shared by the evidence-store commands (evidence, graph, reproduce)."""

from __future__ import annotations

import sys
from datetime import UTC, datetime
from typing import Any

import click

from aisec.core.errors import AisecError


def _one_line(ctx: click.Context, run: Any) -> Any:
    try:
        return run(ctx)
    except AisecError as exc:
        click.echo(f"error: {exc}", err=True)
        sys.exit(2)


class AisecGroup(click.Group):
    """Turns aisec errors into one line and exit code 2 (also when used outside ``aisec``)."""

    def invoke(self, ctx: click.Context) -> Any:
        return _one_line(ctx, super().invoke)


class AisecCommand(click.Command):
    def invoke(self, ctx: click.Context) -> Any:
        return _one_line(ctx, super().invoke)


def store_option(f: Any) -> Any:
    return click.option("--store", "store_url", envvar="AISEC_STORE_URL", show_envvar=True,
                        help="Store URL (sqlite:///file.db, postgresql://user@host/db) or a SQLite path; "
                             "default: evidence.db in the aisec data folder.")(f)


def key_dir_option(f: Any) -> Any:
    return click.option("--key-dir", type=click.Path(file_okay=False), envvar="AISEC_KEY_DIR", show_envvar=True,
                        help="Folder of the Ed25519 signing key (created on first use).")(f)


def filter_options(f: Any) -> Any:
    for opt in reversed([
        click.option("--model", help="Model sha256 or a prefix of it."),
        click.option("--metric", help="Metric id; * matches anything (robustness.*)."),
        click.option("--check", help="Check name (robustness, privacy, ...)."),
        click.option("--run", "run_id", help="Run id."),
        click.option("--since", type=click.DateTime(), help="Measured at or after (UTC), e.g. 2026-01-31."),
        click.option("--until", type=click.DateTime(), help="Measured at or before (UTC)."),
    ]):
        f = opt(f)
    return f


def filters(kw: dict[str, Any]) -> dict[str, Any]:
    """Pop the :func:`filter_options` values into keyword arguments of ``EvidenceStore.query``."""

    def utc(t: datetime | None) -> datetime | None:
        return t.replace(tzinfo=UTC) if t is not None and t.tzinfo is None else t

    return {"model": kw.pop("model", None), "metric": kw.pop("metric", None), "check": kw.pop("check", None),
            "run_id": kw.pop("run_id", None), "since": utc(kw.pop("since", None)), "until": utc(kw.pop("until", None))}


def open_store(store_url: str | None, key_dir: str | None = None, *, create: bool = True) -> Any:
    """Open the store; read-only commands pass ``create=False`` so a wrong path is an error, not a new file."""
    from aisec.store import open_store as _open_store

    return _open_store(store_url, key_dir=key_dir, create=create)
