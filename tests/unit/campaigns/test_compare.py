"""aisec compare: MOVER/Newcombe intervals, McNemar's exact test, and two real runs on the same samples."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from aisec.campaigns.compare import compare_runs, load_run, mcnemar_exact, mover_interval
from aisec.core.errors import DataError
from aisec.core.stats import wilson

CHECK = {"robustness": {"attacks": ["fgsm"], "eps": [0.1], "samples": 40, "clever": {"enabled": False},
                        "reliability": {"enabled": False}, "examples": 0, "save_adversarial": 0}}


def test_mover_on_wilson_is_newcombes_method_10() -> None:
    """Newcombe (1998), Stat. Med. 17:873, example (a): 56/70 - 48/80 = 0.2, method 10 gives 0.0524 to 0.3339."""
    a, b = wilson(48, 80), wilson(56, 70)
    low, high = mover_interval(48 / 80, a.low, a.high, 56 / 70, b.low, b.high)
    assert (round(low, 4), round(high, 4)) == (0.0524, 0.3339)


def _exact_mcnemar(b: int, c: int) -> float:
    """Two-sided exact McNemar from the binomial sum, written out."""
    n = b + c
    k = min(b, c)
    return min(1.0, 2 * sum(math.comb(n, i) for i in range(k + 1)) / 2 ** n)


@pytest.mark.parametrize("b, c", [(0, 5), (3, 9), (10, 10), (1, 20), (7, 2)])
def test_mcnemar_matches_the_binomial_sum_and_is_symmetric(b: int, c: int) -> None:
    rng = np.random.default_rng(b * 31 + c)
    both = rng.integers(0, 2, size=15).astype(bool)  # concordant pairs: right or wrong in both
    ra = np.concatenate([np.ones(b, bool), np.zeros(c, bool), both])
    rb = np.concatenate([np.zeros(b, bool), np.ones(c, bool), both])
    p = mcnemar_exact(ra, rb)
    assert (p.a_only, p.b_only, p.shared) == (b, c, b + c + 15)
    assert p.p_value == pytest.approx(_exact_mcnemar(b, c), rel=1e-9)
    assert mcnemar_exact(rb, ra).p_value == pytest.approx(p.p_value)
    assert mcnemar_exact(ra, ra).p_value == 1.0


@pytest.fixture(scope="module")
def two_runs(tmp_path_factory: pytest.TempPathFactory, digits_target, digits_split) -> tuple[Path, Path]:
    """The digits CNN as it is, and behind a strong blur: the same 40 samples, different verdicts."""
    from aisec.api import assess

    base = tmp_path_factory.mktemp("compare")
    _, test = digits_split
    assess(digits_target, test, checks=CHECK, out=base / "a")
    assess(digits_target, test, checks=CHECK, out=base / "b", defence="gaussian-blur:sigma=1.5")
    return base / "a", base / "b"


def test_two_runs_on_the_same_samples_are_paired(two_runs: tuple[Path, Path]) -> None:
    a, b = (load_run(p) for p in two_runs)
    c = compare_runs(a, b)
    assert c.same_data
    by = {(d.metric, d.parameters.get("eps")): d for d in c.diffs}
    clean = by[("robustness.clean_accuracy", None)]
    robust = by[("robustness.robust_accuracy", 0.1)]
    for d in (clean, robust):
        assert d.paired is not None and d.paired.shared == 40
        # the discordant counts give the difference exactly: (b_only - a_only) / n = B - A
        assert (d.paired.b_only - d.paired.a_only) / 40 == pytest.approx(d.diff)
        assert d.low is not None and d.high is not None and d.low <= d.diff <= d.high
    assert clean.diff < 0  # the blur costs clean accuracy


def test_a_run_against_itself_differs_in_nothing(two_runs: tuple[Path, Path]) -> None:
    a = load_run(two_runs[0])
    c = compare_runs(a, a)
    assert c.diffs and not c.only_a and not c.only_b
    assert all(d.diff == 0 and not d.significant() for d in c.diffs)
    assert all(d.paired.p_value == 1.0 for d in c.diffs if d.paired is not None)


def test_a_table_that_does_not_give_the_value_is_not_paired(two_runs: tuple[Path, Path], tmp_path: Path) -> None:
    import shutil

    copy = tmp_path / "b"
    shutil.copytree(two_runs[1], copy)
    csv_path = copy / "samples" / "robustness-samples.csv"
    lines = csv_path.read_text().splitlines()
    head = lines[0].split(",")
    col = head.index("clean_correct")
    rows = [r.split(",") for r in lines[1:]]
    for r in rows:
        r[col] = "1"  # no longer the verdicts behind the recorded clean accuracy
    csv_path.write_text("\n".join([lines[0], *(",".join(r) for r in rows)]) + "\n")
    c = compare_runs(load_run(two_runs[0]), load_run(copy))
    assert all(d.paired is None for d in c.diffs if d.metric == "robustness.clean_accuracy")


def test_compare_cli_writes_json(two_runs: tuple[Path, Path], tmp_path: Path) -> None:
    from aisec.cli.main import main

    out = tmp_path / "c.json"
    res = CliRunner().invoke(main, ["compare", str(two_runs[0]), str(two_runs[1]), "--json", str(out)])
    assert res.exit_code == 0, res.output
    assert "shared measurements" in res.output
    doc = json.loads(out.read_text())
    assert doc["same_data"] and any(d["paired"] for d in doc["diffs"])


def test_compare_needs_runs(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="not a run folder"):
        load_run(tmp_path / "nope")
    from aisec.cli.main import main

    res = CliRunner().invoke(main, ["compare", str(tmp_path), str(tmp_path)])
    assert res.exit_code == 2 and "evidence.jsonl" in res.output
