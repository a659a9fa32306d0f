from __future__ import annotations

import pytest
import torch
from torch import nn

from aisec.core.errors import ConfigError
from aisec.models.recipe import ModelStack, TrainingRecipe, _interleaved_order, resolve_architecture


@pytest.fixture(autouse=True)
def _one_thread():
    n = torch.get_num_threads()
    torch.set_num_threads(1)  # tiny models: thread synchronisation costs more than it saves
    yield
    torch.set_num_threads(n)


@pytest.fixture(scope="module")
def small():
    from aisec.data.builtin import digits

    d = digits(split="train")
    return d.x[:120], d.y[:120]


def test_recipe_reproduces_the_demo_training_loop(small):
    from aisec.models.train import fit
    from aisec.models.zoo import DigitsCNN

    x, y = small
    ours = TrainingRecipe(architecture="digits-cnn", epochs=2, batch_size=32).train(x, y)
    torch.manual_seed(0)
    ref = fit(DigitsCNN(), x, y, epochs=2, batch_size=32, seed=0)
    for a, b in zip(ours.state_dict().values(), ref.state_dict().values(), strict=True):
        assert torch.equal(a, b)


def test_architecture_names_and_errors():
    from aisec.models.zoo import DigitsCNN, TabularMLP

    assert resolve_architecture("digits-cnn") is DigitsCNN
    assert resolve_architecture("TabularMLP") is TabularMLP
    assert resolve_architecture("aisec.models.zoo:DigitsCNN") is DigitsCNN
    with pytest.raises(ConfigError, match="zoo"):
        resolve_architecture("resnet9000")
    with pytest.raises(ConfigError, match="cannot be imported"):
        resolve_architecture("no.such.module:Net")
    m = TrainingRecipe(architecture="tabular-mlp").build(torch.zeros(2, 1, 8, 8), 10)
    assert m(torch.zeros(2, 1, 8, 8)).shape == (2, 10)  # in_features and num_classes filled from data
    with pytest.raises(ConfigError, match="rejected"):
        TrainingRecipe(architecture="tabular-mlp", kwargs={"bogus": 1}).build(torch.zeros(2, 4), 2)
    with pytest.raises(ValueError):
        TrainingRecipe(architecture="tabular-mlp", epochs=0)


def test_interleaved_order_is_static_complete_and_never_all_padding():
    keep = torch.zeros(3, 40, dtype=torch.bool)
    keep[0, :40] = True
    keep[1, :25] = True
    keep[2, 10:20] = True
    sizes = keep.sum(1)
    idx, w = _interleaved_order(keep, sizes, int(sizes.max()), torch.Generator().manual_seed(0))
    assert idx.shape == w.shape == (3, 40)
    for k in range(3):
        real = idx[k][w[k] > 0]
        assert sorted(real.tolist()) == keep[k].nonzero().squeeze(1).tolist()  # each member exactly once
        assert keep[k, idx[k]].all()  # padding repeats a member (with weight 0)
        assert all(w[k, i : i + 8].sum() > 0 for i in range(0, 40, 8))


def test_vmapped_training_equals_independent_training():
    """With full-batch steps the batched loop must be K independent Adam runs (to float precision)."""
    g = torch.Generator().manual_seed(0)
    x, y = torch.randn(30, 6, generator=g), torch.randint(0, 3, (30,), generator=g)
    keep = torch.zeros(2, 30, dtype=torch.bool)
    keep[0, :30] = True
    keep[1, :30] = True
    r = TrainingRecipe(architecture="tabular-mlp", kwargs={"hidden": 8}, epochs=5, batch_size=64, lr=1e-2,
                       weight_decay=1e-3)
    stack = r.train_many(x, y, keep, num_classes=3, seed=7)
    logits = stack.logits(x)
    for k in range(2):
        torch.manual_seed(7 + k)
        m = r.build(x, 3)
        opt = torch.optim.Adam(m.parameters(), lr=1e-2, weight_decay=1e-3)
        for _ in range(5):
            opt.zero_grad()
            nn.functional.cross_entropy(m(x), y).backward()
            opt.step()
        with torch.no_grad():
            assert torch.allclose(logits[k], m(x), atol=1e-5)
            assert torch.allclose(stack.module(k)(x), m(x), atol=1e-5)


def test_models_learn_their_own_half_and_training_is_deterministic(small):
    x, y = small
    keep = torch.argsort(torch.rand(4, 120, generator=torch.Generator().manual_seed(1)), 0) < 2
    r = TrainingRecipe(architecture="tabular-mlp", kwargs={"hidden": 64}, epochs=60, batch_size=20, lr=3e-3)
    stack = r.train_many(x, y, keep, num_classes=10)
    again = r.train_many(x, y, keep, num_classes=10)
    assert len(stack) == 4
    pred = stack.logits(x).argmax(-1) == y
    assert torch.equal(stack.logits(x), again.logits(x))
    for k in range(4):
        assert pred[k][keep[k]].float().mean() == 1.0  # memorised its own half
        assert pred[k][~keep[k]].float().mean() < 1.0


def test_buffers_fall_back_to_sequential_and_user_trainers_are_used():
    class WithBN(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.net = nn.Sequential(nn.Linear(4, 8), nn.BatchNorm1d(8), nn.ReLU(), nn.Linear(8, 2))

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.net(x)

    x, y = torch.randn(20, 4), torch.randint(0, 2, (20,))
    keep = torch.ones(2, 20, dtype=torch.bool)
    stack = TrainingRecipe.from_builder(WithBN, epochs=1).train_many(x, y, keep)
    assert isinstance(stack, ModelStack) and stack.modules is not None and stack.logits(x).shape == (2, 20, 2)

    calls = []

    def trainer(xs: torch.Tensor, ys: torch.Tensor, seed: int) -> nn.Module:
        calls.append((xs.shape[0], seed))
        return nn.Linear(4, 2)

    r = TrainingRecipe.from_trainer(trainer)
    assert r.custom and r.architecture.startswith("callable:")
    r.train_many(x, y, keep, seed=3)
    assert calls == [(20, 3), (20, 4)]
    with pytest.raises(ConfigError, match="callable"):
        TrainingRecipe.model_validate(r.model_dump()).build()
    with pytest.raises(ConfigError, match="shape"):
        r.train_many(x, y, torch.ones(2, 5, dtype=torch.bool))


def _digest(m: nn.Module) -> str:
    import hashlib

    h = hashlib.sha256()
    for k, v in m.state_dict().items():
        h.update(k.encode())
        h.update(v.detach().cpu().numpy().tobytes())
    return h.hexdigest()


def test_finetune_starts_from_a_copy_and_never_touches_the_given_model():
    g = torch.Generator().manual_seed(0)
    x, y = torch.randn(40, 6, generator=g), torch.randint(0, 3, (40,), generator=g)
    torch.manual_seed(5)
    init = TrainingRecipe(architecture="tabular-mlp", kwargs={"hidden": 8}).build(x, 3)
    before = _digest(init)
    r = TrainingRecipe(architecture="tabular-mlp", kwargs={"hidden": 8}, mode="finetune", epochs=3,
                       batch_size=64, lr=1e-2)
    one = r.train(x, y, init=init)
    assert _digest(init) == before and one is not init
    # one full-batch Adam run from init's weights, by hand
    ref = r.build(x, 3)
    ref.load_state_dict(init.state_dict())
    opt = torch.optim.Adam(ref.parameters(), lr=1e-2)
    for _ in range(3):
        opt.zero_grad()
        nn.functional.cross_entropy(ref(x), y).backward()
        opt.step()
    with torch.no_grad():
        assert torch.allclose(one(x), ref(x), atol=1e-5)
    # vmapped: K stacked copies of the same start; full data -> every model equals the hand-made run
    stack = r.train_many(x, y, torch.ones(3, 40, dtype=torch.bool), num_classes=3, init=init)
    assert stack.modules is None and _digest(init) == before
    assert torch.allclose(stack.logits(x), ref(x).detach().expand(3, 40, 3), atol=1e-5)
    # retraining ignores init and starts elsewhere
    fresh = r.model_copy(update={"mode": "retrain"}).train(x, y, seed=1)
    assert not torch.allclose(fresh(x), one(x))


def test_finetune_errors_and_divergence():
    from aisec.models.recipe import RecipeDivergedError

    x, y = torch.randn(20, 4), torch.randint(0, 2, (20,))
    r = TrainingRecipe(architecture="tabular-mlp", mode="finetune")
    with pytest.raises(ConfigError, match="needs the model to start from"):
        r.train(x, y)
    with pytest.raises(ConfigError, match="needs the model to start from"):
        r.train_many(x, y, torch.ones(2, 20, dtype=torch.bool))
    bad = TrainingRecipe(architecture="tabular-mlp", epochs=3, lr=1e30, optimizer="sgd")
    keep = torch.ones(2, 20, dtype=torch.bool)
    for call in (lambda: bad.train(x * 1e6, y), lambda: bad.train_many(x * 1e6, y, keep)):
        with pytest.raises(RecipeDivergedError, match=r"NaN/inf.*lr=1e\+30") as info:
            call()
        assert isinstance(info.value, ConfigError) and isinstance(info.value, FloatingPointError)
    seen = []

    def trainer(xs: torch.Tensor, ys: torch.Tensor, seed: int, init: nn.Module) -> nn.Module:
        seen.append(init)
        return init

    start = nn.Linear(4, 2)
    out = TrainingRecipe.from_trainer(trainer, mode="finetune").train(x, y, init=start)
    assert seen and seen[0] is not start and out is seen[0]  # the trainer gets a copy
