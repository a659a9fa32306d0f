"""CLI: aisec evidence list/show/export/import/verify/push, aisec graph, aisec reproduce; and the assess gate."""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner

from aisec.cli.evidence import evidence
from aisec.cli.graph import graph
from aisec.cli.reproduce import reproduce
from aisec.store import open_store
from aisec.testing.evidence import fake_run
from aisec.testing.store_checks import tamper


@pytest.fixture
def env(tmp_path, monkeypatch):
    monkeypatch.setenv("AISEC_KEY_DIR", str(tmp_path / "keys"))
    monkeypatch.setenv("AISEC_HOME", str(tmp_path / "home"))
    url = f"sqlite:///{tmp_path / 'e.db'}"
    monkeypatch.setenv("AISEC_STORE_URL", url)
    s = open_store(url)
    records = fake_run(4, run_id="run-cli")
    s.add_evidence(records)
    s.close()
    return tmp_path, url, records


def _ok(result):
    assert result.exit_code == 0, result.output + (result.stderr if result.stderr_bytes else "")
    return result.output


def test_list_show_export_import_verify(env):
    tmp, _url, records = env
    r = CliRunner()
    assert records[0].id[:8] in _ok(r.invoke(evidence, ["list"]))
    lines = _ok(r.invoke(evidence, ["list", "--json", "--metric", "robustness.*", "--limit", "2"])).splitlines()
    assert len(lines) == 2
    shown = json.loads(_ok(r.invoke(evidence, ["show", records[1].id[:8]])))
    assert shown["evidence"]["id"] == records[1].id and shown["chain"]["seq"] == 2
    _ok(r.invoke(evidence, ["export", "-o", str(tmp / "b.jsonl")]))
    _ok(r.invoke(evidence, ["export", "--format", "clouditor", "-o", str(tmp / "c.json")]))
    assert json.loads((tmp / "c.json").read_text())[0]["toolId"] == "aisec"
    other = f"sqlite:///{tmp / 'other.db'}"
    assert "4 added" in _ok(r.invoke(evidence, ["import", "--store", other, str(tmp / "b.jsonl")]))
    assert "0 added, 4 already present" in _ok(r.invoke(evidence, ["import", "--store", other, str(tmp / "b.jsonl")]))
    assert _ok(r.invoke(evidence, ["verify"])).startswith("OK")
    assert _ok(r.invoke(evidence, ["verify", "--bundle", str(tmp / "b.jsonl")])).startswith("OK")
    assert "BEGIN PUBLIC KEY" in _ok(r.invoke(evidence, ["key"]))


def test_verify_exits_4_and_names_the_record(env):
    _, url, records = env
    s = open_store(url)
    tamper(s, "remove_middle")
    s.close()
    res = CliRunner().invoke(evidence, ["verify"])
    assert res.exit_code == 4 and f"removed {records[1].id}" in res.output


def test_store_and_push_errors_are_one_line_exit_2(env, tmp_path):
    r = CliRunner()
    res = r.invoke(evidence, ["list", "--store", "nosuchdialect://x/y"])
    assert res.exit_code == 2 and "error:" in res.stderr
    res = r.invoke(evidence, ["show", "does-not-exist"])
    assert res.exit_code == 2 and "no evidence" in res.stderr
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    outbox = tmp_path / "outbox.json"
    res = r.invoke(evidence, ["push", "--to", f"http://127.0.0.1:{port}", "--token", "t", "--retries", "0",
                              "--outbox", str(outbox)])
    assert res.exit_code == 2 and "cannot reach" in res.stderr
    assert len(json.loads(outbox.read_text())) == 1  # nothing lost: the message waits in the outbox


def test_graph_command(env, tmp_path):
    r = CliRunner()
    assert "AIC4/SR-05" in _ok(r.invoke(graph, []))
    assert "metric (4)" in _ok(r.invoke(graph, ["--node", "AIC4/SR-05"]))
    _ok(r.invoke(graph, ["--format", "graphml", "-o", str(tmp_path / "g.graphml")]))
    assert (tmp_path / "g.graphml").read_text().startswith("<?xml")
    doc = json.loads(_ok(r.invoke(graph, ["--format", "jsonld"])))
    assert "@graph" in doc
    res = r.invoke(graph, ["--node", "nope"])
    assert res.exit_code == 2


def test_reproduce_refusal_exit_2(env):
    _, _, records = env
    res = CliRunner().invoke(reproduce, [records[0].id])
    assert res.exit_code == 2 and "no recorded plan" in res.stderr


def test_gate_validates_first_then_stores_and_judges(env, tmp_path):
    from dataclasses import dataclass, field
    from pathlib import Path

    from aisec.policy.gate import Gate
    from aisec.policy.rules import EXIT_POLICY_FAILED, UnknownMetricError

    bad = tmp_path / "bad.yaml"
    bad.write_text("rules: [{metric: robustness.nope, operator: '>=', target: 1}]\n")
    with pytest.raises(UnknownMetricError):
        Gate.open(policy=bad)
    good = tmp_path / "good.yaml"
    good.write_text("rules: [{metric: robustness.robust_accuracy, operator: '>=', target: 0.75}]\n")
    _, url, _ = env
    gate = Gate.open(policy=good, store=url)

    @dataclass
    class FakeRun:
        run_id: str
        plan: object
        evidence: list
        out: Path | None
        errors: list = field(default_factory=list)

    out = tmp_path / "report"
    out.mkdir()
    records = fake_run(3, run_id="gated")  # 0.9, 0.8, 0.7: the worst (0.7) fails >= 0.75
    rec = gate.recorder(None, out)
    rec(records[:2])  # as each check finishes
    outcome = gate.finish(FakeRun("gated", None, records, out))
    assert outcome.exit_code == EXIT_POLICY_FAILED
    assert len(outcome.stored.added) == 1 and len(outcome.stored.skipped) == 2
    assert json.loads((out / "policy.json").read_text())["passed"] is False
    assert "robustness.robust_accuracy" in (out / "policy.md").read_text()


# -- verify is strict by default; each kind of failure has its own exit code --------------------------------


def _verify(*args):
    return CliRunner().invoke(evidence, ["verify", *args])


def test_verify_help_documents_the_exit_codes():
    out = _ok(CliRunner().invoke(evidence, ["verify", "--help"]))
    for code in ("4", "5", "6", "7", "8", "9"):
        assert f"  {code}  " in out


def test_verify_missing_path_and_zero_byte_db_never_create_a_store(env, tmp_path):
    from aisec.cli.evidence import EXIT_NO_STORE, EXIT_NOT_A_STORE

    missing = tmp_path / "nowhere" / "e.db"
    for cmd in (["verify"], ["list"], ["show", "abcd"]):
        res = CliRunner().invoke(evidence, [*cmd, "--store", str(missing)])
        assert res.exit_code == (EXIT_NO_STORE if cmd == ["verify"] else 2), res.output
        assert "does not exist" in res.stderr
    assert not missing.exists() and not missing.parent.exists()
    empty = tmp_path / "zero.db"
    empty.write_bytes(b"")
    res = _verify("--store", str(empty))
    assert res.exit_code == EXIT_NOT_A_STORE and "0-byte" in res.stderr
    assert empty.stat().st_size == 0
    junk = tmp_path / "junk.db"
    junk.write_bytes(b"not a database at all" * 100)
    assert _verify("--store", str(junk)).exit_code == EXIT_NOT_A_STORE


def test_verify_emptied_store_and_store_tamperings(env, tmp_path):
    from aisec.cli.evidence import EXIT_EMPTY, EXIT_TAMPERED
    from aisec.testing.store_checks import tamper_store

    _, url, _ = env
    s = open_store(url)
    tamper_store(s, "empty_store")
    s.close()
    assert _verify().exit_code == EXIT_EMPTY
    fresh = tmp_path / "fresh.db"
    s = open_store(str(fresh))
    s.close()
    assert _verify("--store", str(fresh)).exit_code == EXIT_EMPTY  # nothing to vouch for either
    s = open_store(url)
    from aisec.testing.store_checks import fill_store

    fill_store(s)
    tamper_store(s, "edit_plan")
    s.close()
    res = _verify()
    assert res.exit_code == EXIT_TAMPERED and "run-tamper" in res.output


def test_verify_with_the_signing_key_deleted_or_its_pub_file_replaced(env, tmp_path, monkeypatch):
    """Deleting the key (so the store's key is known only from the store) or swapping ed25519.pub never passes."""
    import shutil

    from aisec.cli.evidence import EXIT_UNTRUSTED
    from aisec.store import Signer

    keys = tmp_path / "keys"
    shutil.move(keys, tmp_path / "keys-away")
    res = _verify()
    assert res.exit_code == EXIT_UNTRUSTED and "not in your trust store" in res.output
    assert _verify("--allow-untrusted").exit_code == 0
    shutil.move(tmp_path / "keys-away", keys)
    Signer.load_or_create(tmp_path / "attacker")
    shutil.copy(tmp_path / "attacker" / "ed25519.pub", keys / "ed25519.pub")
    res = _verify()
    assert res.exit_code == 2 and "was replaced" in res.stderr


def test_verify_pinned_head_file(env, tmp_path):
    from aisec.cli.evidence import EXIT_TAMPERED

    pinned = tmp_path / "head.json"
    pinned.write_text(_ok(_verify("--json")))
    assert json.loads(pinned.read_text())["exit_code"] == 0
    assert _verify("--head", str(pinned)).exit_code == 0
    res = _verify("--head", "ab" * 32)
    assert res.exit_code == EXIT_TAMPERED and "pinned head" in res.output
    assert _verify("--head", "nonsense").exit_code == 2


def test_trust_add_list_remove(env, tmp_path):
    from aisec.store import Signer

    r = CliRunner()
    other = Signer.load_or_create(tmp_path / "colleague")
    out = _ok(r.invoke(evidence, ["trust", "list"]))
    assert "(own signing key)" in out and other.key_id not in out
    res = r.invoke(evidence, ["trust", "add", str(tmp_path / "colleague" / "ed25519.pub"), "--fingerprint", "00" * 8])
    assert res.exit_code == 2 and "not the expected" in res.stderr
    assert other.key_id in _ok(r.invoke(evidence, ["trust", "add", str(tmp_path / "colleague" / "ed25519.pub")]))
    assert other.key_id in _ok(r.invoke(evidence, ["trust", "list"]))
    assert "removed" in _ok(r.invoke(evidence, ["trust", "remove", other.key_id]))
    assert other.key_id not in _ok(r.invoke(evidence, ["trust", "list"]))
    assert r.invoke(evidence, ["trust", "remove", other.key_id]).exit_code == 2


# -- bundles: signed as a whole; import keeps the original signer ---------------------------------------------


def _bundle_lines(path):
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def _write_lines(path, objs):
    path.write_text("".join(json.dumps(o, sort_keys=True) + "\n" for o in objs))


def _export(tmp):
    b = tmp / "b.jsonl"
    _ok(CliRunner().invoke(evidence, ["export", "-o", str(b)]))
    return b


def test_bundle_tamperings_fail_default_verify(env, tmp_path):
    """Edit a record; delete records and claim partial with no head; add a key; edit the header; drop the signature."""
    from aisec.cli.evidence import EXIT_TAMPERED, EXIT_UNTRUSTED

    b = _export(tmp_path)
    assert _verify("--bundle", str(b)).exit_code == 0
    original = _bundle_lines(b)
    cases = {}
    lines = [dict(o) for o in original]
    rec = dict(lines[2]["record"])
    rec["body"] = rec["body"].replace('"value":0.8', '"value":0.85')
    lines[2] = {"record": rec}
    cases["edit_record"] = (lines, EXIT_TAMPERED)
    header = dict(original[0], partial=True, head=None)
    cases["delete_records_partial_no_head"] = ([header, original[1], original[-1]], EXIT_TAMPERED)
    from aisec.store import Signer

    attacker = Signer.load_or_create(tmp_path / "attacker")
    header = dict(original[0], keys={**original[0]["keys"], attacker.key_id: attacker.public_pem})
    cases["add_key"] = ([header, *original[1:]], EXIT_TAMPERED)
    header = dict(original[0], store="sqlite:///elsewhere.db")
    runs = [dict(r, status="complete") for r in header["runs"]]
    cases["edit_header"] = ([dict(header, runs=runs), *original[1:]], EXIT_TAMPERED)
    cases["drop_signature"] = (original[:-1], EXIT_TAMPERED)
    detected = 0
    for name, (objs, want) in cases.items():
        f = tmp_path / f"{name}.jsonl"
        _write_lines(f, objs)
        res = _verify("--bundle", str(f))
        assert res.exit_code == want, (name, res.output)
        detected += res.exit_code != 0
    assert detected == len(cases)
    # a whole bundle forged and signed by the attacker, whose key it lists: untrusted, never accepted silently
    forged_store = f"sqlite:///{tmp_path / 'forged.db'}"
    res = CliRunner().invoke(evidence, ["import", "--store", forged_store, "--key-dir", str(tmp_path / "attacker"),
                                        str(b), "--trust-key", Signer.load_or_create(tmp_path / "keys").key_id])
    _ok(res)
    forged = tmp_path / "forged.jsonl"
    _ok(CliRunner().invoke(evidence, ["export", "--store", forged_store, "--key-dir", str(tmp_path / "attacker"),
                                      "-o", str(forged)]))
    res = _verify("--bundle", str(forged))
    assert res.exit_code == EXIT_UNTRUSTED and attacker.key_id in res.output


def test_import_refuses_a_foreign_bundle_without_trust_key_and_keeps_its_signature(env, tmp_path, monkeypatch):
    from aisec.store import Signer

    _, url, records = env
    b = _export(tmp_path)
    origin = Signer.load_or_create(tmp_path / "keys")
    other_keys = tmp_path / "auditor-keys"
    other = f"sqlite:///{tmp_path / 'auditor.db'}"
    r = CliRunner()
    res = r.invoke(evidence, ["import", "--store", other, "--key-dir", str(other_keys), str(b)])
    assert res.exit_code == 2 and "--trust-key" in res.stderr and origin.key_id in res.stderr
    res = r.invoke(evidence, ["import", "--store", other, "--key-dir", str(other_keys), str(b),
                              "--trust-key", "ff" * 8])
    assert res.exit_code == 2 and "no key with that fingerprint" in res.stderr
    out = _ok(r.invoke(evidence, ["import", "--store", other, "--key-dir", str(other_keys), str(b),
                                  "--trust-key", origin.key_id]))
    assert f"4 added (4 signed by {origin.key_id})" in out
    shown = json.loads(_ok(r.invoke(evidence, ["show", "--store", other, records[0].id])))
    assert shown["signed_by"] == origin.key_id
    src = open_store(url)
    assert shown["origin"]["signature"] == src.get_entry(records[0].id).link.signature  # not re-signed
    src.close()
    assert _ok(r.invoke(evidence, ["verify", "--store", other, "--key-dir", str(other_keys)])).startswith("OK")
    # stripping the original signer (to pass the records off as the auditor's own) is detected
    from sqlalchemy import update

    from aisec.store.tables import EvidenceRow

    s = open_store(other, key_dir=other_keys)
    with s.engine.begin() as conn:
        conn.execute(update(EvidenceRow).where(EvidenceRow.id == records[0].id).values(origin=None))
    s.close()
    assert r.invoke(evidence, ["verify", "--store", other, "--key-dir", str(other_keys)]).exit_code == 4
