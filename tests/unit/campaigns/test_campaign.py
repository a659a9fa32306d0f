"""Campaigns: expansion, keys, the cost estimate, and resuming after a kill at several points."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest

from aisec.campaigns.campaign import ConfirmationNeeded, execute, prepare, run_campaign
from aisec.campaigns.jobs import JobTimeLimit, deadline
from aisec.campaigns.spec import Campaign, expand
from aisec.core.errors import ConfigError

#: a robustness check small enough for a unit test (no CLEVER, no reliability probes, 5-step PGD)
TINY = {"attacks": ["fgsm", {"name": "pgd", "params": {"steps": 5}}], "samples": 16, "clever": {"enabled": False},
        "reliability": {"enabled": False}, "examples": 0, "save_adversarial": 0}


def tiny_campaign(**over: Any) -> dict[str, Any]:
    return {"name": "tiny", "models": ["digits-cnn"], "defences": [None, "gaussian-blur:sigma=0.5"],
            "datasets": ["digits"], "checks": {"robustness": dict(TINY)},
            "grid": {"robustness": {"eps": [[0.05], [0.1]]}}, **over}


def evidence_of(store_url: str) -> dict[str, list[tuple[Any, ...]]]:
    """Per run id, its records without what differs between two runs of the same job (ids, times)."""
    from aisec.store import open_store

    out: dict[str, list[tuple[Any, ...]]] = {}
    with open_store(store_url, create=False) as s:
        done = {r.id for r in s.runs(status="complete")}
        for e in (x.evidence for x in s.query()):
            assert e.run_id in done, f"record of unfinished run {e.run_id}"
            out.setdefault(e.run_id, []).append((
                e.check, e.metric, e.value, json.dumps(e.interval.model_dump() if e.interval else None),
                json.dumps(e.parameters, sort_keys=True, default=str), e.sample_count,
                e.raw.sha256 if e.raw else None))
    return {k: sorted(v) for k, v in out.items()}


@pytest.fixture(scope="module")
def reference(tmp_path_factory: pytest.TempPathFactory, aisec_cache: str) -> tuple[Path, dict[str, Any]]:
    """The tiny campaign run once, uninterrupted, in this process."""
    base = tmp_path_factory.mktemp("campaign-ref")
    result = run_campaign(Campaign.parse(tiny_campaign()), base_dir=base)
    assert result.counts == {"complete": 4}
    return base, evidence_of(result.prepared.store_url)


def test_expand_is_the_product_with_budget_caps() -> None:
    spec = Campaign.parse(tiny_campaign(budget={"samples": 10, "queries": 500},
                                        limits={"seconds_per_job": 30, "seconds_per_1000_samples": 1000}))
    jobs = expand(spec)
    assert len(jobs) == 1 * 2 * 1 * 2
    assert [(j.defence, j.params["eps"]) for j in jobs] == [
        (None, [0.05]), (None, [0.1]), ("gaussian-blur:sigma=0.5", [0.05]), ("gaussian-blur:sigma=0.5", [0.1])]
    assert all(j.params["samples"] == 10 and j.model.query_budget == 500 for j in jobs)
    assert all(j.time_limit == pytest.approx(10.0) for j in jobs)  # min(30, 1000 s × 10/1000)
    assert jobs[2].plan().model.defence == "gaussian-blur:sigma=0.5"


@pytest.mark.parametrize("bad, message", [
    ({"grid": {"privacy": {"samples": [1]}}}, "grid names check 'privacy'"),
    ({"checks": {"robustness": {"nope": 1}}}, "no parameter 'nope'"),
    ({"models": ["digits-cnn", "digits-cnn"]}, "share the name"),
    ({"typo": 1}, "typo"),
    ({"grid": {"robustness": {"eps": []}}}, "is empty"),
])
def test_bad_campaigns_are_one_clear_error(bad: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        expand(Campaign.parse(tiny_campaign(**bad)))


def test_keys_ignore_spelling_and_see_every_parameter(tmp_path: Path, aisec_cache: str) -> None:
    spelled = tiny_campaign(grid={})
    spelled["checks"] = {"robustness": {**TINY, "batch_size": 256}}  # 256 is the default: the same job
    a = prepare(Campaign.parse(tiny_campaign(grid={})), base_dir=tmp_path / "a")
    b = prepare(Campaign.parse(spelled), base_dir=tmp_path / "b")
    assert [j.job_id for j in a.jobs] == [j.job_id for j in b.jobs]
    assert len({j.job_id for j in a.jobs}) == 2  # the defence is part of the key
    other = tiny_campaign(grid={}, seed=1)
    c = prepare(Campaign.parse(other), base_dir=tmp_path / "c")
    assert not {j.job_id for j in a.jobs} & {j.job_id for j in c.jobs}


def test_estimate_counts_the_gradient_passes_the_job_makes(tmp_path: Path, aisec_cache: str,
                                                           monkeypatch: pytest.MonkeyPatch) -> None:
    """Reference: the samples that go through a forward pass with an input gradient, counted by a hook."""
    import torch

    from aisec.targets.torch import TorchTarget

    counted = {"fb": 0}
    original = TorchTarget.logits

    def counting(self: TorchTarget, x: torch.Tensor) -> torch.Tensor:
        if torch.is_grad_enabled() and x.requires_grad:
            counted["fb"] += int(x.shape[0])
        return original(self, x)

    spec = Campaign.parse(tiny_campaign(defences=[None], grid={}))
    prepared = prepare(spec, base_dir=tmp_path)
    (pj,) = prepared.jobs
    # fgsm: 1 pass, pgd: 5 steps, each at the 5 eps of the default Linf grid (which holds 8/255), 16 samples
    monkeypatch.setattr(TorchTarget, "logits", counting)
    execute(prepared)
    assert counted["fb"] > 0
    assert pj.cost.passes == pytest.approx(counted["fb"], rel=0.25)
    assert pj.cost.seconds > 0 and not pj.cost.rough


def test_a_high_estimate_needs_yes(tmp_path: Path, aisec_cache: str) -> None:
    spec = Campaign.parse(tiny_campaign(defences=[None], grid={}, budget={"confirm_above_seconds": 0}))
    prepared = prepare(spec, base_dir=tmp_path)
    with pytest.raises(ConfirmationNeeded, match="--yes"):
        execute(prepared, yes=False)
    assert not (prepared.out / "jobs").exists()


def test_deadline_raises_after_the_limit() -> None:
    now = [0.0]
    progress = deadline(5.0, clock=lambda: now[0])
    progress("pgd", 1, 10)
    now[0] = 6.0
    with pytest.raises(JobTimeLimit, match="5 s"):
        progress("pgd", 2, 10)


def test_a_job_over_its_time_limit_is_recorded_and_not_rerun(tmp_path: Path, aisec_cache: str) -> None:
    spec = Campaign.parse(tiny_campaign(defences=[None], grid={}, limits={"seconds_per_job": 1e-6}))
    first = run_campaign(spec, base_dir=tmp_path)
    assert first.counts == {"timeout": 1}
    again = run_campaign(spec, base_dir=tmp_path)
    assert again.outcomes == []  # a timeout is a result: not run again


def test_rerun_skips_finished_jobs(reference: tuple[Path, dict[str, Any]]) -> None:
    base, evidence = reference
    again = run_campaign(Campaign.parse(tiny_campaign()), base_dir=base)
    assert again.outcomes == [] and all(j.done for j in again.prepared.jobs)
    assert evidence_of(again.prepared.store_url) == evidence
    manifest = json.loads((again.prepared.out / "campaign.json").read_text())
    assert sorted(j["job_id"] for j in manifest["jobs"]) == sorted(evidence)


class Killed(BaseException):
    """Stands for a kill: no ``except Exception`` in aisec catches it, so nothing is cleaned up."""


def test_killed_at_several_points_resumes_to_the_uninterrupted_evidence(
        tmp_path: Path, reference: tuple[Path, dict[str, Any]], monkeypatch: pytest.MonkeyPatch) -> None:
    import aisec.checks.robustness as robustness
    from aisec.store.store import EvidenceStore

    spec = Campaign.parse(tiny_campaign())
    steps = {"n": 0}
    real_step, real_finish = robustness.save_step, EvidenceStore.finish_run

    def kill_on_step(at: int) -> None:
        def save_step(*a: Any, **k: Any) -> None:
            real_step(*a, **k)
            steps["n"] += 1
            if steps["n"] == at:
                raise Killed
        monkeypatch.setattr(robustness, "save_step", save_step)

    # 1: after the first job finished (between jobs)
    def after_first(outcome: dict[str, Any], done: int, total: int) -> None:
        raise Killed
    with pytest.raises(Killed):
        run_campaign(spec, base_dir=tmp_path, on_job=after_first)
    # 2: in the middle of the next job, after its first attack (fgsm) was checkpointed
    steps["n"] = 0
    kill_on_step(1)
    with pytest.raises(Killed):
        run_campaign(spec, base_dir=tmp_path)
    monkeypatch.setattr(robustness, "save_step", real_step)
    # 3: after a job's records went into the store but before its run was marked complete
    def finish_then_die(self: EvidenceStore, run_id: str, **kw: Any) -> None:
        monkeypatch.setattr(EvidenceStore, "finish_run", real_finish)
        raise Killed
    monkeypatch.setattr(EvidenceStore, "finish_run", finish_then_die)
    with pytest.raises(Killed):
        run_campaign(spec, base_dir=tmp_path)
    # then to the end
    final = run_campaign(spec, base_dir=tmp_path)
    assert final.counts == {"complete": 3}  # job 0 finished in the first run; job 1 resumes its third start
    assert any(o["resumed"] for o in final.outcomes)
    assert evidence_of(final.prepared.store_url) == reference[1]


SCRIPT = textwrap.dedent("""
    import os, signal, sys
    import torch
    torch.set_num_threads(1)
    import aisec.checks.robustness as robustness
    from aisec.campaigns.campaign import run_campaign
    from aisec.campaigns.spec import Campaign
    import json
    real = robustness.save_step
    count = [0]
    def save_step(*a, **k):
        real(*a, **k)
        count[0] += 1
        if count[0] == int(sys.argv[3]):
            os.kill(os.getpid(), signal.SIGKILL)
    robustness.save_step = save_step
    run_campaign(Campaign.parse(json.loads(sys.argv[1])), base_dir=sys.argv[2])
""")


def test_sigkill_mid_job_then_resume(tmp_path: Path, reference: tuple[Path, dict[str, Any]],
                                     aisec_cache: str) -> None:
    """A real SIGKILL of the process inside a job (after its first attack step); the rerun resumes that job
    and ends with the reference's evidence for it (the one-job campaign's job is the reference's first)."""
    one = tiny_campaign(defences=[None], grid={"robustness": {"eps": [[0.05]]}})
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(p for p in sys.path if p)}
    proc = subprocess.run([sys.executable, "-c", SCRIPT, json.dumps(one), str(tmp_path), "1"],
                          env=env, capture_output=True, text=True, timeout=120)
    assert proc.returncode == -signal.SIGKILL, proc.stderr[-2000:]
    final = run_campaign(Campaign.parse(one), base_dir=tmp_path)
    assert final.counts == {"complete": 1} and final.outcomes[0]["resumed"]
    (job,) = final.prepared.jobs
    assert job.job_id in reference[1]
    assert evidence_of(final.prepared.store_url) == {job.job_id: reference[1][job.job_id]}


def test_leaderboard_ranks_by_the_best_known_robust_accuracy(reference: tuple[Path, dict[str, Any]],
                                                            tmp_path: Path) -> None:
    import xml.etree.ElementTree as ET

    from aisec.campaigns.leaderboard import build_leaderboard, write_leaderboard

    base, evidence = reference
    board = build_leaderboard(base / "tiny")
    (table,) = board.tables  # linf 8/255 (every job adds the reference budget); no L2 attack ran
    assert (table.dataset, table.norm, table.eps) == ("digits", "linf", pytest.approx(8 / 255))
    assert [r.name for r in table.rows] and len(table.rows) == 2
    best = [r.best_known_robust_accuracy for r in table.rows]
    assert best == sorted(best, reverse=True) and [r.rank for r in table.rows] == [1, 2]
    for r in table.rows:  # recomputed from the stored records: the minimum over every attack at 8/255
        rows = [row for j in r.jobs for row in evidence[j]]
        at = [row[2] for row in rows
              if row[1] in ("robustness.robust_accuracy", "robustness.worst_case_robust_accuracy")
              and abs(json.loads(row[4]).get("eps", -1) - 8 / 255) < 1e-6]
        attacks = [row[2] for row in rows if row[1] == "robustness.robust_accuracy"
                   and abs(json.loads(row[4]).get("eps", -1) - 8 / 255) < 1e-6]
        assert r.best_known_robust_accuracy == min(at)
        assert r.clean_accuracy is not None and r.clean_accuracy >= max(attacks)
        assert r.safair_delta == pytest.approx(r.clean_accuracy - min(attacks))
        assert r.reliable is None and r.ensemble_robust_accuracy is None and len(r.reports) == 2
    files = write_leaderboard(board, tmp_path, min_robust_accuracy=1.0)
    assert sorted(f.name for f in files) == sorted(f"leaderboard.{e}" for e in ("html", "json", "csv", "junit.xml",
                                                                                "sarif"))
    suite = ET.parse(tmp_path / "leaderboard.junit.xml").getroot().find("testsuite")
    assert suite is not None and suite.get("tests") == "2" and suite.get("failures") == "2"
    sarif = json.loads((tmp_path / "leaderboard.sarif").read_text())
    assert sarif["version"] == "2.1.0" and len(sarif["runs"][0]["results"]) == 2
    assert all(res["locations"][0]["physicalLocation"]["artifactLocation"]["uri"].endswith("report.html")
               for res in sarif["runs"][0]["results"])
    csv_rows = (tmp_path / "leaderboard.csv").read_text().splitlines()
    assert len(csv_rows) == 3 and csv_rows[0].startswith("dataset,norm,eps,rank")
    assert "<a href=" in (tmp_path / "leaderboard.html").read_text()


def test_cli_runs_estimates_and_reports(tmp_path: Path, aisec_cache: str) -> None:
    import yaml
    from click.testing import CliRunner

    from aisec.cli.main import main

    one = tiny_campaign(defences=[None], grid={"robustness": {"eps": [[0.05]]}},
                        budget={"confirm_above_seconds": 0})
    f = tmp_path / "c.yaml"
    f.write_text(yaml.safe_dump(one))
    res = CliRunner().invoke(main, ["campaign", "run", str(f), "--estimate"])
    assert res.exit_code == 0 and "1 of 1 jobs to run" in res.output and "passes" in res.output
    res = CliRunner().invoke(main, ["campaign", "run", str(f), "--workers", "1", "--quiet"])
    assert res.exit_code == 2 and "--yes" in res.output  # above the threshold, not a terminal: refused
    res = CliRunner().invoke(main, ["campaign", "run", str(f), "--workers", "1", "--quiet", "--yes"])
    assert res.exit_code == 0, res.output
    assert "1 complete" in res.output
    res = CliRunner().invoke(main, ["campaign", "run", str(f), "--workers", "1", "--quiet", "--yes"])
    assert res.exit_code == 0 and "0 of 1 jobs to run" in res.output
    res = CliRunner().invoke(main, ["campaign", "report", str(f)])
    assert res.exit_code == 0, res.output
    assert (tmp_path / "tiny" / "leaderboard.html").is_file()
    bad = tmp_path / "bad.yaml"
    bad.write_text("name: x\nmodels: [digits-cnn]\ndatasets: [digits]\nchecks: {robustness: {}}\nmodles: 1\n")
    res = CliRunner().invoke(main, ["campaign", "run", str(bad)])
    assert res.exit_code == 2 and "modles" in res.output


class DyingBackend:
    """Every worker dies before it can record its job (as a SIGKILLed pool worker does)."""

    name = "dying"

    def run(self, payloads: list[dict[str, Any]]) -> Any:
        from aisec.campaigns.backends import _died

        for p in payloads:
            yield _died(p, RuntimeError("killed"))


def test_a_dead_worker_is_a_failed_job_in_the_store_and_runs_again(tmp_path: Path, aisec_cache: str) -> None:
    from aisec.campaigns.leaderboard import build_leaderboard
    from aisec.store import open_store

    spec = Campaign.parse(tiny_campaign(defences=[None], grid={"robustness": {"eps": [[0.05]]}}))
    first = run_campaign(spec, base_dir=tmp_path, backend=DyingBackend())  # type: ignore[arg-type]
    assert first.counts == {"failed": 1}
    with open_store(first.prepared.store_url, create=False) as s:
        (run,) = s.runs()
        assert run.status == "failed" and "worker died" in (run.error or "")
    board = build_leaderboard(tmp_path / "tiny")
    assert [u["status"] for u in board.unfinished] == ["failed"]
    again = run_campaign(spec, base_dir=tmp_path)
    assert again.counts == {"complete": 1}


def test_compare_two_stored_jobs_pairs_them_through_the_stored_tables(reference: tuple[Path, dict[str, Any]]) -> None:
    """A model and its defended copy in one campaign, compared by run id from the store (no folders)."""
    from click.testing import CliRunner

    from aisec.campaigns.compare import compare_runs, load_run
    from aisec.cli.main import main
    from aisec.store import open_store

    base, _ = reference
    manifest = json.loads((base / "tiny" / "campaign.json").read_text())
    plain, blurred = (next(j["job_id"] for j in manifest["jobs"] if j["defence"] == d and j["params"]["eps"] == [0.05])
                      for d in (None, "gaussian-blur:sigma=0.5"))
    with open_store(manifest["store"], create=False) as s:
        c = compare_runs(load_run(plain, store=s), load_run(blurred, store=s))
    clean = next(d for d in c.diffs if d.metric == "robustness.clean_accuracy")
    assert c.same_data and clean.paired is not None and clean.paired.shared == 16
    res = CliRunner().invoke(main, ["compare", plain, blurred, "--store", manifest["store"]])
    assert res.exit_code == 0, res.output
    assert "shared measurements" in res.output


def test_contest_mode_applies_the_safair_rules_and_ranks_by_delta(tmp_path: Path, aisec_cache: str) -> None:
    from aisec.campaigns.leaderboard import build_leaderboard

    spec = Campaign.parse(tiny_campaign(contest=True, grid={}))
    jobs = expand(spec)
    assert all(j.params["quantize"] is True and j.params["reference_eps"]["linf"] == pytest.approx(8 / 255)
               for j in jobs)
    assert all(j.time_limit == pytest.approx(4 * 3600 * 16 / 1000) for j in jobs)  # 4 h per 1,000 samples
    assert [(t.norm, t.eps) for t in spec.threat_models] == [("linf", pytest.approx(8 / 255))]
    run_campaign(spec, base_dir=tmp_path)
    board = build_leaderboard(tmp_path / "tiny")
    (table,) = board.tables
    deltas = [r.safair_delta for r in table.rows]
    assert board.ranked_by == "safair_delta" and None not in deltas and deltas == sorted(deltas)  # type: ignore[type-var]
    for bad, message in (({"checks": {"explainability": {}}, "grid": {}}, "add a robustness check"),
                         ({"checks": {"robustness": {**TINY, "quantize": False}}, "grid": {}}, "quantize")):
        with pytest.raises(ConfigError, match=message):
            Campaign.parse(tiny_campaign(contest=True, **bad))
