"""Defences: ways to make a model harder to attack, applied or trained, and evaluated honestly.

- :mod:`aisec.defences.preprocess` — input preprocessings put in front of a model as target
  wrappers (:class:`~aisec.defences.preprocess.DefendedTarget`; the model file is never modified):
  JPEG, bit-depth reduction, median and Gaussian smoothing, Gaussian noise, total-variation
  minimisation. ``aisec assess --defence jpeg:quality=75`` assesses a model behind one.
- :mod:`aisec.defences.training` trains a defended copy of a model (adversarial training, TRADES,
  noise augmentation) and writes it as a safetensors file that ``aisec assess`` loads without
  running code from it (``aisec defend``).

Every preprocessing defence is registered in the registry family ``defence``; its declared facts
(differentiable, stochastic) tell the robustness check which adaptive attack evaluates it (BPDA, EOT).
"""
