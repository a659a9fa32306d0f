"""Tiny digits MLPs for membership-inference tests: one memorises 100 records, one never saw its "members".

Tiny models train several times faster on one thread than on two contended ones (thread
synchronisation dominates their small ops), so these fixtures train single-threaded.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import pytest
import torch

from aisec.attacks.inference.base import MembershipTask
from aisec.models.recipe import TrainingRecipe
from aisec.targets.torch import TorchTarget

MEMORISE = TrainingRecipe(architecture="tabular-mlp", kwargs={"hidden": 128}, epochs=100, batch_size=25, lr=3e-3)


@contextlib.contextmanager
def one_thread() -> Iterator[None]:
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(n)


@pytest.fixture(autouse=True)
def _single_thread() -> Iterator[None]:
    with one_thread():
        yield


@pytest.fixture(scope="session")
def digits_pool():
    from aisec.data.builtin import digits

    return digits(split="train"), digits(split="test")


@pytest.fixture(scope="session")
def memorising(digits_pool):
    """An MLP trained to 100% on 100 digits (members); non-members: 300 test-split digits."""
    train, test = digits_pool
    x_in, y_in = train.x[:100], train.y[:100]
    with one_thread():
        model = MEMORISE.train(x_in, y_in, num_classes=10, device="cpu")
    target = TorchTarget(model, input_shape=(1, 8, 8), num_classes=10, name="mlp-memorising", device="cpu")
    return target, (x_in, y_in), (test.x[:300], test.y[:300])


@pytest.fixture(scope="session")
def memorising_task(memorising):
    target, (x_in, y_in), (x_out, y_out) = memorising
    half = x_out.shape[0] // 2
    return MembershipTask(target, x_in, y_in, x_out, y_out, recipe=MEMORISE, reference_models=8, shadow_models=4,
                          population=(x_out[:half], y_out[:half]), seed=0)


@pytest.fixture(scope="session")
def unseen(digits_pool):
    """The same recipe trained on train-split digits 100..399; 'members' and non-members are both test digits."""
    train, test = digits_pool
    with one_thread():
        model = MEMORISE.train(train.x[100:400], train.y[100:400], num_classes=10, device="cpu")
    target = TorchTarget(model, input_shape=(1, 8, 8), num_classes=10, name="mlp-unseen", device="cpu")
    return target, (test.x[:250], test.y[:250]), (test.x[250:500], test.y[250:500])


def task_for(setup, **kw) -> MembershipTask:
    target, (x_in, y_in), (x_out, y_out) = setup
    return MembershipTask(target, x_in, y_in, x_out, y_out, **{"recipe": MEMORISE, **kw})


@pytest.fixture()
def make_task():
    return task_for


