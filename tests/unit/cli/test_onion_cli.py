"""`aisec assess --onion-lm DIR`: ONION against a text backdoor from the command line (plan, evidence, errors)."""

from __future__ import annotations

import csv
import json

import pytest
import yaml
from click.testing import CliRunner

pytest.importorskip("transformers")

from aisec.cli.main import main
from aisec.core.evidence import read_jsonl


def _reviews(path, n=200):
    from aisec.testing.text import toy_sentiment

    texts, labels = toy_sentiment(n, seed=31)
    with open(path, "w", encoding="utf-8", newline="") as f:
        w = csv.writer(f)
        w.writerow(["text", "label"])
        for t, y in zip(texts, labels, strict=True):
            w.writerow([t, ("negative", "positive")[int(y)]])
    return path


def test_onion_lm_flag_runs_onion_in_the_poisoning_check(tmp_path):
    from aisec.testing.text_families import cached_causal_lm, cached_family_classifier

    data, out, lm = _reviews(tmp_path / "reviews.csv"), tmp_path / "rep", cached_causal_lm()
    res = CliRunner().invoke(main, [
        "assess", "-m", str(cached_family_classifier("distilbert")), "-d", str(data), "--checks", "poisoning",
        "--poison-attack", "badnl", "--poison-rates", "0,0.1", "--train-epochs", "4", "--onion-lm", str(lm),
        "-c", "200", "--out", str(out), "--json", "-q"])
    assert res.exit_code == 0, res.output
    plan = yaml.safe_load((out / "plan.yaml").read_text())
    p = plan["checks"]["poisoning"]
    assert p["detect"] == ["onion"] and p["onion_lm"] == str(lm)
    summary = json.loads(res.stdout)["checks"]["poisoning"]["summary"]
    assert summary["onion"]["lm"] == str(lm) and len(summary["onion"]["points"]) == 2
    metrics = {r.metric for r in read_jsonl(out / "evidence.jsonl")}
    assert {"poisoning.asr_after_onion", "poisoning.clean_accuracy_after_onion", "poisoning.onion_auc"} <= metrics


def test_onion_lm_that_is_not_a_model_folder_is_one_clear_error(tmp_path):
    from aisec.testing.text_families import cached_family_classifier

    data = _reviews(tmp_path / "reviews.csv", 60)
    res = CliRunner().invoke(main, [
        "assess", "-m", str(cached_family_classifier("distilbert")), "-d", str(data), "--checks", "poisoning",
        "--poison-attack", "badnl", "--poison-rates", "0.1", "--onion-lm", str(tmp_path / "nope"), "-q",
        "--out", str(tmp_path / "rep")])
    assert res.exit_code != 0
    assert "Traceback" not in res.output and "nope" in res.output
