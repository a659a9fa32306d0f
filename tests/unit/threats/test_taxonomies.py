"""ENISA's ML threats and ETSI GR SAI 005's mitigation groups in the knowledge base: every name shipped
must appear in a short phrase quoted from its source (taxonomy-quotes.yaml, with the page URL), so a name
cannot drift from the source, and the links must land on aisec threats and countermeasures that exist."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner

from aisec.cli.main import main
from aisec.core import registry
from aisec.threats.kb import (
    MAX_QUOTE_WORDS,
    load_enisa,
    load_etsi,
    load_kb,
    load_quotes,
    load_release,
    load_sources,
    taxonomy_problems,
)

DATA = Path(__file__).resolve().parents[3] / "src" / "aisec" / "threats" / "data"


def test_shipped_rows_match_their_quoted_phrases() -> None:
    assert taxonomy_problems(load_enisa(), load_etsi(), load_quotes(), load_kb()) == []
    assert all(len(q.text.split()) <= MAX_QUOTE_WORDS for q in load_quotes().quotes)


@pytest.mark.parametrize("change", [
    {"enisa": "Evasion attack"},                      # a name the phrase does not hold
    {"quote": "Evasion Lack of detection of inputs"},  # a phrase the extract does not hold
    {"url": "https://fliphtml5.com/ixbap/nqox/ENISA_Report_-_Securing_Machine_Learning_Algorithms/35"},
    {"sub_threat": "Use of adversarial examples crafted in black box conditions"},
    {"threat": "AML.T9999"},
])
def test_a_drifted_enisa_row_is_caught(change: dict[str, str]) -> None:
    enisa = load_enisa()
    row = next(r for r in enisa.rows if r.threat == "AML.T0043.000")
    drifted = enisa.model_copy(update={"rows": (row.model_copy(update=change),)})
    problems = taxonomy_problems(drifted, load_etsi(), load_quotes(), load_kb())
    assert problems and all(p.startswith("enisa.yaml AML.T") for p in problems), problems


def test_a_drifted_etsi_group_or_link_is_caught() -> None:
    etsi = load_etsi()
    group = etsi.groups[0].model_copy(update={"name": "training-time attacks"})
    link = etsi.links[0].model_copy(update={"approach": "model hardening"})
    bad = etsi.model_copy(update={"groups": (group, *etsi.groups[1:]), "links": (link, *etsi.links[1:])})
    problems = taxonomy_problems(load_enisa(), bad, load_quotes(), load_kb())
    assert any("training-time attacks" in p and "not in the phrase" in p for p in problems)
    assert any("'model hardening' is not an approach" in p for p in problems)
    # a quote padded past 15 words is refused too
    quotes = load_quotes()
    long = quotes.quotes[0].model_copy(update={"text": " ".join(["word"] * (MAX_QUOTE_WORDS + 1))})
    padded = quotes.model_copy(update={"quotes": (*quotes.quotes, long)})
    assert any("longer than 15 words" in p for p in taxonomy_problems(load_enisa(), etsi, padded, load_kb()))


def test_every_quote_comes_from_a_recorded_source() -> None:
    sources = load_sources()
    pages = [s.copy_read or s.url for s in sources.sources if "taxonomy-quotes.yaml" in s.shipped]
    for q in load_quotes().quotes:
        assert any(q.url.startswith(p) for p in pages), q.url
    for s in sources.sources:
        for f in s.shipped:
            assert (DATA / f).is_file(), f"{s.id} ships {f}, which is not there"
    assert load_enisa().source == "enisa-sml" and sources.source("enisa-sml") is not None
    assert load_etsi().source == "etsi-sai-005-press" and sources.source("etsi-sai-005-press") is not None
    # what could not be sourced is said, not invented: the 2020 taxonomy and SAI 005's finer groups
    gaps = {g.source for g in sources.gaps}
    assert {"enisa", "etsi-sai-005"} <= gaps
    enisa_2020 = sources.source("enisa")
    assert enisa_2020 is not None and enisa_2020.shipped == ()


def test_enisa_pairs_every_measurable_family_once_per_threat() -> None:
    kb = load_kb()
    rows = load_enisa().rows
    assert len({r.threat for r in rows}) == len(rows), "one ENISA row per threat"
    fam = {t.id: t.family for t in kb.threats}
    expected = {"evasion": "Evasion", "poisoning": "Poisoning", "privacy": "Oracle", "extraction": "Oracle",
                "supply-chain": "Compromise of ML application components",
                "availability": "Failure or malfunction of ML application"}
    for r in rows:
        assert r.enisa == expected[fam[r.threat]], r.threat
    # every threat but the physical one (no ENISA phrase at hand names physical attacks) has a row
    assert {t.id for t in kb.threats} - {r.threat for r in rows} == {"AML.T0041"}


def test_etsi_links_name_existing_countermeasures_and_cover_every_defence() -> None:
    registry.load_plugins()
    kb, etsi, rel = load_kb(), load_etsi(), load_release()
    for x in etsi.links:
        family, sep, name = x.countermeasure.partition(":")
        if sep:
            assert name in registry.names(family), x.countermeasure
        else:
            assert rel.mitigation(x.countermeasure) is not None, x.countermeasure
    # every aisec defence the KB links to a threat is placed, against the attack class of that threat
    against = {"evasion": "inference attacks", "privacy": "inference attacks", "extraction": "inference attacks",
               "poisoning": "training attacks", "supply-chain": "training attacks"}
    for t in kb.threats:
        for m in t.mitigations:
            for d in m.defences:
                link = etsi.link(d)
                assert link is not None, f"{t.id}: {d} has no ETSI group"
                assert against[t.family] in link.against, f"{t.id}: {d} is against {link.against}"


def test_threats_show_prints_enisa_and_etsi() -> None:
    runner = CliRunner()
    out = runner.invoke(main, ["threats", "show", "AML.T0043.000"]).output
    assert "ENISA (Securing Machine Learning Algorithms, 2021; pairing by aisec):" in out
    assert "    Evasion > Use of adversarial examples crafted in white or grey box conditions" in out
    assert '"Evasion Lack of detection of abnormal inputs"  [https://fliphtml5.com/' in out
    assert "    training:pgd-at: inference attacks, model enhancement" in out
    assert "    defence:jpeg: inference attacks and training attacks, model-agnostic" in out
    out = runner.invoke(main, ["threats", "show", "AML.T0020"]).output
    assert "basis: \"No detection of poisoned samples in the training dataset\"" in out
    assert "    detector:activation-clustering: training attacks\n" in out  # no approach: not guessed
    out = runner.invoke(main, ["threats", "show", "AML.T0041"]).output
    assert "ENISA: no threat paired" in out and "ETSI" not in out
