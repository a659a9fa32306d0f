"""Reproduce: re-run the recorded plan on the digits CNN; refuse when the model or data changed."""

from __future__ import annotations

import pytest

from aisec import api
from aisec.campaigns.reproduce import ReproduceRefused, reproduce
from aisec.core.plan import Plan
from aisec.store import open_store
from aisec.testing.evidence import fake_run

CHECKS = {"robustness": {"attacks": ["fgsm"], "eps": [0.1], "samples": 48, "clever": {"enabled": False}}}


def _target(seed: int = 0, digest: str | None = None):
    """An untrained linear model: reproduction needs determinism, not accuracy (and no training time)."""
    import torch
    from torch import nn

    from aisec.targets.torch import TorchTarget

    torch.manual_seed(seed)
    net = nn.Sequential(nn.Flatten(), nn.Linear(64, 10))
    return TorchTarget(net, input_shape=(1, 8, 8), num_classes=10, name="tiny-linear", device="cpu", digest=digest)


@pytest.fixture(scope="module")
def digits_halves():
    from aisec.data.builtin import digits

    return digits("train"), digits("test")


@pytest.fixture
def stored(tmp_path, monkeypatch, digits_halves):
    monkeypatch.setenv("AISEC_KEY_DIR", str(tmp_path / "keys"))
    _, test = digits_halves
    target = _target()
    plan = Plan.parse({"model": "digits-cnn", "data": {"source": "digits", "options": {"split": "test"}},
                       "checks": CHECKS, "seed": 0})
    run = api.assess(target, test, checks=plan.checks, seed=0, plan=plan)
    store = open_store(f"sqlite:///{tmp_path / 'e.db'}")
    store.save_run(run)
    monkeypatch.setattr(api, "load_data", lambda source, options: test)
    monkeypatch.setattr(api, "load_model", lambda model, data: _target())
    yield store, run
    store.close()


def test_reproduces_a_robust_accuracy_within_its_interval(stored):
    store, run = stored
    rec = next(e for e in run.evidence if e.metric == "robustness.robust_accuracy")
    result = reproduce(store, rec.id[:10], save=True)
    assert result.within, result.text()
    assert result.new_value == pytest.approx(rec.value)
    assert "REPRODUCED" in result.text()
    assert len(store.runs()) == 2  # the re-run was stored as its own run


def test_refuses_when_the_model_changed(stored, monkeypatch):
    store, run = stored
    monkeypatch.setattr(api, "load_model", lambda model, data: _target(seed=1))  # other weights, other sha256
    with pytest.raises(ReproduceRefused, match="the model changed"):
        reproduce(store, run.evidence[0].id)


def test_refuses_when_the_data_changed(stored, monkeypatch, digits_halves):
    store, run = stored
    train, _ = digits_halves
    monkeypatch.setattr(api, "load_data", lambda source, options: train)
    with pytest.raises(ReproduceRefused, match="the data changed"):
        reproduce(store, run.evidence[0].id)


def test_refuses_without_a_recorded_plan(tmp_path, monkeypatch):
    monkeypatch.setenv("AISEC_KEY_DIR", str(tmp_path / "keys"))
    store = open_store(f"sqlite:///{tmp_path / 'e.db'}")
    records = fake_run(1)
    store.add_evidence(records)
    with pytest.raises(ReproduceRefused, match="no recorded plan"):
        reproduce(store, records[0].id)
    store.close()


# -- reproduce takes nothing on trust from stored data ------------------------------------------------------

_real_load_model = api.load_model


def _evil_pickle(tmp_path):
    """A .pkl file whose unpickling creates ``marker`` (as an attacker's model file would run code)."""
    import pickle

    marker = tmp_path / "pwned"

    class Evil:
        def __reduce__(self):
            return (open, (str(marker), "w"))

    evil = tmp_path / "model.pkl"
    evil.write_bytes(pickle.dumps(Evil()))
    return evil, marker


def test_refuses_a_plan_edited_to_load_a_malicious_pickle(stored, tmp_path, monkeypatch):
    import json

    from sqlalchemy import update

    from aisec.store.tables import RunRow

    store, run = stored
    monkeypatch.setattr(api, "load_model", _real_load_model)
    evil, marker = _evil_pickle(tmp_path)
    plan = dict(store.run(run.run_id).plan)
    plan["model"] = {"path": str(evil), "trust_model_code": True}
    with store.engine.begin() as conn:
        conn.execute(update(RunRow).where(RunRow.id == run.run_id).values(plan=json.dumps(plan, sort_keys=True)))
    with pytest.raises(ReproduceRefused, match="cannot be trusted, so nothing was loaded"):
        reproduce(store, run.evidence[0].id)
    assert not marker.exists()
    assert not store.verify().ok  # and verify names the edit


def _signed_evil_run(store, tmp_path, digits_halves, *, model_sha256=None):
    from aisec.core.evidence import file_sha256
    from aisec.testing.evidence import fake_evidence

    _, test = digits_halves
    evil, marker = _evil_pickle(tmp_path)
    plan = {"model": {"path": str(evil), "trust_model_code": True},
            "data": {"source": "digits", "options": {"split": "test"}}, "checks": CHECKS, "seed": 0}
    rec = fake_evidence("robustness.robust_accuracy", 0.5, run_id="evil-run", dataset_digest=test.info.digest,
                        model_sha256=model_sha256 or file_sha256(evil), parameters={"attack": "fgsm", "eps": 0.1})
    store.begin_run("evil-run", plan)
    store.add_evidence([rec])
    store.finish_run("evil-run")
    return rec, marker


def test_never_takes_trust_model_code_from_the_stored_plan(stored, tmp_path, monkeypatch, digits_halves):
    from aisec.core.errors import UnsafeModelError

    store, _ = stored
    monkeypatch.setattr(api, "load_model", _real_load_model)
    rec, marker = _signed_evil_run(store, tmp_path, digits_halves)
    with pytest.raises(UnsafeModelError, match="trust-model-code"):
        reproduce(store, rec.id)
    assert not marker.exists()


def test_checks_the_model_file_digest_before_loading_it(stored, tmp_path, monkeypatch, digits_halves):
    store, _ = stored
    monkeypatch.setattr(api, "load_model", _real_load_model)
    rec, marker = _signed_evil_run(store, tmp_path, digits_halves, model_sha256="c" * 64)
    with pytest.raises(ReproduceRefused, match=r"the model file changed.*it was not loaded"):
        reproduce(store, rec.id, trust_model_code=True)  # even with the flag: the digest comes first
    assert not marker.exists()


def test_refuses_records_signed_by_an_untrusted_key(stored, tmp_path, monkeypatch):
    store, run = stored
    monkeypatch.setenv("AISEC_KEY_DIR", str(tmp_path / "someone-else"))
    with pytest.raises(ReproduceRefused, match="unknown key"):
        reproduce(store, run.evidence[0].id)
