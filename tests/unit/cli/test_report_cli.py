"""``aisec report RUN_DIR`` re-renders a run's report from its folder: same verdict and numbers, another
verdict with another policy, the original report untouched unless asked, one error line for a non-run folder."""

from __future__ import annotations

import json
import shutil

import pytest
from click.testing import CliRunner

from aisec.cli.main import main


def _table(md: str) -> list[str]:
    return [ln for ln in md.splitlines() if ln.startswith("| robustness.")]


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory, aisec_cache):
    out = tmp_path_factory.mktemp("rr") / "run"
    res = CliRunner().invoke(main, ["assess", "-m", "digits-cnn", "-d", "digits", "--split", "test", "-a", "fgsm",
                                    "--eps", "0.1", "-c", "30", "--clever-samples", "0", "-o", str(out), "-q",
                                    "--no-store"])
    assert res.exit_code == 0, res.output
    return out


def test_rerender_gives_the_same_verdict_and_numbers(run_dir, tmp_path):
    original = (run_dir / "report.html").read_text()
    res = CliRunner().invoke(main, ["report", str(run_dir), "--out", str(tmp_path / "x")])
    assert res.exit_code == 0, res.output
    md, before = (tmp_path / "x" / "report.md").read_text(), (run_dir / "report.md").read_text()
    assert _table(md) == _table(before) and _table(md)
    verdict = json.loads((run_dir / "result.json").read_text())["verdict"]
    assert f"**{'PASS' if verdict['passed'] else 'FAIL'}**" in md
    assert "Re-rendered from" in md and "nothing was re-run" in md
    html = (tmp_path / "x" / "report.html").read_text()
    assert "data:image/png;base64," in html  # the curves are re-drawn from the stored numbers
    assert (run_dir / "report.html").read_text() == original  # the run's own report is untouched
    # the default folder is RUN_DIR/rerendered
    assert CliRunner().invoke(main, ["report", str(run_dir)]).exit_code == 0
    assert (run_dir / "rerendered" / "report.html").is_file()


def test_another_policy_changes_the_verdict(run_dir, tmp_path):
    strict = tmp_path / "strict.yaml"
    strict.write_text("defaults: none\nrules:\n  - {metric: robustness.clean_accuracy, operator: '>=', target: 1.01}\n")
    lax = tmp_path / "lax.yaml"
    lax.write_text("defaults: none\nrules:\n  - {metric: robustness.clean_accuracy, operator: '>=', target: 0.1}\n")
    for policy, word in ((strict, "FAIL"), (lax, "PASS")):
        res = CliRunner().invoke(main, ["report", str(run_dir), "--policy", str(policy), "-o", str(tmp_path / word)])
        assert res.exit_code == 0, res.output
        md = (tmp_path / word / "report.md").read_text()
        assert f"**{word}**" in md and "judged again against the policy given" in md
        assert json.loads((tmp_path / word / "policy.json").read_text())["passed"] is (word == "PASS")


def test_without_checkpoints_the_report_says_what_it_lacks(run_dir, tmp_path):
    bare = tmp_path / "bare"
    bare.mkdir()
    shutil.copy(run_dir / "result.json", bare / "result.json")
    res = CliRunner().invoke(main, ["report", str(bare), "-o", str(tmp_path / "y")])
    assert res.exit_code == 0, res.output
    md = (tmp_path / "y" / "report.md").read_text()
    assert "robustness: example images" in md and _table(md) == _table((run_dir / "report.md").read_text())


def test_refusals_are_one_line(run_dir, tmp_path):
    res = CliRunner().invoke(main, ["report", str(tmp_path)])
    assert res.exit_code == 2 and "holds no result.json" in res.output
    assert len(res.output.strip().splitlines()) == 1
    before = (run_dir / "report.html").read_text()
    res = CliRunner().invoke(main, ["report", str(run_dir), "--out", str(run_dir)])
    assert res.exit_code == 2 and "--force" in res.output and len(res.output.strip().splitlines()) == 1
    assert (run_dir / "report.html").read_text() == before
    res = CliRunner().invoke(main, ["report", str(run_dir), "--out", str(run_dir), "--force"])
    assert res.exit_code == 0 and "Re-rendered from" in (run_dir / "report.md").read_text()


def test_links_are_relative_to_where_the_page_is_written(digits_target, digits_split, tmp_path):
    """A re-rendered page (RUN_DIR/rerendered or any --out) still reaches the related runs' reports and the
    run's files: links are made relative to the page's folder, not the run's."""
    from aisec.api import assess
    from aisec.report.html import render

    data = digits_split[1].subset(range(20), name="digits-20")
    checks = {"robustness": {"attacks": ["fgsm"], "eps": [0.1], "samples": 20, "clever": {"enabled": False},
                             "reliability": {"enabled": False}, "examples": 0, "save_adversarial": 0}}
    main_run = assess(digits_target, data, checks=checks, out=tmp_path / "run")
    sub = assess(digits_target, data, checks=checks, out=tmp_path / "run" / "privacy-overfit")
    main_run.related.append(sub)
    assert 'href="privacy-overfit/report.html"' in render(main_run, at=tmp_path / "run")
    page = render(main_run, at=tmp_path / "run" / "rerendered")
    assert 'href="../privacy-overfit/report.html"' in page and "<code>../samples/</code>" in page
    assert (tmp_path / "run" / "privacy-overfit" / "evidence.jsonl").is_file()
    elsewhere = render(main_run, at=tmp_path / "other" / "x")
    assert 'href="../../run/privacy-overfit/report.html"' in elsewhere


def test_a_run_that_failed_before_measuring_leaves_its_folder_reusable(tmp_path):
    """A command that failed before any check finished leaves only plan.yaml; the corrected command may use the
    same -o (its plan replaces the old one), while a folder with measurements is still protected."""
    out = tmp_path / "run"
    base = ["assess", "-m", "digits-cnn", "-d", "digits", "--split", "test", "-a", "fgsm", "--eps", "0.1",
            "-c", "10", "--clever-samples", "0", "-o", str(out), "-q", "--no-store"]
    bad = CliRunner().invoke(main, [*base, "--target-label", "99"])
    assert bad.exit_code != 0 and "target_label 99 is not a class" in bad.output
    assert sorted(p.name for p in out.iterdir()) == ["plan.yaml"]
    good = CliRunner().invoke(main, base)
    assert good.exit_code == 0, good.output
    assert "target_label" not in (out / "plan.yaml").read_text()
    again = CliRunner().invoke(main, base)
    assert again.exit_code != 0 and "already holds a run" in again.output
