"""Issue 18, item 5: ``samples/robustness-samples.csv`` agrees with the aggregates it backs, and the
report quotes one CLEVER median.

The aggregate definitions (``checks/robustness.py``): attack success is counted over the
clean-correct samples only, and the median perturbation is the median distance of those successes.
So per sample, a clean-misclassified row is never ``fooled`` and has no distance (an empty cell),
and the CSV alone reproduces ``attack_success_rate`` and ``median_perturbation``. Tolerances: the CSV
writes 6 significant digits, so the median is compared at a relative 1e-5; the rates are exact
counts. CLEVER's median is numpy's (mean of the two middle scores) for the evidence, the summary
tile and the histogram legend alike; 4 scored samples make the count even, where ``torch.median``
(the lower middle value) would differ.
"""

from __future__ import annotations

import csv

import numpy as np
import pytest
import torch

from aisec.api import assess
from aisec.core.dataset import TensorDataset
from aisec.core.types import Modality
from aisec.report.figures import clever_legend


@pytest.fixture(autouse=True)
def _one_thread():
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


@pytest.fixture(scope="module")
def run_dir(digits_target, digits_split, tmp_path_factory):
    _, test = digits_split
    x, y = test.x[:48].clone(), test.y[:48].clone()
    y[:8] = (y[:8] + 1) % 10  # 8 clean-misclassified samples, whatever the model
    data = TensorDataset(x, y, name="digits-flipped", modality=Modality.IMAGE, classes=[str(i) for i in range(10)])
    out = tmp_path_factory.mktemp("run")
    torch.set_num_threads(1)
    run = assess(digits_target, data, out=out, checks={"robustness": {
        "attacks": ["fgsm"], "eps": [0.1, 0.3], "reference_eps": {}, "samples": 48,
        "clever": {"samples": 4, "nb_batches": 3, "batch_size": 16},
    }})
    return out, run


def _rows(out):
    with (out / "samples" / "robustness-samples.csv").open(newline="", encoding="utf-8") as fh:
        return list(csv.DictReader(fh))


def test_misclassified_rows_are_not_fooled_and_have_no_distance(run_dir):
    out, _ = run_dir
    rows = _rows(out)
    wrong = [r for r in rows if r["pred_clean"] != r["label"]]
    assert len(wrong) >= 8
    assert all(r["clean_correct"] == "0" for r in wrong)
    assert all(r["clean_correct"] == "1" for r in rows if r["pred_clean"] == r["label"])
    fooled_cols = [c for c in rows[0] if c.endswith(":fooled") and not c.startswith("worst-")]
    assert len(fooled_cols) == 2
    for c in fooled_cols:
        d = c.replace(":fooled", ":distance")
        assert all(r[c] == "0" and r[d] == "" for r in wrong), c
        assert all((r[c] == "1") == (r[d] != "") for r in rows), c


def test_csv_reproduces_success_rate_and_median_perturbation(run_dir):
    out, run = run_dir
    rows = _rows(out)
    eligible = sum(r["clean_correct"] == "1" for r in rows)
    checked = 0
    for m in run.evidence:
        if m.metric not in ("robustness.attack_success_rate", "robustness.median_perturbation"):
            continue
        p = m.parameters
        col = f"{p['attack']}-{p['norm']}@{p['eps']:g}"
        if m.metric == "robustness.attack_success_rate":
            assert sum(r[f"{col}:fooled"] == "1" for r in rows) / eligible == pytest.approx(m.value, abs=1e-12)
        else:
            d = np.array([float(r[f"{col}:distance"]) for r in rows if r[f"{col}:distance"]])
            assert d.size == m.sample_count
            assert float(np.median(d)) == pytest.approx(m.value, rel=1e-5)
        checked += 1
    assert checked >= 3  # 2 success rates and at least one median (FGSM fools some digits at 0.3)


def test_one_clever_median_for_evidence_tile_and_legend(run_dir):
    out, run = run_dir
    s = run.results[0].summary.clever["l2"]
    scores = np.asarray(s.scores, dtype=float)
    assert scores.size == 4 and np.isfinite(scores).all()
    expected = float(np.median(scores))  # mean of the two middle values
    assert s.median == pytest.approx(expected, rel=1e-12)
    ev = [m for m in run.evidence if m.metric == "robustness.clever_u"]
    assert len(ev) == 1 and ev[0].value == pytest.approx(expected, rel=1e-12)
    assert f"median {expected:.3g}," in clever_legend("l2", s)
    html = (out / "report.html").read_text(encoding="utf-8")
    assert f"<b>{expected:.3g}</b><span>median CLEVER-u score (l2)</span>" in html
