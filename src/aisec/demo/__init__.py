"""``aisec demo``: the embedded default, a real model trained in seconds on shipped data, assessed end to end.

- :mod:`aisec.demo.digits`: the digits CNN through robustness, explainability, poisoning and backdoor checks.
- :mod:`aisec.demo.privacy`: an over-fitted and a regularised digits CNN side by side for the privacy check.
"""

from __future__ import annotations
