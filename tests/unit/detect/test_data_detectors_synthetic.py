"""Activation clustering and spectral signatures on synthetic activations with a planted poison cluster.

No training: ten Gaussian classes in 32 dimensions, and in one class a block of "poisons" shifted along a
direction of their own (the trigger's feature). The known answer (which class, which samples) checks the
class rule, the sample rule and the meaning of ``expected_rate`` (share of poisons within the class).
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from aisec.core.errors import ConfigError
from aisec.detect import activation_clustering, spectral_signatures

PER_CLASS, DIM, TARGET = 120, 32, 3


def _features(poisons: int, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor, np.ndarray]:
    g = np.random.default_rng(seed)
    centres = g.normal(0, 4, (10, DIM))
    f = np.concatenate([centres[k] + g.normal(0, 1, (PER_CLASS, DIM)) for k in range(10)])
    y = np.repeat(np.arange(10), PER_CLASS)
    is_poison = np.zeros(f.shape[0], bool)
    if poisons:
        shift = g.normal(0, 1, DIM)
        shift *= 6 / np.linalg.norm(shift)
        block = centres[TARGET] + shift + g.normal(0, 1, (poisons, DIM))
        f = np.concatenate([f, block])
        y = np.concatenate([y, np.full(poisons, TARGET)])
        is_poison = np.concatenate([is_poison, np.ones(poisons, bool)])
    return torch.from_numpy(f).float(), torch.from_numpy(y), is_poison


def test_spectral_flags_the_planted_class_and_its_poisons() -> None:
    f, y, is_poison = _features(poisons=60)  # 60 of 180 = a third of the target class
    share = 60 / 180
    det = spectral_signatures(f, y, 10, expected_rate=share)
    assert det.suspected == [TARGET]
    assert int(np.argmax(det.anomaly_index)) == TARGET
    # the paper's rule: the top 1.5 * eps of the class, eps = expected share of poisons within the class
    assert det.flagged.size == int(np.ceil(1.5 * share * 180))
    assert set(y[det.flagged].tolist()) == {TARGET}
    assert is_poison[det.flagged].sum() >= 0.9 * 60  # nearly every poison is among the flagged samples


def test_spectral_expected_rate_is_a_share_of_the_class_not_of_the_training_set() -> None:
    # The poisoned share of the whole set (60 / 1260 = 4.8%) flags only 7% of the class and misses most
    # poisons; the bench once passed that and read the low recall as a weak detector.
    f, y, is_poison = _features(poisons=60)
    det = spectral_signatures(f, y, 10, expected_rate=60 / 1260)
    assert det.flagged.size == int(np.ceil(1.5 * 60 / 1260 * 180)) < 60
    assert is_poison[det.flagged].sum() == det.flagged.size  # still precise: the top scores are poisons


def test_activation_clustering_flags_the_planted_cluster() -> None:
    f, y, is_poison = _features(poisons=40)  # 40 of 160 = a quarter, under the 35% size rule
    det = activation_clustering(f, y, 10)
    assert det.suspected == [TARGET]
    assert det.details["smaller_cluster_fraction"][TARGET] == pytest.approx(40 / 160, abs=0.02)
    hit = int(is_poison[det.flagged].sum())
    assert hit >= 0.95 * 40 and hit >= 0.95 * det.flagged.size  # the smaller cluster is the poisons


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_activation_clustering_no_alarm_without_poisons(seed: int) -> None:
    f, y, _ = _features(poisons=0, seed=seed)
    det = activation_clustering(f, y, 10, seed=seed)
    assert det.suspected == [] and det.flagged.size == 0
    # (spectral signatures' class rule is not asserted here: on these identical isotropic classes its statistic
    # varies by ~1% across classes, so the scale-free robust z-score exceeds 3 on noise for seed 0; see
    # docs/poisoning.md)


def test_activation_clustering_size_rule_hides_a_majority_cluster() -> None:
    # Chen et al.'s relative-size rule: a "poison" cluster larger than max_cluster_fraction of its class
    # is not flagged, however well separated (at BadNets 10% on ten classes poisons are half the target).
    f, y, _ = _features(poisons=120)
    assert TARGET not in activation_clustering(f, y, 10).suspected
    assert activation_clustering(f, y, 10, max_cluster_fraction=0.5).suspected == [TARGET]


@pytest.mark.parametrize("rate", [0.0, -0.1, 1.5])
def test_spectral_rejects_a_bad_expected_rate(rate: float) -> None:
    f, y, _ = _features(poisons=0)
    with pytest.raises(ConfigError, match="expected_rate"):
        spectral_signatures(f, y, 10, expected_rate=rate)
