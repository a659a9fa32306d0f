"""The local process pool and a real local Ray give the evidence of the jobs run in this process."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from aisec.campaigns.backends import LocalPool, RayBackend, make_backend
from aisec.campaigns.campaign import run_campaign
from aisec.campaigns.spec import Campaign

SPEC = {"name": "two", "models": ["digits-cnn"], "datasets": ["digits"],
        "checks": {"robustness": {"attacks": ["fgsm"], "samples": 16, "clever": {"enabled": False},
                                  "reliability": {"enabled": False}, "examples": 0, "save_adversarial": 0}},
        "grid": {"robustness": {"eps": [[0.05], [0.1]]}}}


def evidence_of(store_url: str) -> dict[str, list[tuple[Any, ...]]]:
    from aisec.store import open_store

    out: dict[str, list[tuple[Any, ...]]] = {}
    with open_store(store_url, create=False) as s:
        for e in (x.evidence for x in s.query()):
            out.setdefault(e.run_id, []).append((e.check, e.metric, e.value, json.dumps(e.parameters, sort_keys=True),
                                                 e.raw.sha256 if e.raw else None))
    return {k: sorted(v) for k, v in out.items()}


@pytest.fixture(scope="module")
def in_process(tmp_path_factory: pytest.TempPathFactory, aisec_cache: str) -> dict[str, Any]:
    result = run_campaign(Campaign.parse(SPEC), base_dir=tmp_path_factory.mktemp("inproc"))
    assert result.counts == {"complete": 2}
    return evidence_of(result.prepared.store_url)


def test_make_backend_picks_what_the_flags_say() -> None:
    assert make_backend(1).name == "in-process"
    assert isinstance(make_backend(3), LocalPool) and make_backend(3).workers == 3  # type: ignore[attr-defined]
    assert make_backend(None, "auto").name == "ray"


def test_local_pool_of_two_spawned_workers(tmp_path: Path, in_process: dict[str, Any]) -> None:
    result = run_campaign(Campaign.parse(SPEC), base_dir=tmp_path, backend=LocalPool(2))
    assert result.counts == {"complete": 2} and result.backend == "local"
    assert evidence_of(result.prepared.store_url) == in_process


def test_ray_local_cluster(tmp_path: Path, in_process: dict[str, Any]) -> None:
    ray = pytest.importorskip("ray", reason="Ray is not installed (pip install 'aisec[ray]')")
    result = run_campaign(Campaign.parse(SPEC), base_dir=tmp_path,
                          backend=RayBackend("local", init_kwargs={"num_cpus": 2}))
    assert result.counts == {"complete": 2} and result.backend == "ray"
    assert not ray.is_initialized()  # the Ray it started is shut down
    assert evidence_of(result.prepared.store_url) == in_process
