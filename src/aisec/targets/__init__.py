"""Targets: the model under test behind the :class:`~aisec.core.target.Target` protocol.

Framework-specific targets (ONNX, HTTP, Hugging Face) import their framework lazily.
"""

from aisec.targets.loading import load_target
from aisec.targets.sklearn import ProbaTarget
from aisec.targets.torch import TorchTarget

__all__ = ["ProbaTarget", "TorchTarget", "load_target"]
