from __future__ import annotations

import re

from aisec.core.evidence import read_jsonl
from aisec.demo.digits import run_demo


def test_demo_writes_a_report_a_person_wants_to_read(aisec_cache, tmp_path):
    run = run_demo(out=tmp_path, samples=40, privacy=False)
    html = (tmp_path / "report.html").read_text()
    # Robust-accuracy curves (linf and l2), example grids per attack and the CLEVER histogram.
    assert len(re.findall(r"data:image/png;base64,", html)) >= 2 + 5 + 1
    assert "CLEVER" in html and "95% CI" in html
    records = read_jsonl(tmp_path / "evidence.jsonl")
    assert len(records) == len(run.evidence)
    attacks = {r.parameters.get("attack") for r in records}
    assert {"fgsm", "pgd", "deepfool", "cw"} <= attacks
    assert all(r.resource.model_sha256 and r.resource.dataset_digest for r in records)
    clean = next(r for r in records if r.metric == "robustness.clean_accuracy")
    assert clean.value > 0.9
    # Poisoning: the BadNets sweep plants a backdoor at the largest rate, and the section shows the images.
    asr = {r.parameters["rate"]: r.value for r in records if r.metric == "poisoning.attack_success_rate"}
    assert sorted(asr) == [0.0, 0.01, 0.03, 0.1] and asr[0.1] > 0.8 > asr[0.0]
    assert "Poisoning" in html and "clean vs poisoned samples" in html
    # Backdoor detection on the shipped (clean) model: no alarm from either detector.
    alarms = {r.parameters["method"]: r.value for r in records if r.metric == "backdoor.alarm"}
    assert alarms == {"neural-cleanse": 0.0, "activation-clustering": 0.0}
    assert "Backdoor detection" in html
