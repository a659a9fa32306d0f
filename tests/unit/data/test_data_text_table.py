"""Text datasets from CSV/TSV/JSONL files: bytes, labels, class names (vs the stdlib readers), bad input."""

from __future__ import annotations

import csv
import json

import numpy as np
import pytest
import torch

from aisec.core.dataset import take
from aisec.core.errors import ConfigError, DataError
from aisec.core.types import Modality
from aisec.data import text_table
from aisec.data.loading import load_dataset
from aisec.data.text import decode_texts, encode_texts

REVIEWS = [
    ("a great film, really", "pos"),
    ("the plot was dull", "neg"),
    ('"quoted" and\nacross two lines', "neg"),
    ("un café très réussi", "pos"),  # multi-byte UTF-8
    ("so boring\tand tab-separated", "neg"),
]


def _write_csv(path, rows, header=("text", "label"), delimiter=","):
    with open(path, "w", encoding="utf-8", newline="") as f:
        w = csv.writer(f, delimiter=delimiter)
        w.writerow(header)
        w.writerows(rows)
    return path


def _write_jsonl(path, objs):
    path.write_text("".join(json.dumps(o) + "\n" for o in objs), encoding="utf-8")
    return path


@pytest.mark.parametrize("kind", ["csv", "tsv", "jsonl"])
def test_text_files_match_stdlib_readers_bytes_labels_and_sorted_classes(tmp_path, kind):
    """The reference is Python's own csv/json parsing of the same file."""
    if kind == "jsonl":
        p = _write_jsonl(tmp_path / "r.jsonl", [{"text": t, "label": y, "id": i} for i, (t, y) in enumerate(REVIEWS)])
        rows = [json.loads(line) for line in p.read_text(encoding="utf-8").splitlines()]
    else:
        sep = "\t" if kind == "tsv" else ","
        p = _write_csv(tmp_path / f"r.{kind}", REVIEWS, delimiter=sep)
        with p.open(encoding="utf-8", newline="") as f:
            rows = list(csv.DictReader(f, delimiter=sep))
    ref = {"text": [r["text"] for r in rows], "label": [r["label"] for r in rows]}
    d = load_dataset(p, text_column="text", label_column="label")
    x, y = take(d)
    assert d.info.modality is Modality.TEXT and x.dtype == torch.uint8
    assert d.info.classes == ("neg", "pos")  # string labels -> classes sorted
    widths = [len(t.encode("utf-8")) for t in ref["text"]]
    assert x.shape == (len(REVIEWS), max(widths))  # as wide as the longest text in BYTES, not characters
    assert decode_texts(x) == list(ref["text"])
    assert torch.equal(x, encode_texts(list(ref["text"])))
    assert y.tolist() == [d.info.classes.index(v) for v in ref["label"]]


def test_integer_labels_are_their_own_indices_and_classes_fix_the_order(tmp_path):
    p = _write_jsonl(tmp_path / "r.jsonl", [{"text": "good", "label": 2}, {"text": "bad", "label": 0.0}])
    d = load_dataset(p)  # keys default to text / label
    assert d.info.classes == ("0", "1", "2") and take(d)[1].tolist() == [2, 0]
    q = _write_csv(tmp_path / "s.csv", [("fine", "positive"), ("poor", "negative")])
    d = load_dataset(q, text_column="text", classes=["positive", "negative"])
    assert d.info.classes == ("positive", "negative") and take(d)[1].tolist() == [0, 1]


def test_two_column_csv_with_words_is_detected_as_text_and_numeric_tables_are_not(tmp_path):
    p = _write_csv(tmp_path / "r.csv", [("review one", "1"), ("review two", "0")], header=("review", "sentiment"))
    d = load_dataset(p)  # no text_column: two columns, the non-label one holds words
    assert d.info.modality is Modality.TEXT and decode_texts(take(d)[0]) == ["review one", "review two"]
    assert d.info.classes == ("0", "1")
    num = _write_csv(tmp_path / "n.csv", [("0.5", "1"), ("1.5", "0")], header=("x", "label"))
    assert load_dataset(num).info.modality is Modality.TABULAR
    three = _write_csv(tmp_path / "t.csv", [("words here", "1", "0.2")], header=("review", "label", "x"))
    with pytest.raises(DataError, match="must be numeric"):  # more columns: which is the text is not guessed
        load_dataset(three)
    d = load_dataset(three, text_column="review", label_column="label")
    assert decode_texts(take(d)[0]) == ["words here"]


def test_max_bytes_fixes_the_width_and_warns_when_it_cuts(tmp_path):
    p = _write_csv(tmp_path / "r.csv", [("ab", "x"), ("caf\u00e9s", "y")])  # 'café' ends at byte 5
    wide = load_dataset(p, max_bytes=32)
    assert take(wide)[0].shape == (2, 32) and decode_texts(take(wide)[0]) == ["ab", "caf\u00e9s"]
    with pytest.warns(UserWarning, match=r"1 of 2 texts are longer than max_bytes=4"):
        cut = load_dataset(p, max_bytes=4)
    x = take(cut)[0]
    assert x.shape == (2, 4)
    assert decode_texts(x) == ["ab", "caf"]  # cut at a character boundary, never half an '\u00e9'
    with pytest.raises(ConfigError, match="max_bytes must be a positive integer"):
        load_dataset(p, max_bytes=0)


def test_a_very_long_text_needs_max_bytes(tmp_path, monkeypatch):
    monkeypatch.setattr(text_table, "MAX_AUTO_BYTES", 10)
    p = _write_csv(tmp_path / "r.csv", [("short", "a"), ("a much longer text", "b")])
    with pytest.raises(DataError, match=r"longest text has 18 UTF-8 bytes \(row 2\).*max_bytes"):
        load_dataset(p, text_column="text")


def test_limit_keeps_the_first_rows(tmp_path):
    p = _write_csv(tmp_path / "r.csv", REVIEWS)
    d = load_dataset(p, text_column="text", limit=2)
    assert len(d) == 2 and decode_texts(take(d)[0]) == [REVIEWS[0][0], REVIEWS[1][0]]


@pytest.mark.parametrize(
    ("rows", "options", "match"),
    [
        ([("fine", "a")], {"text_column": "review"}, r"text column 'review' is not in .*columns are: text, label"),
        ([("fine", "a")], {"text_column": "text", "label_column": "y"}, r"label column 'y' is not in"),
        ([("fine", "a"), ("   ", "b")], {"text_column": "text"}, r"line 3, column 'text': the text is empty"),
        ([("fine", "a"), ("ok", "NaN")], {"text_column": "text"}, r"line 3, column 'label': the label is 'NaN'"),
        ([("fine", "a"), ("ok", "")], {"text_column": "text"}, r"line 3, column 'label': the label is empty"),
        ([("fine", "a", "extra")], {"text_column": "text"}, r"line 2 has 3 cells, expected 2"),
        ([], {"text_column": "text"}, r"holds no data rows"),
    ],
)
def test_bad_csv_text_tables_raise_specific_data_errors(tmp_path, rows, options, match):
    p = _write_csv(tmp_path / "r.csv", rows)
    with pytest.raises(DataError, match=match):
        load_dataset(p, **options)


@pytest.mark.parametrize(
    ("line", "match"),
    [
        ('{"text": "ok", "label": null}', r"line 2, column 'label': the label is missing \(null/NaN\)"),
        ('{"text": "ok", "label": NaN}', r"the label is missing"),
        ('{"text": "ok", "label": 0.5}', r"0.5 is not a class name or integer index"),
        ('{"text": "", "label": 1}', r"the text is empty"),
        ('{"text": 3, "label": 1}', r"the text must be a string, got int"),
        ('{"review": "ok", "label": 1}', r"line 2 has no key 'text'; its keys are: review, label"),
        ('{"text": "ok", "label": 1', r"line 2 is not valid JSON"),
        ('["ok", 1]', r"line 2 holds a JSON list"),
    ],
)
def test_bad_jsonl_lines_raise_specific_data_errors(tmp_path, line, match):
    p = tmp_path / "r.jsonl"
    p.write_text('{"text": "fine", "label": 0}\n' + line + "\n", encoding="utf-8")
    with pytest.raises(DataError, match=match):
        load_dataset(p)


@pytest.mark.parametrize("options", [{"text_column": "text"}, {}])  # told, or detected
def test_a_file_that_is_not_utf8_names_the_line(tmp_path, options):
    p = tmp_path / "r.csv"
    p.write_bytes(b"text,label\nfine,a\n" + "\u00e9t\u00e9,b\n".encode("latin-1"))
    with pytest.raises(DataError, match=r"not UTF-8 text: line 3 holds byte 0xe9"):
        load_dataset(p, **options)


def test_unknown_options_are_a_config_error(tmp_path):
    p = _write_csv(tmp_path / "r.csv", REVIEWS)
    with pytest.raises(ConfigError, match="does not take option ranges"):
        load_dataset(p, text_column="text", ranges=(0, 1))


def test_gzipped_jsonl_reads_like_plain(tmp_path):
    import gzip

    objs = [{"text": t, "label": y} for t, y in REVIEWS]
    plain = _write_jsonl(tmp_path / "r.jsonl", objs)
    gz = tmp_path / "r.jsonl.gz"
    gz.write_bytes(gzip.compress(plain.read_bytes()))
    a, b = take(load_dataset(plain)), take(load_dataset(gz))
    assert torch.equal(a[0], b[0]) and np.array_equal(a[1], b[1])
