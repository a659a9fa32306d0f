from __future__ import annotations

import pytest
import torch

from aisec.checks.privacy import PrivacyCheck, PrivacyParams
from aisec.demo_privacy import OVERFIT_MEMBERS, privacy_demo_model


@pytest.mark.slow
def test_overfitted_demo_model_leaks_and_regularised_one_much_less(aisec_cache):
    n = torch.get_num_threads()
    torch.set_num_threads(1)  # small CNN: one thread beats two contended ones
    try:
        over = privacy_demo_model("overfit")
        reg = privacy_demo_model("regularised")
        again = privacy_demo_model("overfit")  # from the cache, identical
    finally:
        torch.set_num_threads(n)
    assert all(torch.equal(a, b) for a, b in zip(over.model.state_dict().values(),
                                                  again.model.state_dict().values(), strict=True))
    assert len(over.members) == OVERFIT_MEMBERS
    aucs = {}
    for demo in (over, reg):
        r = PrivacyCheck().run(demo.target(), demo.members,
                               PrivacyParams(**demo.check_params(attacks=["loss", "gap"], shapr={"enabled": False})))
        aucs[demo.name] = r.measurement("privacy.mia_auc", attack="loss")
        if demo is over:
            assert r.summary["member_accuracy"] == 1.0 and r.summary["nonmember_accuracy"] < 0.95
    o, g = aucs["digits-cnn-overfit"], aucs["digits-cnn-regularised"]
    assert o.interval.low > 0.55
    assert g.value < o.value - 0.05 and g.interval.low < 0.52
