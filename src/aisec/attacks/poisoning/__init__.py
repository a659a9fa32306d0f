"""Poisoning attacks: dirty-label triggers (BadNets, blended) and clean-label poisons (Hidden
Trigger Backdoor, Sleeper Agent). Each crafts poisoned training data; the poisoning check trains
a victim on it and measures the backdoor."""

from aisec.attacks.poisoning.badnets import PatchTrigger, PoisonSet, Trigger, poison_dataset
from aisec.attacks.poisoning.blended import BlendTrigger

__all__ = ["BlendTrigger", "PatchTrigger", "PoisonSet", "Trigger", "poison_dataset"]
