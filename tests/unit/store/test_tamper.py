"""Tamper evidence: verify passes on an untouched store and names each kind of tampering."""

from __future__ import annotations

import shutil

import pytest

from aisec.store import open_store
from aisec.store.chain import EXIT_EMPTY, EXIT_TAMPERED, EXIT_UNTRUSTED, _lis
from aisec.testing.evidence import fake_run
from aisec.testing.store_checks import STORE_TAMPERINGS, TAMPERINGS, fill_store, tamper, tamper_store


def test_untouched_store_verifies(store):
    store.add_evidence(fake_run(3))
    store.add_evidence(fake_run(3))
    report = store.verify()
    assert report.ok, report.text()
    assert report.records == 6 and report.head.count == 6


def test_empty_store_fails_unless_allowed(store):
    # An emptied store looks exactly like a new one: by default there is nothing to vouch for.
    report = store.verify()
    assert not report.ok and report.exit_code == EXIT_EMPTY and report.issues[0].kind == "empty"
    assert store.verify(allow_empty=True).ok


@pytest.mark.parametrize("how", TAMPERINGS)
def test_each_tampering_is_detected_and_named(store, how):
    store.add_evidence(fake_run(3))
    store.add_evidence(fake_run(3))
    kind, ids = tamper(store, how)
    report = store.verify()
    assert not report.ok
    named = {i.evidence_id for i in report.issues if i.kind == kind}
    assert named & ids, report.text()
    # nothing else is blamed: every issue names one of the touched records (or is a count summary)
    blamed = {i.evidence_id for i in report.issues if i.evidence_id}
    assert blamed <= ids, report.text()


def test_deleting_the_head_row_state_is_detected(store):
    store.add_evidence(fake_run(4))
    from sqlalchemy import update

    from aisec.store.tables import HeadRow

    with store.engine.begin() as conn:
        conn.execute(update(HeadRow).values(count=0, signature="", key_id="", last_id="", seq=0))
    report = store.verify()
    assert not report.ok and report.issues[0].kind == "head"


def test_records_signed_by_a_key_only_in_the_store_fail_unless_allowed(store, sqlite_url, tmp_path, monkeypatch):
    store.add_evidence(fake_run(2))
    monkeypatch.setenv("AISEC_KEY_DIR", str(tmp_path / "colleague"))
    colleague = open_store(sqlite_url)
    colleague.add_evidence(fake_run(2))
    colleague.close()
    monkeypatch.setenv("AISEC_KEY_DIR", str(tmp_path / "keys"))
    default = store.verify()
    assert not default.ok and default.exit_code == EXIT_UNTRUSTED
    lenient = store.verify(allow_untrusted=True)
    assert lenient.ok and lenient.warnings
    assert store.verify(strict=False).ok  # the pre-2027 spelling of allow_untrusted
    # trusting the colleague's public key (the trust store) makes it pass by default
    trusted = tmp_path / "keys" / "trusted"
    trusted.mkdir()
    shutil.copy(tmp_path / "colleague" / "ed25519.pub", trusted / "colleague.pub")
    assert store.verify().ok


def test_longest_increasing_subsequence():
    assert _lis([0, 2, 1, 3]) in ([0, 1, 3], [0, 2, 3])
    assert _lis([1, 2, 3, 0]) == [0, 1, 2]
    assert _lis([]) == []


# -- the tamper suite: a real run (plan, records, finish), tampered as an attacker with write access would --


@pytest.mark.parametrize("how", sorted(STORE_TAMPERINGS))
def test_tamper_suite_default_verify_fails_with_the_right_exit_code(store, how):
    fill_store(store)
    assert store.verify().ok
    want = tamper_store(store, how)
    report = store.verify()
    assert not report.ok, report.text()
    assert report.exit_code == want, report.text()


@pytest.mark.parametrize("how", ["edit_plan", "edit_status", "edit_run_model_sha256"])
def test_writes_refuse_to_sign_over_an_edited_run(store, how):
    from aisec.store import StoreTampered

    fill_store(store)
    tamper_store(store, how)
    with pytest.raises(StoreTampered, match="run-tamper"):
        store.finish_run("run-tamper", status="complete")


def test_deleted_run_row_blocks_writes(store):
    from aisec.store import StoreTampered

    fill_store(store)
    fill_store(store, run_id="second")
    tamper_store(store, "delete_run")
    with pytest.raises(StoreTampered, match="runs"):
        store.add_evidence(fake_run(1))


def test_truncation_by_the_key_holder_needs_the_pinned_head(store):
    """Cutting off the newest record and re-signing the head with the real key is only seen with a pinned head."""
    from sqlalchemy import delete, select, update

    from aisec.store.chain import head_message
    from aisec.store.tables import EvidenceRow, HeadRow

    fill_store(store)
    pinned = store.head()
    with store.engine.begin() as conn:
        rows = conn.execute(select(EvidenceRow).order_by(EvidenceRow.seq)).all()
        conn.execute(delete(EvidenceRow).where(EvidenceRow.seq == rows[-1].seq))
        prev = rows[-2]
        msg = head_message(prev.seq, len(rows) - 1, prev.id, prev.hash, pinned.runs_digest)
        conn.execute(update(HeadRow).values(seq=prev.seq, count=len(rows) - 1, last_id=prev.id, last_hash=prev.hash,
                                            signature=store.signer.sign(msg)))
    assert store.verify().ok  # the documented limit: the key holder can roll back
    for pin in (pinned, pinned.last_hash):
        report = store.verify(pinned_head=pin)
        assert not report.ok and report.exit_code == EXIT_TAMPERED and "pinned head" in report.text()


def test_legacy_store_is_readable_and_reported(store):
    """A store written before revision 0002: run fields unsigned -> reported as legacy, not a crash."""
    from sqlalchemy import update

    from aisec.store.chain import head_message
    from aisec.store.tables import EvidenceRow, HeadRow, RunRow

    fill_store(store)
    h = store.head()
    with store.engine.begin() as conn:
        conn.execute(update(RunRow).values(run_hash=None, key_id=None, signature=None))
        conn.execute(update(EvidenceRow).values(meta_key_id=None, meta_signature=None))
        conn.execute(update(HeadRow).values(runs_digest=None, signature=store.signer.sign(
            head_message(h.seq, h.count, h.last_id, h.last_hash))))
    report = store.verify()
    assert report.ok and report.legacy, report.text()
    assert "legacy, run fields unsigned" in report.text()
    store.add_evidence(fake_run(1))  # the first write signs what the legacy store holds
    after = store.verify()
    assert after.ok and not after.legacy, after.text()


def test_migration_from_revision_0001_keeps_the_store_readable(tmp_path, key_dir):
    """Open a database built by revision 0001 (old columns only): it is upgraded, then verifies as legacy."""
    from alembic import command
    from alembic.config import Config
    from sqlalchemy import create_engine

    from aisec.store.tables import VERSION_TABLE

    url = f"sqlite:///{tmp_path / 'old.db'}"
    engine = create_engine(url)
    cfg = Config()
    cfg.set_main_option("script_location", "aisec.store:migrations")
    with engine.begin() as conn:
        cfg.attributes["connection"] = conn
        command.upgrade(cfg, "0001")
        assert conn.exec_driver_sql(f"SELECT version_num FROM {VERSION_TABLE}").scalar() == "0001"
    engine.dispose()
    old = open_store(url, create=False)
    report = old.verify(allow_empty=True)
    assert report.ok, report.text()
    fill_store(old)
    assert old.verify().ok
    old.close()
