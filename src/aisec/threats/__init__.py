"""Threat models, the threat knowledge base, and the residual risk a threat-model run leaves.

``ThreatModel`` (:mod:`aisec.threats.model`) is the validated threat-model file;
:func:`plan_for` (:mod:`aisec.threats.planner`) turns it into the plan that tests it, with a reason
per choice; :func:`residual_risk` (:mod:`aisec.threats.residual`) reads a run against it. The
knowledge base (:mod:`aisec.threats.kb`) is package data checked against a MITRE ATLAS release.
"""

from aisec.threats.kb import load_kb, load_release, load_sources, load_standards
from aisec.threats.model import ThreatModel

__all__ = ["ThreatModel", "load_kb", "load_release", "load_sources", "load_standards"]
