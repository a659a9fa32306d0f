"""The shipped knowledge base against the ATLAS release it cites: every id, name, tactic and link must match,
so a threat can never again be paired with another technique's name; and every check, metric, attack and
defence it names must exist in aisec."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest
import yaml

from aisec.core import registry
from aisec.policy.catalogue import load_catalogue
from aisec.threats.kb import load_kb, load_release, load_sources, load_standards

ROOT = Path(__file__).resolve().parents[3]


def test_release_is_the_one_cited() -> None:
    rel = load_release()
    atlas = next(s for s in load_sources().sources if s.id == "atlas")
    assert (rel.release, rel.tag, rel.commit, rel.license) == (atlas.release, atlas.tag, atlas.commit, "Apache-2.0")
    # the release's own counts (REFERENCES.md: 16 tactics, 170 techniques, 35 mitigations in 5.6.0)
    assert (len(rel.tactics), len(rel.techniques), len(rel.mitigations)) == (16, 170, 35)
    assert len({t.id for t in rel.techniques}) == 170


def test_every_threat_id_name_and_tactic_matches_the_release() -> None:
    rel = load_release()
    for t in load_kb().threats:
        tech = rel.technique(t.id)
        assert tech is not None, f"{t.id} is not in ATLAS {rel.release}"
        assert t.name == tech.name, f"{t.id}: shipped name {t.name!r}, ATLAS {rel.release} says {tech.name!r}"
        assert sorted(t.tactics) == sorted(rel.tactics_of(t.id)), t.id


def test_every_mitigation_exists_and_atlas_links_it_to_the_threat() -> None:
    rel = load_release()
    for t in load_kb().threats:
        for m in t.mitigations:
            mit = rel.mitigation(m.id)
            assert mit is not None, f"{t.id}: mitigation {m.id} is not in ATLAS {rel.release}"
            assert t.id in mit.techniques, f"ATLAS {rel.release} does not link {m.id} {mit.name} to {t.id}"


def test_the_policy_catalogue_names_match_the_release_too() -> None:
    rel = load_release()
    cat = load_catalogue()
    for t in cat.threats:
        tech = rel.technique(t.id)
        assert tech is not None and tech.name == t.name, t.id
        assert t.parent == tech.parent
    for m in cat.mitigations:
        mit = rel.mitigation(m.id)
        assert mit is not None and mit.name == m.name, m.id


def test_checks_metrics_attacks_and_defences_exist() -> None:
    registry.load_plugins()
    cat = load_catalogue()
    checks = set(registry.names("check"))
    families = {"evasion", "inference", "poisoning"}
    attacks = {n for f in families for n in registry.names(f)}
    for t in load_kb().threats:
        assert set(t.checks) <= checks, t.id
        for metric in t.metrics:
            entry = cat.metric(metric)
            assert entry is not None, f"{t.id}: unknown metric {metric}"
            assert entry.check in t.checks, f"{t.id}: {metric} comes from {entry.check}, not {t.checks}"
        assert set(t.attacks) <= attacks, f"{t.id}: unknown attacks {set(t.attacks) - attacks}"
        assert bool(t.checks) != bool(t.untested), f"{t.id}: a threat is measured or says why not"
        for m in t.mitigations:
            for d in m.defences:
                family, _, name = d.partition(":")
                assert name in registry.names(family), f"{t.id}: no {family} named {name}"


def test_standards_rows_have_sources_and_known_metrics() -> None:
    cat = load_catalogue()
    kb = load_kb()
    std = load_standards()
    assert {r.standard.split(":")[0].split(" (")[0] for r in std.rows} >= {
        "ISO/IEC 24029-2", "ISO/IEC TR 24028", "EU AI Act Art. 15", "BSI AIC4"}
    for r in std.rows:
        assert r.source.strip()
        assert all(cat.metric(m) is not None for m in r.metrics), r.clause
        assert all(kb.threat(t) is not None for t in r.threats), r.clause
        assert r.metrics or r.note, f"{r.standard} {r.clause}: a row without measures says why"
    # the four attack classes Art. 15(5) names each have a row
    clauses = {r.clause for r in std.rows if r.standard == "EU AI Act Art. 15"}
    for c in ("data poisoning", "model poisoning", "adversarial examples", "confidentiality attacks"):
        assert any(c in x for x in clauses), c
    assert [g.standard for g in std.gaps] == ["ISO/IEC 42001:2023"]


def _extractor():  # type: ignore[no-untyped-def]
    spec = importlib.util.spec_from_file_location("atlas_extract", ROOT / "scripts" / "atlas_extract.py")
    assert spec is not None and spec.loader is not None
    mod = importlib.util.module_from_spec(spec)
    sys.modules["atlas_extract"] = mod
    spec.loader.exec_module(mod)
    return mod


def test_extractor_trims_a_release_to_ids_names_and_links() -> None:
    atlas = {"version": "9.9.9", "matrices": [{
        "tactics": [{"id": "AML.TA0001", "name": "AI Attack Staging", "description": "long"}],
        "techniques": [
            {"id": "AML.T0043", "name": "Craft Adversarial Data", "tactics": ["AML.TA0001"], "description": "x"},
            {"id": "AML.T0043.000", "name": "White-Box Optimization", "subtechnique-of": "AML.T0043"},
        ],
        "mitigations": [{"id": "AML.M0003", "name": "Model Hardening", "description": "y",
                         "techniques": [{"id": "AML.T0043.000", "use": "z"}, {"id": "AML.T0043", "use": "w"}]}],
    }]}
    out = _extractor().extract(atlas, commit="abc", tag="v9.9.9")
    assert out["release"] == "9.9.9" and out["commit"] == "abc"
    assert out["techniques"] == [{"id": "AML.T0043", "name": "Craft Adversarial Data", "tactics": ["AML.TA0001"]},
                                 {"id": "AML.T0043.000", "name": "White-Box Optimization", "parent": "AML.T0043"}]
    assert out["mitigations"] == [{"id": "AML.M0003", "name": "Model Hardening",
                                   "techniques": ["AML.T0043", "AML.T0043.000"]}]
    assert "description" not in yaml.safe_dump(out)


def test_shipped_release_file_carries_its_licence_and_provenance() -> None:
    """The trimmed release keeps the Apache-2.0 notice and names the release and commit it was cut from."""
    text = (ROOT / "src" / "aisec" / "threats" / "data" / "atlas-release.yaml").read_text(encoding="utf-8")
    assert "Apache License" in text and "The MITRE Corporation" in text
    rel = load_release()
    assert f"release {rel.release} (tag {rel.tag}, commit {rel.commit}" in text
    assert rel.source.endswith(f"{rel.commit}/dist/ATLAS.yaml")


@pytest.mark.parametrize("tid", ["AML.T0043.000", "AML.T0024.000"])
def test_kb_lookups(tid: str) -> None:
    assert load_kb().threat(tid) is not None
    assert load_kb().threat("AML.T9999") is None
