"""One run per folder; a run killed at any point resumes to the evidence of an uninterrupted run."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from click.testing import CliRunner

from aisec.core.errors import ConfigError
from aisec.core.evidence import read_jsonl

CHECKS = {
    "robustness": {"attacks": ["fgsm", {"name": "pgd", "params": {"steps": 5}}], "eps": [0.1, 0.2], "samples": 40,
                   "clever": {"enabled": False}},
    "explainability": {"explainer": "saliency", "samples": 8, "stability_samples": 0, "random_orders": 2},
    "backdoor": {"methods": ["spectral-signatures"], "samples": 200},
}


def _key(e):
    return (e.check, e.metric, json.dumps(e.parameters, sort_keys=True, default=str))


def _values(records):
    """What must agree between runs: every measurement, its interval and sample count (not ids or times)."""
    return {_key(e): (e.value, e.interval.model_dump() if e.interval else None, e.sample_count) for e in records}


@pytest.fixture(scope="module")
def setup(tmp_path_factory: pytest.TempPathFactory):
    os.environ.setdefault("AISEC_CACHE", str(tmp_path_factory.mktemp("cache")))
    from aisec.api import assess
    from aisec.data.builtin import digits
    from aisec.models.train import digits_cnn
    from aisec.targets.torch import TorchTarget

    target = TorchTarget(digits_cnn(), input_shape=(1, 8, 8), num_classes=10, name="digits-cnn")
    data = digits(split="test")
    ref = tmp_path_factory.mktemp("ref") / "run"
    assess(target, data, checks=CHECKS, out=ref, seed=3)
    return target, data, _values(read_jsonl(ref / "evidence.jsonl"))


@pytest.mark.parametrize("killed_in", ["explainability", "backdoor"])
def test_resume_after_a_crash_gives_the_uninterrupted_evidence(setup, tmp_path, monkeypatch, killed_in) -> None:
    from aisec.api import assess
    from aisec.core.registry import get_check

    target, data, want = setup
    cls = get_check(killed_in).cls
    real = cls.run

    def crash(self, *a, **k):
        raise KeyboardInterrupt

    monkeypatch.setattr(cls, "run", crash)
    with pytest.raises(KeyboardInterrupt):
        assess(target, data, checks=CHECKS, out=tmp_path / "run", seed=3)
    monkeypatch.setattr(cls, "run", real)
    partial = read_jsonl(tmp_path / "run" / "evidence.jsonl")
    assert killed_in not in {e.check for e in partial}
    run = assess(target, data, checks=CHECKS, out=tmp_path / "run", seed=3, existing="resume")
    got = read_jsonl(tmp_path / "run" / "evidence.jsonl")
    assert _values(got) == want
    assert len({e.run_id for e in got}) == 1 and {e.run_id for e in partial} == {run.run_id}
    assert [r.check for r in run.results] == list(CHECKS)
    assert (tmp_path / "run" / "report.html").is_file()


def test_a_run_killed_inside_robustness_resumes_after_the_last_finished_attack(setup, tmp_path, monkeypatch) -> None:
    from aisec.api import assess
    from aisec.checks.robustness import RobustnessCheck

    target, data, want = setup
    real = RobustnessCheck._curve
    calls: list[str] = []

    def second_attack_dies(self, target, x, y, tl, name, *a, **k):
        calls.append(name)
        if len(calls) == 2:
            raise KeyboardInterrupt
        return real(self, target, x, y, tl, name, *a, **k)

    monkeypatch.setattr(RobustnessCheck, "_curve", second_attack_dies)
    with pytest.raises(KeyboardInterrupt):
        assess(target, data, checks=CHECKS, out=tmp_path / "run", seed=3)
    steps = list((tmp_path / "run" / "checkpoints").glob("steps-00-robustness/00-fgsm-linf.npz"))
    assert steps and not (tmp_path / "run" / "evidence.jsonl").exists()
    calls.clear()
    monkeypatch.setattr(RobustnessCheck, "_curve", lambda self, *a, **k: (calls.append(a[4]), real(self, *a, **k))[1])
    assess(target, data, checks=CHECKS, out=tmp_path / "run", seed=3, existing="resume")
    # fgsm came from its step checkpoint (a second pgd is the reliability escalation's rerun of 5-step PGD
    # with more steps, when its objective was still rising)
    assert calls[0] == "pgd" and "fgsm" not in calls and set(calls) == {"pgd"}
    assert _values(read_jsonl(tmp_path / "run" / "evidence.jsonl")) == want
    assert not list((tmp_path / "run" / "checkpoints").glob("steps-*"))  # folded into the check's checkpoint


def test_evidence_of_a_check_killed_before_its_checkpoint_is_redone_once(setup, tmp_path) -> None:
    from aisec.api import assess

    target, data, want = setup
    assess(target, data, checks=CHECKS, out=tmp_path / "run", seed=3)
    for f in (tmp_path / "run" / "checkpoints").glob("02-*"):  # as if killed after its evidence, before its checkpoint
        f.unlink()
    assess(target, data, checks=CHECKS, out=tmp_path / "run", seed=3, existing="resume")
    got = read_jsonl(tmp_path / "run" / "evidence.jsonl")
    assert _values(got) == want and len(got) == len(want)


def test_a_folder_holding_a_run_is_refused_unless_overwritten(setup, tmp_path) -> None:
    from aisec.api import assess

    target, data, _ = setup
    small = {"robustness": {"attacks": ["fgsm"], "eps": [0.1], "samples": 10, "clever": {"enabled": False}}}
    first = assess(target, data, checks=small, out=tmp_path / "run")
    with pytest.raises(ConfigError, match=r"already holds a run .*--resume .*--overwrite"):
        assess(target, data, checks=small, out=tmp_path / "run")
    second = assess(target, data, checks=small, out=tmp_path / "run", existing="overwrite")
    records = read_jsonl(tmp_path / "run" / "evidence.jsonl")
    assert {e.run_id for e in records} == {second.run_id} != {first.run_id}


def test_resume_refuses_another_model(setup, tmp_path) -> None:
    from aisec.api import assess
    from aisec.models.train import digits_cnn
    from aisec.targets.torch import TorchTarget

    target, data, _ = setup
    small = {"robustness": {"attacks": ["fgsm"], "eps": [0.1], "samples": 10, "clever": {"enabled": False}},
             "backdoor": {"methods": ["spectral-signatures"], "samples": 100}}
    assess(target, data, checks=dict(list(small.items())[:1]), out=tmp_path / "run")
    other = TorchTarget(digits_cnn(seed=1), input_shape=(1, 8, 8), num_classes=10, name="other")
    with pytest.raises(ConfigError, match="model or data differ"):
        assess(other, data, checks=small, out=tmp_path / "run", existing="resume")


def _cli(*args: str, env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    with log.open("wb") as fh:  # the child keeps its own copy of the descriptor
        return subprocess.Popen([sys.executable, "-m", "aisec", *args], env=env, stdout=subprocess.DEVNULL, stderr=fh)


@pytest.mark.slow
def test_cli_killed_at_several_points_resumes_to_the_same_evidence(tmp_path, aisec_cache) -> None:
    import yaml

    from aisec.cli.main import main

    plan = tmp_path / "plan.yaml"
    plan.write_text(yaml.safe_dump({"model": "digits-cnn", "data": {"source": "digits", "options": {"split": "test"}},
                                    "seed": 3, "checks": CHECKS}))
    env = {**os.environ, "AISEC_CACHE": aisec_cache, "PYTHONPATH": os.pathsep.join(sys.path)}
    ref = tmp_path / "ref"
    log = tmp_path / "stderr.txt"
    p = _cli("assess", "--plan", str(plan), "-q", "-o", str(ref), env=env, log=log)
    assert p.wait(timeout=600) == 0, log.read_text()
    want = _values(read_jsonl(ref / "evidence.jsonl"))
    # kill (SIGKILL: nothing can be cleaned up) inside robustness after its first attack, then after each check
    for i, pattern in enumerate(("steps-00-robustness/00-*.npz", "00-*.npz", "01-*.npz")):
        out = tmp_path / f"killed{i}"
        p = _cli("assess", "--plan", str(plan), "-q", "-o", str(out), env=env, log=log)
        deadline = time.monotonic() + 600
        while not list((out / "checkpoints").glob(pattern)) and p.poll() is None:
            assert time.monotonic() < deadline
            time.sleep(0.05)
        p.send_signal(signal.SIGKILL)
        p.wait(timeout=60)
        res = CliRunner().invoke(main, ["assess", "--resume", str(out), "-q"])
        assert res.exit_code == 0, res.output
        assert _values(read_jsonl(out / "evidence.jsonl")) == want
    # SIGTERM is a clean stop: kept, marked aborted, resumable
    out = tmp_path / "terminated"
    p = _cli("assess", "--plan", str(plan), "-q", "-o", str(out), env=env, log=log)
    while not list((out / "checkpoints").glob("00-*.npz")) and p.poll() is None:
        time.sleep(0.05)
    p.send_signal(signal.SIGTERM)
    assert p.wait(timeout=120) in (0, 130)
    if p.returncode == 130:
        assert json.loads((out / "result.json").read_text())["status"] == "aborted"
        assert "--resume" in log.read_text()
    res = CliRunner().invoke(main, ["assess", "--resume", str(out), "-q"])
    assert res.exit_code == 0, res.output
    assert _values(read_jsonl(out / "evidence.jsonl")) == want
