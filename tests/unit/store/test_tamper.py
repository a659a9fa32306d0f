"""Tamper evidence: verify passes on an untouched store and names each kind of tampering."""

from __future__ import annotations

import shutil

import pytest

from aisec.store import open_store
from aisec.store.chain import EXIT_EMPTY, EXIT_UNTRUSTED, _lis
from aisec.testing.evidence import fake_run
from aisec.testing.store_checks import TAMPERINGS, tamper


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
