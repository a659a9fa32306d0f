from __future__ import annotations

import pytest
import torch
from click.testing import CliRunner

from aisec.demo.privacy import OVERFIT_MEMBERS, QUICK, privacy_demo_model, privacy_demo_runs


@pytest.mark.slow
def test_default_demo_shows_overfitted_model_leaking_and_regularised_one_much_less(aisec_cache):
    n = torch.get_num_threads()
    torch.set_num_threads(1)  # small CNNs: one thread beats two contended ones
    try:
        over = privacy_demo_model("overfit")
        again = privacy_demo_model("overfit")  # from the cache, identical
        over_run, reg_run = privacy_demo_runs(None, quick=True)  # what `aisec demo` runs by default
    finally:
        torch.set_num_threads(n)
    assert all(torch.equal(a, b) for a, b in zip(over.model.state_dict().values(),
                                                  again.model.state_dict().values(), strict=True))
    assert len(over.members) == OVERFIT_MEMBERS
    over_r, reg_r = over_run.results[0], reg_run.results[0]
    assert over_r.summary["member_accuracy"] == 1.0 and over_r.summary["nonmember_accuracy"] < 0.95
    keys = [s["key"] for s in over_r.summary["attacks"]]
    assert keys == ["loss", "confidence-mentr", "gap", "lira-online-fixedvar", "lira-offline", "rmia-offline"]
    for r in (over_r, reg_r):
        assert r.summary["nonmembers"] == QUICK["samples"]
        assert all(s["info"].get("reference_models", QUICK["reference_models"]) == QUICK["reference_models"]
                   for s in r.summary["attacks"])
        # TPR at 1% FPR is resolvable with 250 non-members and reported with an interval for every attack;
        # TPR at 0.1% is not (it would need 1000) and is withheld rather than reported as a number.
        tpr = [m for m in r.measurements if m.metric == "privacy.mia_tpr_at_1pct_fpr"]
        assert len(tpr) == len(keys) and all(m.interval and m.interval.contains(m.value) for m in tpr)
        assert not [m for m in r.measurements if m.metric == "privacy.mia_tpr_at_0.1pct_fpr"]
    for attack in ("loss", "lira"):
        o = over_r.measurement("privacy.mia_auc", attack=attack)
        g = reg_r.measurement("privacy.mia_auc", attack=attack)
        assert o.interval.low > 0.55, attack
        assert g.value < o.value - 0.05 and g.interval.low < 0.52, attack


def test_demo_cli_runs_privacy_by_default_and_skips_it_with_no_privacy(monkeypatch, tmp_path):
    import aisec.demo.digits
    from aisec.cli.main import main

    seen: list[dict[str, object]] = []

    def fake_run_demo(**kw: object) -> object:
        seen.append(kw)
        raise SystemExit(0)

    monkeypatch.setattr(aisec.demo.digits, "run_demo", fake_run_demo)
    runner = CliRunner()
    for flags in ([], ["--no-privacy"], ["--privacy-full"]):
        assert runner.invoke(main, ["demo", "-q", "-o", str(tmp_path), *flags]).exit_code == 0
    assert [(k["privacy"], k["privacy_full"]) for k in seen] == [(True, False), (False, False), (True, True)]
