"""Triggers (BadNets, blended) and clean-label poisons (Hidden Trigger, Sleeper Agent)."""

from __future__ import annotations

import pytest
import torch

from aisec.attacks.poisoning import BlendTrigger, PatchTrigger, poison_dataset
from aisec.attacks.poisoning.hidden_trigger import HiddenTriggerParams, greedy_pairs, hidden_trigger
from aisec.attacks.poisoning.sleeper_agent import SleeperAgentParams, select_poisons, sleeper_agent
from aisec.core.errors import ConfigError
from aisec.models.zoo import DigitsCNN


def test_patch_is_stamped_where_asked() -> None:
    x = torch.zeros(3, 1, 8, 8)
    xp = PatchTrigger(size=2, position=(1, 4), pattern="white").apply(x)
    assert xp[:, 0, 1:3, 4:6].eq(1).all() and xp.sum() == 3 * 4
    xr = PatchTrigger(size=3, position="random", pattern="white").apply(torch.zeros(50, 1, 8, 8))
    assert xr.flatten(1).sum(1).eq(9).all()
    assert len({tuple(v.nonzero()[0].tolist()) for v in xr}) > 1  # positions differ


def test_patch_from_file(tmp_path) -> None:
    from PIL import Image

    img = Image.new("L", (4, 4), color=255)
    img.save(tmp_path / "t.png")
    xp = PatchTrigger(size=2, path=str(tmp_path / "t.png")).apply(torch.zeros(1, 1, 8, 8))
    assert xp[0, 0, 6:, 6:].eq(1).all()


def test_blend() -> None:
    x = torch.rand(4, 1, 8, 8)
    t = BlendTrigger(alpha=0.25, seed=3)
    assert torch.allclose(t.apply(x), 0.75 * x + 0.25 * t.full_pattern((1, 8, 8)))


@pytest.mark.parametrize(
    ("kwargs", "msg"),
    [({"size": 9}, "larger than the 8x8"), ({"size": 3, "position": (6, 0)}, "falls outside")],
)
def test_trigger_errors(kwargs, msg) -> None:
    with pytest.raises(ConfigError, match=msg):
        PatchTrigger(**kwargs).apply(torch.zeros(1, 1, 8, 8))


def test_poison_dataset_errors_and_nesting() -> None:
    x, y = torch.rand(100, 1, 8, 8), torch.arange(100) % 10
    trig = PatchTrigger()
    with pytest.raises(ConfigError, match="both 1"):
        poison_dataset(x, y, trig, rate=0.05, target_class=1, source_class=1)
    with pytest.raises(ConfigError, match="does not exist"):
        poison_dataset(x, y, trig, rate=0.05, target_class=12)
    ps = poison_dataset(x, y, trig, rate=0.05, target_class=1, source_class=0)
    assert ps.index.numel() == 5 and ps.y[ps.index].eq(1).all() and y[ps.index].eq(0).all()
    untouched = ~ps.is_poison
    assert torch.equal(ps.x[untouched], x[untouched])


def test_greedy_pairs_distinct() -> None:
    a, b = torch.randn(7, 5), torch.randn(12, 5)
    p = greedy_pairs(a, b)
    assert p.unique().numel() == 7
    assert torch.equal(greedy_pairs(b[:7], b), torch.arange(7))


@pytest.fixture(scope="module")
def small_model():
    torch.manual_seed(0)
    return DigitsCNN().eval()


def test_hidden_trigger_stays_in_eps_ball_and_moves_features(small_model) -> None:
    g = torch.Generator().manual_seed(0)
    xt, xs = torch.rand(8, 1, 8, 8, generator=g), torch.rand(16, 1, 8, 8, generator=g)
    eps = 8 / 255
    from aisec.models.torch_module import feature_fn

    phi = feature_fn(small_model)
    trig = PatchTrigger()
    with torch.no_grad():
        fs = phi(trig.apply(xs))
        before = torch.cdist(phi(xt), fs).min(1).values.mean()
    z = hidden_trigger(small_model, xt, xs, trig, HiddenTriggerParams(eps=eps, steps=60, lr=0.01))
    assert (z - xt).abs().max() <= eps + 1e-6 and z.min() >= 0 and z.max() <= 1
    with torch.no_grad():
        after = torch.cdist(phi(z), fs).min(1).values.mean()
    assert after < before
    assert all(p.requires_grad for p in small_model.parameters())  # restored


def test_sleeper_agent_stays_in_eps_ball_and_aligns(small_model) -> None:
    g = torch.Generator().manual_seed(1)
    xp, xs = torch.rand(6, 1, 8, 8, generator=g), torch.rand(10, 1, 8, 8, generator=g)
    yp = torch.ones(6, dtype=torch.long)
    eps = 16 / 255
    out = sleeper_agent(small_model, xp, yp, xs, PatchTrigger(), target_class=1,
                        params=SleeperAgentParams(eps=eps, steps=30, restarts=2))
    assert (out - xp).abs().max() <= eps + 1e-6 and out.min() >= 0 and out.max() <= 1
    assert not torch.equal(out, xp)
    sel = select_poisons(small_model, xp, yp, 3)
    assert sel.numel() == 3 and sel.unique().numel() == 3


def test_sleeper_agent_retrains_surrogate_between_rounds(small_model) -> None:
    from aisec.attacks.poisoning.sleeper_agent import craft_sleeper_agent, recipe_retrainer
    from aisec.models.recipe import TrainingRecipe

    g = torch.Generator().manual_seed(2)
    x_train, y_train = torch.rand(40, 1, 8, 8, generator=g), torch.arange(40) % 10
    idx = (y_train == 1).nonzero().squeeze(1)
    seen: list[torch.Tensor] = []
    base = recipe_retrainer(TrainingRecipe(architecture="digits-cnn", epochs=1, lr=1e-3), x_train, y_train, idx)

    def retrain(xp: torch.Tensor, r: int) -> torch.nn.Module:
        seen.append(xp.clone())
        return base(xp, r)

    eps = 8 / 255
    out = craft_sleeper_agent(small_model, x_train[idx], y_train[idx], x_train[y_train == 0], PatchTrigger(),
                              target_class=1, params=SleeperAgentParams(eps=eps, steps=9, retrain_rounds=3),
                              retrain=retrain)
    assert out.retrains == 2 and len(seen) == 2
    assert out.surrogate is not small_model  # the surrogate the poisons were last matched on
    assert all((s - x_train[idx]).abs().max() <= eps + 1e-6 for s in seen)  # retrained on in-ball poisons
    assert (out.x - x_train[idx]).abs().max() <= eps + 1e-6
    assert -1 <= out.alignment <= 1 and -1 <= out.initial_alignment <= 1
    # no training set given: crafting runs on the fixed surrogate
    solo = craft_sleeper_agent(small_model, x_train[idx], y_train[idx], x_train[y_train == 0], PatchTrigger(),
                               target_class=1, params=SleeperAgentParams(eps=eps, steps=4, retrain_rounds=3))
    assert solo.retrains == 0 and solo.surrogate is small_model


def test_sleeper_agent_errors(small_model) -> None:
    from aisec.attacks.poisoning.sleeper_agent import craft_sleeper_agent, recipe_retrainer
    from aisec.core.errors import ShapeError
    from aisec.models.recipe import TrainingRecipe

    x = torch.rand(4, 1, 8, 8)
    with pytest.raises(ShapeError, match="labels"):
        craft_sleeper_agent(small_model, x, torch.ones(3, dtype=torch.long), x, PatchTrigger(), target_class=1)
    with pytest.raises(ConfigError, match="at least one"):
        craft_sleeper_agent(small_model, x[:0], torch.ones(0, dtype=torch.long), x, PatchTrigger(), target_class=1)
    with pytest.raises(ShapeError, match="outside the training set"):
        recipe_retrainer(TrainingRecipe(architecture="digits-cnn"), x, torch.ones(4, dtype=torch.long),
                         torch.tensor([9]))
