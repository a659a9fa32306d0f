"""Targets: the model under test behind the :class:`~aisec.core.target.Target` protocol.

Framework-specific targets (ONNX, HTTP, Hugging Face) import their framework lazily, when one is built.
"""

from aisec.targets.hf import HfTextTarget
from aisec.targets.hf_zero_shot import CausalLmClassifier
from aisec.targets.http import EndpointError, HttpTarget
from aisec.targets.loading import load_target
from aisec.targets.onnx import OnnxTarget
from aisec.targets.sklearn import ProbaTarget
from aisec.targets.text import TextPipelineTarget
from aisec.targets.torch import TorchTarget

__all__ = [
    "CausalLmClassifier",
    "EndpointError",
    "HfTextTarget",
    "HttpTarget",
    "OnnxTarget",
    "ProbaTarget",
    "TextPipelineTarget",
    "TorchTarget",
    "load_target",
]
