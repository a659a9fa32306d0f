"""Defences: ways to make a model harder to attack, and to apply them (``aisec defend``).

:mod:`aisec.defences.training` trains a defended copy of a model (adversarial training, TRADES,
noise augmentation) and writes it as a safetensors file that ``aisec assess`` loads without
running code from it.
"""
