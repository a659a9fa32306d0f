"""The evidence workflow connects: what `assess` and `demo` measure is in the store unless --no-store,
`evidence import` says what it imported (sub-runs included), and read-only commands create nothing."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from aisec.cli.main import main
from aisec.core.evidence import read_jsonl


@pytest.fixture()
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, aisec_cache: str) -> Path:
    h = tmp_path / "home"
    monkeypatch.setenv("AISEC_HOME", str(h))
    monkeypatch.delenv("AISEC_STORE_URL", raising=False)
    return h


def _assess(out: Path, *extra: str) -> object:
    return CliRunner().invoke(main, ["assess", "-m", "digits-cnn", "-d", "digits", "--split", "test", "-t",
                                     "robustness", "-a", "fgsm", "--eps", "0.1", "-c", "16", "--clever-samples", "0",
                                     "-o", str(out), "-q", *extra])


def test_assess_stores_by_default_and_evidence_list_finds_it(home: Path, tmp_path: Path) -> None:
    res = _assess(tmp_path / "r")
    assert res.exit_code == 0, res.output
    assert "stored run" in res.output
    assert (home / "evidence.db").is_file()
    records = read_jsonl(tmp_path / "r" / "evidence.jsonl")
    listed = CliRunner().invoke(main, ["evidence", "list", "--run", records[0].run_id, "--json"])
    assert listed.exit_code == 0, listed.output
    ids = {json.loads(line)["id"] for line in listed.stdout.splitlines() if line.strip()}
    assert ids == {r.id for r in records}


def test_no_store_keeps_the_store_untouched(home: Path, tmp_path: Path) -> None:
    res = _assess(tmp_path / "r", "--no-store")
    assert res.exit_code == 0, res.output
    assert "stored run" not in res.output
    assert not (home / "evidence.db").exists()


def test_store_and_no_store_together_are_refused(home: Path, tmp_path: Path) -> None:
    res = _assess(tmp_path / "r", "--no-store", "--store", str(tmp_path / "x.db"))
    assert res.exit_code == 2
    assert "contradict" in res.output
    assert not (tmp_path / "x.db").exists()


def test_read_only_commands_never_create_a_database(home: Path, tmp_path: Path) -> None:
    missing = tmp_path / "nothing.db"
    for cmd in (["evidence", "list"], ["graph"], ["evidence", "show", "abc"]):
        res = CliRunner().invoke(main, [*cmd, "--store", str(missing)])
        assert res.exit_code != 0, (cmd, res.output)
        assert not missing.exists(), cmd
    assert not (home / "evidence.db").exists()


def test_import_reports_each_run_and_includes_sub_runs(home: Path, tmp_path: Path) -> None:
    out = tmp_path / "r"
    assert _assess(out, "--no-store").exit_code == 0
    assert _assess(out / "privacy" / "sub", "--no-store").exit_code == 0  # a run folder inside a run folder
    main_id = read_jsonl(out / "evidence.jsonl")[0].run_id
    sub = read_jsonl(out / "privacy" / "sub" / "evidence.jsonl")
    res = CliRunner().invoke(main, ["evidence", "import", str(out)])
    assert res.exit_code == 0, res.output
    assert f"run {main_id}:" in res.output and f"run {sub[0].run_id}: {len(sub)} added, 0 already present" in res.output
    again = CliRunner().invoke(main, ["evidence", "import", str(out)])
    assert f"run {sub[0].run_id}: 0 added, {len(sub)} already present" in again.output


def test_demo_stores_its_run_and_its_privacy_runs(home: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                  digits_target: object, digits_split: object) -> None:
    import aisec.demo.digits
    from aisec.api import assess

    _, test = digits_split  # type: ignore[misc]
    checks = {"robustness": {"attacks": ["fgsm"], "eps": [0.1], "samples": 16, "clever": {"enabled": False}}}

    def small_demo(*, out: str, **kw: object) -> object:  # the demo's shape (a run + related runs), in seconds
        run = assess(digits_target, test, checks=checks, out=out, existing="overwrite")  # type: ignore[arg-type]
        run.related.append(assess(digits_target, test, checks=checks, out=Path(out) / "privacy" / "over"))  # type: ignore[arg-type]
        return run

    monkeypatch.setattr(aisec.demo.digits, "run_demo", small_demo)
    res = CliRunner().invoke(main, ["demo", "-q", "-o", str(tmp_path / "demo")])
    assert res.exit_code == 0, res.output
    assert "stored 2 run(s)" in res.output
    for folder in (tmp_path / "demo", tmp_path / "demo" / "privacy" / "over"):
        run_id = read_jsonl(folder / "evidence.jsonl")[0].run_id
        listed = CliRunner().invoke(main, ["evidence", "list", "--run", run_id, "--json"])
        assert listed.exit_code == 0 and listed.stdout.strip(), listed.output
    assert CliRunner().invoke(main, ["demo", "-q", "--no-store", "-o", str(tmp_path / "d2")]).exit_code == 0


def test_an_unusable_default_store_warns_and_the_run_goes_on(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                             aisec_cache: str) -> None:
    blocker = tmp_path / "home-is-a-file"
    blocker.write_text("not a folder")
    monkeypatch.setenv("AISEC_HOME", str(blocker))  # the default store cannot be created under a file
    monkeypatch.delenv("AISEC_STORE_URL", raising=False)
    res = _assess(tmp_path / "r")
    assert res.exit_code == 0, res.output
    assert "default evidence store could not be opened" in res.output
    assert (tmp_path / "r" / "evidence.jsonl").is_file()
    named = _assess(tmp_path / "r2", "--store", str(blocker / "x.db"))  # a store the user names must work
    assert named.exit_code != 0
