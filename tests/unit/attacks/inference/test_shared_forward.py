"""The threshold attacks and the check's accuracies share one forward pass per record."""

from __future__ import annotations

import torch

from aisec.attacks.inference.base import MembershipTask, get_inference_attack


def test_threshold_attacks_share_one_forward_pass_and_match_predicted_labels(memorising):
    target, (x_in, y_in), (x_out, y_out) = memorising
    task = MembershipTask(target, x_in, y_in, x_out, y_out, batch_size=64)
    q0 = target.queries
    pred_in, pred_out = task.target_predictions()
    for name, params in (("gap", {}), ("loss", {}), ("confidence", {}), ("confidence", {"statistic": "mentr"})):
        info = get_inference_attack(name)
        info.cls().run(task, info.cls.Params(**params))
    assert target.queries - q0 == x_in.shape[0] + x_out.shape[0]  # one query per record, not one per attack
    # The cached labels are the ones the target itself predicts (argmax of its probabilities).
    assert torch.equal(pred_in, task.target_labels(x_in)) and torch.equal(pred_out, task.target_labels(x_out))
    gap = get_inference_attack("gap").cls().run(task, get_inference_attack("gap").cls.Params())
    assert torch.equal(gap.members, (pred_in == y_in).double())
