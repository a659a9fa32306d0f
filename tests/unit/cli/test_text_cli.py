"""`aisec assess` on a local Hugging Face folder with a CSV of reviews: text data from the command line."""

from __future__ import annotations

import csv
import json
import shutil

import pytest
import yaml
from click.testing import CliRunner

pytest.importorskip("transformers")

from aisec.cli.main import main
from aisec.core.evidence import read_jsonl

CLASSES = ("negative", "positive")


@pytest.fixture(scope="module")
def bert_folder(tmp_path_factory):
    from aisec.testing.text import cached_tiny_sentiment_bert

    d = tmp_path_factory.mktemp("cli-text") / "tiny-bert"
    shutil.copytree(cached_tiny_sentiment_bert(), d)
    return d


def _reviews(path, texts, labels):
    with open(path, "w", encoding="utf-8", newline="") as f:
        w = csv.writer(f)
        w.writerow(["id", "text", "label"])
        for i, (t, y) in enumerate(zip(texts, labels, strict=True)):
            w.writerow([i, t, CLASSES[int(y)]])  # string labels: sorted, they are the model's order
    return path


def test_assess_a_hf_folder_on_a_csv_of_reviews(bert_folder, tmp_path):
    from aisec.testing.text import toy_sentiment

    data = _reviews(tmp_path / "reviews.csv", *toy_sentiment(10, seed=31))
    out = tmp_path / "rep"
    res = CliRunner().invoke(main, [
        "assess", "-m", str(bert_folder), "-d", str(data), "--text-column", "text", "--label-column", "label",
        "--checks", "robustness,explainability", "-c", "10", "--explain-samples", "2", "--num-samples", "60",
        "--out", str(out), "--json", "-q",
    ])
    assert res.exit_code == 0, res.output
    summary = json.loads(res.stdout)
    rob = summary["checks"]["robustness"]["summary"]
    assert rob["clean_accuracy"] >= 0.9  # the texts reached the model as words, not [UNK]s
    assert [c["attack"] for c in rob["curves"]] == ["hotflip", "embedding_pgd"]
    records = read_jsonl(out / "evidence.jsonl")
    metrics = {r.metric for r in records}
    assert metrics >= {"robustness.clean_accuracy", "robustness.robust_accuracy",
                       "explainability.faithfulness_deletion"}
    plan = yaml.safe_load((out / "plan.yaml").read_text())
    assert plan["data"] == {"source": str(data), "options": {"text_column": "text", "label_column": "label"},
                            "scale": "auto"}
    assert (out / "report.html").stat().st_size > 5_000 and (out / "report.md").exists()


def test_privacy_from_a_plan_with_member_and_non_member_files(bert_folder, tmp_path):
    """The CLI takes non-members for privacy through --plan (there is no flag); both files get the same
    max_bytes so their byte tensors share a shape."""
    from aisec.testing.text import toy_sentiment, training_texts

    texts, y = training_texts()
    members = _reviews(tmp_path / "members.csv", texts[:60], y[:60])
    fresh, fy = toy_sentiment(200, seed=777)
    seen = set(texts)
    keep = [i for i, t in enumerate(fresh) if t not in seen][:60]
    nonmembers = _reviews(tmp_path / "heldout.csv", [fresh[i] for i in keep], fy[keep])
    opts = {"text_column": "text", "max_bytes": 96}
    plan = tmp_path / "plan.yaml"
    plan.write_text(yaml.safe_dump({
        "model": str(bert_folder), "data": {"source": str(members), "options": opts},
        "checks": {"privacy": {"nonmembers": {"source": str(nonmembers), "options": opts}, "samples": 60}},
    }))
    out = tmp_path / "rep"
    res = CliRunner().invoke(main, ["assess", "--plan", str(plan), "--out", str(out), "--json", "-q"])
    assert res.exit_code == 0, res.output
    priv = json.loads(res.stdout)["checks"]["privacy"]["summary"]
    assert {a["attack"] for a in priv["attacks"]} == {"loss", "confidence", "gap"}
    auc = [r for r in read_jsonl(out / "evidence.jsonl") if r.metric == "privacy.mia_auc"]
    assert len(auc) == 3 and all(0.0 <= r.value <= 1.0 for r in auc)


def test_bad_text_file_is_a_clean_cli_error(bert_folder, tmp_path):
    bad = tmp_path / "bad.csv"
    bad.write_text("text,label\nfine film,positive\nawful,NaN\n", encoding="utf-8")
    res = CliRunner().invoke(main, ["assess", "-m", str(bert_folder), "-d", str(bad), "--text-column", "text",
                                    "--out", str(tmp_path / "rep"), "-q"])
    assert res.exit_code == 2
    assert "line 3, column 'label': the label is 'NaN'" in res.output
    assert not (tmp_path / "rep" / "evidence.jsonl").exists()


def test_report_shows_adversarial_texts_marked_and_escapes_hostile_text(bert_folder, tmp_path):
    """Texts and class names come from user files: the report shows them escaped, never as live HTML,
    with the words HotFlip changed marked."""
    from aisec.testing.text import toy_sentiment

    texts, y = toy_sentiment(8, seed=5)
    path = tmp_path / "hostile.csv"
    with open(path, "w", encoding="utf-8", newline="") as f:
        w = csv.writer(f)
        w.writerow(["text", "label"])
        for i, (t, k) in enumerate(zip(texts, y, strict=True)):
            w.writerow([f"<script>alert({i})</script> {t}", ("<i>negative</i>", "<i>positive</i>")[int(k)]])
    out = tmp_path / "rep"
    res = CliRunner().invoke(main, [
        "assess", "-m", str(bert_folder), "-d", str(path), "--text-column", "text", "--checks", "robustness",
        "-c", "8", "--out", str(out), "-q",
    ])
    assert res.exit_code == 0, res.output
    html = (out / "report.html").read_text(encoding="utf-8")
    assert "<script>alert(" not in html and "<i>negative</i>" not in html
    assert "&lt;i&gt;negative&lt;/i&gt;" in html
    assert "Examples: hotflip" in html and "<mark>" in html


def test_privacy_with_nonmembers_flag_reads_them_like_the_members(bert_folder, tmp_path):
    """--nonmembers takes the members' text options; the two files' byte widths differ (their longest
    texts do) and the check pads the narrower set with zeros, which loses nothing."""
    from aisec.testing.text import toy_sentiment, training_texts

    texts, y = training_texts()
    members = _reviews(tmp_path / "members.csv", texts[:40], y[:40])
    fresh, fy = toy_sentiment(200, seed=778)
    keep = [i for i, t in enumerate(fresh) if t not in set(texts)][:40]
    nonmembers = _reviews(tmp_path / "heldout.csv", [fresh[i] for i in keep], fy[keep])
    from aisec.data.loading import load_dataset

    widths = {load_dataset(p, text_column="text").info.sample_shape for p in (members, nonmembers)}
    assert len(widths) == 2  # the case under test: different byte widths
    out = tmp_path / "rep"
    res = CliRunner().invoke(main, [
        "assess", "-m", str(bert_folder), "-d", str(members), "--text-column", "text",
        "--checks", "privacy", "--nonmembers", str(nonmembers), "--mia-attacks", "loss,gap", "--out", str(out),
        "--json", "-q",
    ])
    assert res.exit_code == 0, res.output
    priv = json.loads(res.stdout)["checks"]["privacy"]["summary"]
    assert {a["attack"] for a in priv["attacks"]} == {"loss", "gap"}
    plan = yaml.safe_load((out / "plan.yaml").read_text())
    assert plan["checks"]["privacy"]["nonmembers"] == {
        "source": str(nonmembers), "options": {"text_column": "text"}}
    bad = CliRunner().invoke(main, ["assess", "-m", str(bert_folder), "-d", str(members), "--text-column", "text",
                                    "--checks", "privacy", "--nonmembers-split", "test"])
    assert bad.exit_code == 2 and "--nonmembers-split needs --nonmembers" in bad.output
