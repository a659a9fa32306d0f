"""``aisec assess --checks model-scan`` scans the plan's model file before loading it and records evidence."""

from __future__ import annotations

import pickle
from pathlib import Path

import pytest
import torch

from aisec.core.errors import ConfigError, UnsafeModelError
from aisec.core.evidence import read_jsonl
from aisec.core.plan import Plan


def _weights(tmp_path: Path) -> Path:
    from aisec.models.train import digits_cnn

    path = tmp_path / "cnn.pt"
    torch.save(digits_cnn().state_dict(), path)
    return path


def test_assess_records_the_scan_of_the_model_file(aisec_cache: object, tmp_path: Path) -> None:
    from aisec.api import run_plan

    plan = Plan.parse({"model": {"path": str(_weights(tmp_path)), "arch": "digits-cnn"}, "data": "digits",
                       "checks": {"model-scan": {}, "robustness": {"attacks": ["fgsm"], "eps": [0.1], "samples": 20,
                                                                  "clever": {"enabled": False}}}})
    run = run_plan(plan, out=tmp_path / "out")
    assert [r.check for r in run.results] == ["model-scan", "robustness"]
    records = read_jsonl(tmp_path / "out" / "evidence.jsonl")
    unsafe = [e for e in records if e.metric == "model_scan.unsafe_findings"]
    assert len(unsafe) == 1 and unsafe[0].value == 0.0 and unsafe[0].parameters["path"].endswith("cnn.pt")
    assert unsafe[0].threats == ("AML.T0011.000", "AML.T0010.003")


def test_an_unsafe_pickle_is_refused_with_its_findings(tmp_path: Path) -> None:
    from aisec.api import run_plan

    class Evil:
        def __reduce__(self):
            import os

            return os.system, (f"touch {tmp_path / 'marker'}",)

    (tmp_path / "evil.pkl").write_bytes(pickle.dumps(Evil()))
    plan = Plan.parse({"model": str(tmp_path / "evil.pkl"), "data": "breast-cancer", "checks": ["model-scan"]})
    with pytest.raises(UnsafeModelError, match=r"Model scan: .*posix\.system|Model scan: .*os\.system"):
        run_plan(plan)
    assert not (tmp_path / "marker").exists()


def test_an_endpoint_has_no_file_to_scan() -> None:
    from aisec.api import run_plan

    plan = Plan.parse({"model": "http://127.0.0.1:9/v2/models/m", "data": "breast-cancer", "checks": ["model-scan"]})
    with pytest.raises(ConfigError, match="endpoint"):
        run_plan(plan)
