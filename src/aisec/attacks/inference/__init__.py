"""Membership-inference attacks, one module per attack (see :mod:`aisec.attacks.inference.base`)."""

from aisec.attacks.inference.base import (
    INFERENCE_ATTACKS,
    InferenceAttackInfo,
    MembershipScores,
    MembershipTask,
    get_inference_attack,
    inference_attacks,
    register_inference_attack,
)

__all__ = [
    "INFERENCE_ATTACKS",
    "InferenceAttackInfo",
    "MembershipScores",
    "MembershipTask",
    "get_inference_attack",
    "inference_attacks",
    "register_inference_attack",
]
