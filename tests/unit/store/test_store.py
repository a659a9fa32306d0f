"""Evidence store on SQLite: round trips, idempotence, queries, artifacts, URLs and bad input."""

from __future__ import annotations

import hashlib
import json
import math
import socket
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from pydantic import ValidationError

from aisec.core.evidence import RawRef, write_jsonl
from aisec.store import (
    BundleError,
    EvidenceConflict,
    EvidenceNotFound,
    StoreUnavailable,
    UntrustedSigner,
    normalize_url,
    open_store,
    read_bundle,
)
from aisec.testing.evidence import fake_evidence, fake_run


def test_default_location_follows_aisec_home(key_dir, tmp_path):
    s = open_store()
    assert Path(s.engine.url.database) == tmp_path / "home" / "evidence.db"
    assert s.count() == 0
    s.close()


def test_normalize_url():
    assert normalize_url("postgresql://u:p@h/db") == "postgresql+psycopg://u:p@h/db"
    assert normalize_url("postgres://h/db") == "postgresql+psycopg://h/db"
    assert normalize_url("rel/e.db").startswith("sqlite:////")
    assert normalize_url("sqlite:///x.db") == "sqlite:///x.db"


def test_round_trip_identical_through_export_and_import(store, tmp_path, monkeypatch):
    records = [*fake_run(4), fake_evidence("robustness.median_perturbation", 0.25, index=9, interval=(0.2, 0.3))]
    res = store.add_evidence(records)
    assert len(res.added) == 5
    for r in records:
        back = store.get(r.id)
        assert back.canonical_json() == r.canonical_json()
        assert back.sha256() == r.sha256()
    bundle = tmp_path / "bundle.jsonl"
    assert store.export_bundle(bundle) == 5
    assert read_bundle(bundle).verify().ok

    # Another machine (own key, own store) imports it: same records, byte for byte, still attributed to
    # their original signer. Its key is not trusted there until the importer vouches for its fingerprint.
    origin_key = store.signer.key_id
    monkeypatch.setenv("AISEC_KEY_DIR", str(tmp_path / "other-keys"))
    other = open_store(f"sqlite:///{tmp_path / 'other.db'}")
    with pytest.raises(UntrustedSigner, match=origin_key):
        other.import_path(bundle)
    assert other.count() == 0
    res = other.import_path(bundle, trust_keys=[origin_key])
    assert len(res.added) == 5 and res.signers == {origin_key: 5}
    assert [e.evidence.canonical_json() for e in other.query()] == [r.canonical_json() for r in records]
    assert {e.signed_by for e in other.query()} == {origin_key} != {other.signer.key_id}
    assert other.verify().ok
    # ... and importing again changes nothing (the key is in the trust store now).
    again = other.import_path(bundle)
    assert (again.added, len(again.skipped)) == ([], 5)
    assert other.count() == 5
    other.close()


def test_insert_is_idempotent_and_refuses_conflicts(store):
    records = fake_run(3)
    store.add_evidence(records)
    res = store.add_evidence(records + records)  # duplicates inside one call too
    assert res.added == [] and len(res.skipped) == 6
    assert store.count() == 3 and store.head().count == 3
    changed = records[0].model_copy(update={"value": 0.123})
    with pytest.raises(EvidenceConflict, match=records[0].id):
        store.add_evidence([changed])
    assert store.get(records[0].id).value == records[0].value
    assert store.verify().ok


def test_queries(store):
    t0 = datetime(2026, 3, 1, tzinfo=UTC)
    a = fake_run(3, model_sha256="ab" * 32, timestamp=t0)
    b = [fake_evidence("privacy.mia_auc", 0.6, index=i, model_sha256="cd" * 32, timestamp=t0 + timedelta(days=i + 1),
                       run_id="run-b") for i in range(2)]
    store.add_evidence(a + b)
    assert len(store.query(model="abab")) == 3
    assert len(store.query(model="cd" * 32)) == 2
    assert {e.evidence.metric for e in store.query(metric="privacy.*")} == {"privacy.mia_auc"}
    assert store.query(metric="privacy_mia*") == []  # '_' is literal, not a SQL wildcard
    assert len(store.query(check="robustness")) == 3
    assert len(store.query(run_id="run-b")) == 2
    assert len(store.query(since=t0 + timedelta(days=1, seconds=1))) == 1
    assert len(store.query(until=t0 + timedelta(hours=1))) == 3
    assert len(store.query(limit=2)) == 2
    assert store.get(b[0].id[:8]).id == b[0].id
    with pytest.raises(EvidenceNotFound):
        store.get("no-such-id")
    runs = {r.id: r for r in store.runs()}
    assert runs["run-b"].evidence_count == 2 and runs["run-b"].status == "imported"


@dataclass
class _Run:  # the parts of aisec.core.run.Run the store reads
    run_id: str
    plan: object
    evidence: list
    out: Path | None
    errors: list = field(default_factory=list)


def _run_dir(tmp_path: Path, run_id: str) -> tuple[Path, list]:
    out = tmp_path / "out"
    (out / "samples").mkdir(parents=True)
    csv = out / "samples" / "robustness-samples.csv"
    csv.write_text("index,label,pred_clean\n0,1,1\n1,2,3\n", encoding="utf-8")
    from aisec.core.evidence import file_sha256

    ref = RawRef(path="samples/robustness-samples.csv", sha256=file_sha256(csv), rows=2)
    records = [r.model_copy(update={"raw": ref}) for r in fake_run(3, run_id=run_id)]
    write_jsonl(records, out / "evidence.jsonl")
    (out / "plan.yaml").write_text("model: digits-cnn\ndata: digits\nseed: 0\n", encoding="utf-8")
    return out, records


def test_save_run_keeps_plan_and_artifacts_and_detects_artifact_edits(store, tmp_path):
    from aisec.core.plan import Plan

    out, records = _run_dir(tmp_path, "run-1")
    plan = Plan.parse({"model": "digits-cnn", "data": "digits"})
    res = store.save_run(_Run("run-1", plan, records, out))
    assert len(res.added) == 3 and res.artifacts_added == 1
    info = store.run("run-1")
    assert info.status == "complete" and info.plan["model"]["path"] == "digits-cnn" and info.finished_at
    assert store.artifact_bytes("run-1", "samples/robustness-samples.csv").startswith(b"index,label")
    assert store.save_run(_Run("run-1", plan, records, out)).added == []  # idempotent
    assert store.verify().ok

    from sqlalchemy import update

    from aisec.store.tables import ArtifactRow

    with store.engine.begin() as conn:
        conn.execute(update(ArtifactRow).values(content=b"index,label,pred_clean\n0,1,1\n1,2,2\n"))
    report = store.verify()
    assert not report.ok
    assert any("robustness-samples.csv" in i.detail for i in report.issues)


def test_save_run_keeps_the_artefacts_and_detects_their_edits(store, tmp_path):
    """Issue 18 #8: every file the checks wrote under artefacts/ (in sub-folders too) is a stored artifact of
    the run, so verification covers it."""
    out, records = _run_dir(tmp_path, "run-art")
    files = {"artefacts/adversarial/fgsm-linf-8_255.npz": b"npz", "artefacts/adversarial/fgsm-linf-8_255/sample-0.png":
             b"png", "artefacts/surrogate.safetensors": b"weights"}
    for rel, data in files.items():
        (out / rel).parent.mkdir(parents=True, exist_ok=True)
        (out / rel).write_bytes(data)
    (out / "artefacts" / "half.npz.tmp").write_bytes(b"partial")  # a write cut short is not an artefact
    res = store.save_run(_Run("run-art", None, records, out))
    assert res.artifacts_added == 1 + len(files)
    stored = {a.path: a.sha256 for a in store.artifacts("run-art")}
    assert {p: stored[p] for p in files} == {p: hashlib.sha256(d).hexdigest() for p, d in files.items()}
    assert "artefacts/half.npz.tmp" not in stored
    assert store.verify().ok

    from sqlalchemy import update

    from aisec.store.tables import ArtifactRow

    with store.engine.begin() as conn:
        conn.execute(update(ArtifactRow).where(ArtifactRow.path == "artefacts/surrogate.safetensors")
                     .values(content=b"other weights"))
    report = store.verify()
    assert not report.ok and any("surrogate.safetensors" in i.detail for i in report.issues)


def test_import_run_folder_and_plain_jsonl_resume(store, tmp_path):
    out, records = _run_dir(tmp_path, "run-2")
    res = store.import_path(out)
    assert len(res.added) == 3 and res.artifacts_added == 1
    assert store.run("run-2").plan["seed"] == 0
    # a plain evidence.jsonl that grew after a resumed run: only the new record is added
    more = [*records, fake_evidence("robustness.clean_accuracy", 0.97, run_id="run-2", index=10)]
    plain = tmp_path / "plain.jsonl"
    write_jsonl(more, plain)
    assert len(store.import_path(plain).added) == 1
    assert store.count() == 4 and store.verify().ok


def test_bad_bundle_is_refused(store, tmp_path):
    store.add_evidence(fake_run(4))
    bundle = tmp_path / "b.jsonl"
    store.export_bundle(bundle)
    lines = bundle.read_text().splitlines()
    rec = json.loads(lines[2])
    rec["record"]["body"] = rec["record"]["body"].replace('"value":0.8', '"value":0.85')
    lines[2] = json.dumps(rec)
    bundle.write_text("\n".join(lines) + "\n")
    with pytest.raises(BundleError, match="edited"):
        store.import_path(bundle)
    (tmp_path / "junk.jsonl").write_text("{not json\n")
    with pytest.raises(BundleError):
        store.import_path(tmp_path / "junk.jsonl")


def test_filtered_export_verifies_as_partial(store, tmp_path):
    store.add_evidence([*fake_run(3), fake_evidence("privacy.mia_auc", 0.7, index=5)])
    store.export_bundle(tmp_path / "p.jsonl", metric="privacy.*")
    b = read_bundle(tmp_path / "p.jsonl")
    assert b.header["partial"] and len(b.entries) == 1
    assert b.verify().ok


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_unreachable_store_urls_are_specific_errors(key_dir, tmp_path):
    with pytest.raises(StoreUnavailable, match=r"cannot reach the evidence store at postgresql\+psycopg://aisec:\*\*\*"):
        open_store(f"postgresql://aisec:secret@127.0.0.1:{_free_port()}/evidence")
    blocker = tmp_path / "file"
    blocker.write_text("x")
    with pytest.raises(StoreUnavailable):
        open_store(f"sqlite:///{blocker}/sub/evidence.db")
    with pytest.raises(StoreUnavailable):
        open_store("nosuchdialect://host/db")


def test_non_finite_values_never_become_evidence():
    # A metric that cannot be measured (e.g. no successful attack to take a median of) is left out,
    # never written as NaN: NaN is not JSON and would make canonical hashes ambiguous.
    with pytest.raises(ValidationError, match="finite"):
        fake_evidence("robustness.median_perturbation", math.nan, run_id="nan-run", interval=(0, 1))
