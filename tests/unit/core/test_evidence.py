from __future__ import annotations

from aisec.core.evidence import Environment, Evidence, Resource, read_jsonl, write_jsonl
from aisec.core.stats import wilson


def _record(value: float = 0.5) -> Evidence:
    return Evidence(
        tool_version="0.1.0", run_id="r", check="robustness", metric="robustness.robust_accuracy",
        value=value, unit="fraction", higher_is_better=True, interval=wilson(5, 10), sample_count=10,
        parameters={"attack": "pgd", "eps": 0.1}, seed=0,
        resource=Resource(model_name="m", model_sha256="a" * 64, model_access="white",
                          dataset_name="d", dataset_digest="b" * 64),
        environment=Environment.capture("cpu"),
    )


def test_jsonl_round_trip_is_identical(tmp_path):
    recs = [_record(0.1), _record(0.2)]
    path = write_jsonl(recs, tmp_path / "e.jsonl")
    back = read_jsonl(path)
    assert back == recs
    assert [r.sha256() for r in back] == [r.sha256() for r in recs]


def test_canonical_json_changes_with_content():
    a = _record(0.1)
    b = a.model_copy(update={"value": 0.2})
    assert a.sha256() != b.sha256()
    assert a.canonical_json() == Evidence.model_validate_json(a.model_dump_json()).canonical_json()


def test_evidence_is_frozen():
    import pydantic
    import pytest

    r = _record()
    with pytest.raises(pydantic.ValidationError):
        r.value = 1.0  # type: ignore[misc]
