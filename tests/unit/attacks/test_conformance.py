"""Every registered attack follows the house rules: typed params, a documented paper, the Outcome
contract, and a helpful CapabilityError on a target that lacks what it needs."""

from __future__ import annotations

import importlib
import warnings

import pytest
import torch

from aisec.attacks.base import EvasionParams, Outcome, run_attack
from aisec.core.errors import CapabilityError
from aisec.core.registry import ATTACKS, load_plugins
from aisec.core.types import Capability

load_plugins()
NAMES = sorted(ATTACKS)
GRADIENT_ATTACKS = sorted(n for n, a in ATTACKS.items() if Capability.GRADIENTS in a.requires)


@pytest.fixture(scope="module", autouse=True)
def _one_thread():
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


@pytest.fixture(scope="module")
def black_box(digits_split):
    from sklearn.linear_model import LogisticRegression

    from aisec.targets.sklearn import ProbaTarget

    train, _ = digits_split
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model = LogisticRegression(max_iter=200).fit(train.x[:300].reshape(300, -1).numpy(), train.y[:300].numpy())
    return ProbaTarget(model, input_shape=(1, 8, 8), num_classes=10, name="logreg")


@pytest.mark.parametrize("name", NAMES)
def test_attack_conforms(name, digits_target, digits_test_batch):
    info = ATTACKS[name]
    cls = info.cls
    assert issubclass(cls.Params, EvasionParams)
    assert cls.__doc__ and cls.__doc__.strip()
    assert info.paper.startswith("https://"), f"attack '{name}' registers no paper link"
    module_doc = importlib.import_module(cls.__module__).__doc__ or ""
    assert info.paper in module_doc, f"the docstring of {cls.__module__} does not cite {info.paper}"
    if not info.requires <= digits_target.spec.capabilities:
        pytest.skip(f"attack '{name}' needs capabilities the digits CNN lacks")
    x, y = digits_test_batch
    x, y = x[:8].float(), y[:8].long()
    params = {}
    fields = cls.Params.model_fields
    for key, cap in (("steps", 3), ("binary_search_steps", 2), ("max_iter", 3), ("n_queries", 100), ("epochs", 2),
                     ("max_queries", 100), ("n_target_classes", 2)):
        if key in fields:
            params[key] = min(fields[key].default, cap) if isinstance(fields[key].default, int) else cap
    out = run_attack(name, digits_target, x, y, params)
    assert isinstance(out, Outcome)
    assert out.x_adv.shape == x.shape and out.x_adv.dtype == x.dtype
    for t in (out.pred_clean, out.pred_adv, out.y, out.success, out.distance):
        assert t.shape == (8,)
    assert out.success.dtype == torch.bool
    assert out.norm == cls.Params().norm
    assert out.norm in info.norms, f"default norm of '{name}' is not among its registered norms"
    assert out.queries > 0


@pytest.mark.parametrize("name", GRADIENT_ATTACKS)
def test_gradient_attack_on_black_box_names_alternatives(name, black_box, digits_test_batch):
    x, y = digits_test_batch
    with pytest.raises(CapabilityError) as err:
        run_attack(name, black_box, x[:8].float(), y[:8].long())
    msg = str(err.value)
    assert "gradients" in msg and "Try" in msg
    caps = black_box.spec.capabilities
    usable = sorted(n for n, a in ATTACKS.items() if a.requires <= caps)
    if usable:
        for alt in usable:
            assert f"'{alt}'" in msg
    else:
        assert "torch module" in msg
    assert black_box.queries == 0
