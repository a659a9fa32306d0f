"""Certification graph: nodes and edges from evidence, catalogue integrity, GraphML and JSON-LD exports."""

from __future__ import annotations

import io

import pytest

from aisec.core.errors import ConfigError
from aisec.graph import build_graph
from aisec.policy.catalogue import load_catalogue
from aisec.policy.rules import evaluate_policy
from aisec.testing.evidence import fake_evidence, fake_run


@pytest.fixture
def records():
    mia = fake_evidence("privacy.mia_auc", 0.7, run_id="run-g", index=7, higher_is_better=False)
    return [*fake_run(3, run_id="run-g", threats=("AML.T0043.000",)), mia]


def test_catalogue_is_consistent_and_credits_atlas():
    cat = load_catalogue()
    assert "Apache" in cat.notice and "MITRE" in cat.notice
    assert cat.metric("robustness.robust_accuracy").requirements
    ids = {t.id for t in cat.threats}
    assert {"AML.T0043", "AML.T0015", "AML.T0020", "AML.T0024.000", "AML.T0024.002"} <= ids
    assert all(m.id.startswith("AML.M") for m in cat.mitigations)


def test_graph_links_metrics_to_what_they_evidence(records):
    g = build_graph(records, policy=evaluate_policy(records))
    kinds = {n.kind for n in g.nodes.values()}
    assert kinds == {"toe", "model", "dataset", "run", "metric", "requirement", "threat", "mitigation"}
    sr05 = g.resolve("AIC4/SR-05")
    assert len(g.neighbours(sr05.id, kind="metric")) == 4
    assert sr05.attrs["verdict"] in ("pass", "fail")
    mia = g.resolve("AML.T0024.000")
    assert [n.attrs["metric"] for n in g.neighbours(mia.id, kind="metric")] == ["privacy.mia_auc"]
    assert g.neighbours(mia.id, kind="mitigation")  # mitigations of tested threats are kept
    assert not any(n.id == "requirement:AIC4/SR-04" for n in g.nodes.values())  # pruned: no poisoning evidence
    with pytest.raises(ConfigError):
        g.resolve("AIC4/XX-99")


def test_graphml_reads_back_with_networkx(records):
    nx = pytest.importorskip("networkx")
    g = build_graph(records)
    back = nx.read_graphml(io.StringIO(g.to_graphml()))
    assert back.number_of_nodes() == len(g.nodes) and back.number_of_edges() == len(g.edges)
    some = next(n for n in g.nodes.values() if n.kind == "metric")
    assert back.nodes[some.id]["kind"] == "metric"


def test_jsonld_has_context_and_iris(records):
    doc = build_graph(records).to_jsonld()
    assert doc["@context"]["evidences"] == {"@type": "@id"}
    by_type = {}
    for obj in doc["@graph"]:
        by_type.setdefault(obj["@type"], []).append(obj)
        assert obj["@id"].startswith("urn:aisec:")
    assert all(o["sameAs"].startswith("https://atlas.mitre.org/techniques/AML.T") for o in by_type["threat"])
    metric = by_type["metric"][0]
    assert metric["evidences"] and metric["produced_by"] == ["urn:aisec:run:run-g"]


def test_every_metric_a_check_emits_is_in_the_catalogue():
    """Keeps the policy gate, graph and Clouditor mapping in step with the checks (literal metric ids)."""
    import re
    from pathlib import Path

    import aisec.checks

    known = {m.id for m in load_catalogue().metrics}
    missing = {}
    for f in Path(aisec.checks.__file__).parent.glob("*.py"):
        for metric in re.findall(r'metric="([a-z_]+\.[a-z0-9_.]+)"', f.read_text(encoding="utf-8")):
            if metric not in known:
                missing[metric] = f.name
    assert not missing, f"add these metric ids to src/aisec/policy/catalogue.yaml: {missing}"
