"""``aisec evidence``: list, show, export, import, verify and push stored evidence; manage trusted keys.

Exit codes: 0 success; 2 a usage, store or push error (one line on stderr). ``verify`` adds: 4
tampering found, 5 signed by a key not in your trust store, 6 no store at that path, 7 not an
evidence store (e.g. a 0-byte file), 8 empty store, 9 chain head missing.
Read-only commands (``list``, ``show``, ``export``, ``verify``, ``push``) never create a store.
"""

from __future__ import annotations

import json
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import click

from aisec.cli.store_options import AisecGroup, filter_options, filters, key_dir_option, open_store, store_option
from aisec.store.chain import (
    EXIT_EMPTY,
    EXIT_NO_HEAD,
    EXIT_NO_STORE,
    EXIT_NOT_A_STORE,
    EXIT_TAMPERED,
    EXIT_UNTRUSTED,
)

__all__ = ["EXIT_EMPTY", "EXIT_NOT_A_STORE", "EXIT_NO_HEAD", "EXIT_NO_STORE", "EXIT_TAMPERED", "EXIT_UNTRUSTED",
           "evidence"]


@click.group(cls=AisecGroup)
def evidence() -> None:
    """Query, export, verify and push stored evidence."""


@evidence.command("list")
@store_option
@filter_options
@click.option("--limit", type=int, help="At most this many records.")
@click.option("--json", "as_json", is_flag=True, help="JSON lines, one record per line.")
def list_(store_url: str | None, limit: int | None, as_json: bool, **kw: Any) -> None:
    """List records, oldest first."""
    store = open_store(store_url, create=False)
    rows = store.query(**filters(kw), limit=limit)
    if as_json:
        for r in rows:
            click.echo(r.evidence.model_dump_json())
        return
    from rich.console import Console
    from rich.table import Table

    t = Table(title=f"{len(rows)} record(s) in {store.display_url}")
    for col in ("#", "id", "time (UTC)", "model", "metric", "value", "95% CI", "parameters"):
        t.add_column(col)
    for r in rows:
        e = r.evidence
        ci = f"{e.interval.low:.3g}–{e.interval.high:.3g}" if e.interval else ""
        params = ", ".join(f"{k}={v}" for k, v in e.parameters.items() if k in ("attack", "norm", "eps", "targeted"))
        t.add_row(str(r.link.seq), e.id[:8], e.timestamp.strftime("%Y-%m-%d %H:%M:%S"),
                  f"{e.resource.model_name} {e.resource.model_sha256[:8]}", e.metric, f"{e.value:.4g}", ci, params)
    Console().print(t)


@evidence.command()
@store_option
@click.argument("evidence_id")
def show(store_url: str | None, evidence_id: str) -> None:
    """Print one record (id or unique prefix) with its chain link, original signer and run as JSON."""
    store = open_store(store_url, create=False)
    entry = store.get_entry(evidence_id)
    run = store.run(entry.evidence.run_id)
    click.echo(json.dumps({"evidence": entry.evidence.model_dump(mode="json"), "chain": entry.link.model_dump(),
                           "signed_by": entry.signed_by,
                           "origin": entry.origin.model_dump() if entry.origin is not None else None,
                           "source": entry.source, "stored_at": entry.stored_at.isoformat(),
                           "run": run.model_dump(mode="json")}, indent=2, default=str))


@evidence.command()
@store_option
@key_dir_option
@filter_options
@click.option("-o", "--out", "out_file", type=click.Path(dir_okay=False), required=True, help="File to write.")
@click.option("--format", "fmt", type=click.Choice(["bundle", "jsonl", "clouditor"]), default="bundle",
              show_default=True, help="bundle: signed records with chain, keys and artifacts (re-importable); "
              "jsonl: plain evidence records; clouditor: Clouditor Evidence messages (JSON array).")
@click.option("--eps", "eps", multiple=True, help="Reference budget for Clouditor properties, e.g. linf=0.1.")
def export(store_url: str | None, key_dir: str | None, out_file: str, fmt: str, eps: tuple[str, ...],
           **kw: Any) -> None:
    """Export records (all, or those matching the filters); bundles are signed with your key."""
    store = open_store(store_url, key_dir, create=False)
    chosen = filters(kw)
    if fmt == "bundle":
        n = store.export_bundle(out_file, **chosen)
    elif fmt == "jsonl":
        rows = store.query(**chosen)
        from aisec.core.evidence import write_jsonl

        Path(out_file).unlink(missing_ok=True)
        write_jsonl([r.evidence for r in rows], out_file)
        n = len(rows)
    else:
        msgs = _clouditor_messages(store, chosen, eps)
        Path(out_file).write_text(json.dumps(msgs, indent=2), encoding="utf-8")
        n = len(msgs)
    click.echo(f"wrote {n} {'message' if fmt == 'clouditor' else 'record'}(s) to {out_file}")


@evidence.command("import")
@store_option
@key_dir_option
@click.argument("paths", nargs=-1, required=True, type=click.Path(exists=True))
@click.option("--force", is_flag=True, help="Import a bundle even if it fails verification (its records keep "
              "their signatures, so verify names them). Does not accept untrusted keys.")
@click.option("--trust-key", "trust_keys", multiple=True, metavar="FINGERPRINT",
              help="Trust the bundle's key with this id or sha256 fingerprint (check it with the sender first) and "
              "add it to your trust store; repeatable.")
def import_(store_url: str | None, key_dir: str | None, paths: tuple[str, ...], force: bool,
            trust_keys: tuple[str, ...]) -> None:
    """Import bundles, evidence.jsonl files or `aisec assess` out folders (re-running it adds only what is missing).

    Bundles must be signed by a key in your trust store (or one given with --trust-key); imported
    records keep their original signer and signature. Plain evidence.jsonl files and out folders
    are unsigned input: their records are signed by your key with source import:NAME.
    """
    store = open_store(store_url, key_dir)
    for p in paths:
        res = store.import_path(p, force=force, trust_keys=trust_keys)
        by = ", ".join(f"{n} signed by {kid}" for kid, n in sorted(res.signers.items()))
        click.echo(f"{p}: {len(res.added)} added{f' ({by})' if by else ''}, {len(res.skipped)} already present, "
                   f"{res.artifacts_added} artifact(s) added")
        for run_id, (a, k) in res.runs.items():
            click.echo(f"  run {run_id}: {a} added, {k} already present")


@evidence.command(epilog="""\b
Exit codes:
  0  intact, every signature by a trusted key
  2  usage or store error
  4  tampering: a record, run, head or bundle was edited, removed, inserted or reordered
  5  signed by a key not in your trust store (--allow-untrusted: a warning)
  6  no store at that path or URL (nothing is created)
  7  not an evidence store (a 0-byte or foreign file)
  8  empty store: no records, no runs, no signed head
  9  the chain head row is missing""")
@store_option
@key_dir_option
@click.option("--bundle", type=click.Path(exists=True, dir_okay=False), help="Verify an exported bundle instead.")
@click.option("--trust", multiple=True, type=click.Path(exists=True, dir_okay=False),
              help="Also trust this public key (.pub PEM) for this run; repeatable.")
@click.option("--allow-untrusted", is_flag=True,
              help="Signatures by keys found only in the store or bundle are warnings, not failures.")
@click.option("--strict", is_flag=True, hidden=True, help="Kept for old scripts: strict is the default now.")
@click.option("--head", "pinned", metavar="HASH|FILE",
              help="A head kept elsewhere (its last_hash, or the JSON of an earlier `verify --json`): it must still "
              "be in the chain, which detects cutting off the newest records even with the signing key.")
@click.option("--json", "as_json", is_flag=True)
def verify(store_url: str | None, key_dir: str | None, bundle: str | None, trust: tuple[str, ...],
           allow_untrusted: bool, strict: bool, pinned: str | None, as_json: bool) -> None:
    """Check the hash chain and every signature; name every edited, removed, inserted or reordered record or run.

    Only keys in your trust store (your own key and `aisec evidence trust add`) are trusted; keys
    listed inside a store or bundle never are by that fact alone.
    """
    from aisec.store import NotAStore, StoreMissing
    from aisec.store.chain import VerifyReport

    report: VerifyReport
    if bundle:
        from aisec.store import read_bundle

        report = read_bundle(bundle).verify(key_dir, trusted_key_files=trust, allow_untrusted=allow_untrusted)
    else:
        try:
            store = open_store(store_url, key_dir, create=False)
        except StoreMissing as exc:
            click.echo(f"error: {exc}", err=True)
            sys.exit(EXIT_NO_STORE)
        except NotAStore as exc:
            click.echo(f"error: {exc}", err=True)
            sys.exit(EXIT_NOT_A_STORE)
        report = store.verify(trusted_key_files=trust, allow_untrusted=allow_untrusted,
                              pinned_head=_pinned_head(pinned))
    if as_json:
        click.echo(json.dumps({**report.model_dump(mode="json"), "exit_code": report.exit_code}, indent=2))
    else:
        click.echo(report.text())
    if not report.ok:
        sys.exit(report.exit_code)


def _pinned_head(value: str | None) -> Any:
    """``--head``: a 64-digit hash, or a JSON file holding a head (or a `verify --json` report with one)."""
    if not value:
        return None
    from aisec.store import Head

    p = Path(value)
    if p.is_file():
        try:
            obj = json.loads(p.read_text(encoding="utf-8"))
            return Head.model_validate(obj.get("head", obj))
        except (ValueError, AttributeError) as exc:
            raise click.BadParameter(f"{p} holds no head: expected the JSON of `aisec evidence verify --json` "
                                     f"({exc})", param_hint="--head") from exc
    h = value.strip().lower()
    if len(h) != 64 or any(c not in "0123456789abcdef" for c in h):
        raise click.BadParameter(f"'{value}' is neither a file nor a 64-digit head hash (last_hash)",
                                 param_hint="--head")
    return h


@evidence.command()
@store_option
@key_dir_option
@filter_options
@click.option("--to", "url", envvar="AISEC_CLOUDITOR_URL", show_envvar=True,
              help="Clouditor base URL (e.g. http://localhost:8080) or the evidence endpoint.")
@click.option("--client-id", envvar="AISEC_CLOUDITOR_CLIENT_ID", show_envvar=True)
@click.option("--client-secret", envvar="AISEC_CLOUDITOR_CLIENT_SECRET", show_envvar=True)
@click.option("--token-url", help="OAuth 2.0 token endpoint (default: <url>/v1/auth/token).")
@click.option("--token", envvar="AISEC_CLOUDITOR_TOKEN", help="A ready bearer token instead of client credentials.")
@click.option("--from", "from_file", type=click.Path(exists=True, dir_okay=False),
              help="Push messages saved by an earlier failed push (same evidence ids).")
@click.option("--outbox", type=click.Path(dir_okay=False),
              help="Where to save undelivered messages (default: <data dir>/outbox/push-<time>.json).")
@click.option("--retries", type=int, default=4, show_default=True)
@click.option("--eps", "eps", multiple=True, help="Reference budget for Clouditor properties, e.g. linf=0.1.")
def push(store_url: str | None, key_dir: str | None, url: str | None, client_id: str | None,
         client_secret: str | None, token_url: str | None, token: str | None, from_file: str | None,
         outbox: str | None, retries: int, eps: tuple[str, ...], **kw: Any) -> None:
    """Send records to a Clouditor Evidence Store (OAuth 2.0 client credentials, retries with backoff)."""
    from aisec.export.clouditor import PushError
    from aisec.export.clouditor import push as do_push

    if not url:
        raise click.UsageError("give --to URL (or set AISEC_CLOUDITOR_URL)")
    if from_file:
        msgs = json.loads(Path(from_file).read_text(encoding="utf-8"))
    else:
        msgs = _clouditor_messages(open_store(store_url, key_dir, create=False), filters(kw), eps)
    if not msgs:
        click.echo("nothing to push")
        return
    try:
        rep = do_push(url, msgs, client_id=client_id, client_secret=client_secret, token_url=token_url,
                      token=token, retries=retries)
    except PushError as exc:
        saved = _save_outbox(exc.pending, outbox)
        raise type(exc)(f"{exc}\n{len(exc.sent)} sent; {len(exc.pending)} undelivered message(s) saved to {saved} "
                        f"(retry with: aisec evidence push --to {url} --from {saved})",
                        sent=exc.sent, pending=exc.pending, status=exc.status) from exc
    click.echo(f"pushed {len(rep.sent)} evidence message(s) to {rep.url}")


@evidence.command()
@key_dir_option
def key(key_dir: str | None) -> None:
    """Print this machine's public signing key (give it to auditors to trust: <key dir>/trusted/NAME.pub)."""
    from aisec.store import Signer
    from aisec.store.keys import fingerprint

    s = Signer.load_or_create(key_dir)
    click.echo(f"# key id {s.key_id} ({s.path})")
    click.echo(f"# fingerprint sha256:{fingerprint(s.public)}")
    click.echo(s.public_pem, nl=False)


@evidence.group(cls=AisecGroup)
def trust() -> None:
    """Your trust store: the public keys whose signatures verify and import accept (<key dir>/trusted/)."""


@trust.command("add")
@key_dir_option
@click.argument("pub_file", type=click.Path(exists=True, dir_okay=False))
@click.option("--fingerprint", "expect", metavar="FINGERPRINT",
              help="Refuse unless the key has this id or sha256 fingerprint (as its owner told you).")
def trust_add(key_dir: str | None, pub_file: str, expect: str | None) -> None:
    """Trust the Ed25519 public key in PUB_FILE (PEM, as `aisec evidence key` prints it)."""
    from aisec.store import SigningKeyError
    from aisec.store import keys as keymod

    pem = Path(pub_file).read_bytes()
    found = keymod.fingerprint(keymod.load_public_pem(pem))
    if expect and not found.startswith(keymod.normalize_fingerprint(expect)):
        raise SigningKeyError(f"{pub_file} holds key sha256:{found}, not the expected {expect}; not added")
    t = keymod.add_trusted(pem, key_dir)
    click.echo(f"trusted {t.key_id} (sha256:{t.fingerprint}) -> {t.path}")


@trust.command("list")
@key_dir_option
def trust_list(key_dir: str | None) -> None:
    """List trusted keys: id, sha256 fingerprint, file."""
    from aisec.store import keys as keymod

    for t in keymod.list_trusted(key_dir):
        click.echo(f"{t.key_id}  sha256:{t.fingerprint}  {t.path}{'  (own signing key)' if t.own else ''}")


@trust.command("remove")
@key_dir_option
@click.argument("which", metavar="FINGERPRINT|FILE")
def trust_remove(key_dir: str | None, which: str) -> None:
    """Stop trusting a key (by key id, sha256 fingerprint or .pub file)."""
    from aisec.store import keys as keymod

    for t in keymod.remove_trusted(which, key_dir):
        click.echo(f"removed {t.key_id} (sha256:{t.fingerprint}) from the trust store")


def _clouditor_messages(store: Any, filters: dict[str, Any], eps: tuple[str, ...]) -> list[dict[str, Any]]:
    from aisec.export.clouditor import to_clouditor
    from aisec.policy.properties import Reference

    ref = Reference()
    if eps:
        budgets = dict(ref.eps)
        for item in eps:
            norm, _, value = item.partition("=")
            try:
                budgets[norm.strip()] = float(value)
            except ValueError as exc:
                raise click.BadParameter(f"'{item}' is not NORM=EPS", param_hint="--eps") from exc
        ref = Reference(eps=budgets)
    rows = store.query(**filters)
    return to_clouditor(rows, reference=ref, signer=store.signer, head=store.head(), keys=store.public_keys())


def _save_outbox(msgs: list[dict[str, Any]], path: str | None) -> Path:
    from aisec.store.paths import data_dir

    p = Path(path) if path else data_dir() / "outbox" / f"push-{datetime.now(UTC):%Y%m%dT%H%M%S%fZ}.json"
    p.parent.mkdir(parents=True, exist_ok=True)
    p.write_text(json.dumps(msgs, indent=2), encoding="utf-8")
    return p
