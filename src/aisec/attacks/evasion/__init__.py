"""Evasion attacks, one per module, each registered by name (``fgsm.py`` is the template to copy).

Runners above the attacks (scans, campaigns) count each sample's queries with :func:`recording`.
"""

from aisec.attacks.evasion._blackbox import recording

__all__ = ["recording"]
