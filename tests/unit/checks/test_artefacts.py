"""Issue 18, item 8: the checks leave their artefacts on disk, as the seed tools did.

Each file is checked against an independent recomputation, not only for existence: adversarial
examples are re-predicted by the target (their predictions and confidences must match the ``.npz`` and
the samples CSV row of the same id) and lie inside the eps-ball they are filed under; a minimal-norm
attack's distances are the norms of its saved perturbations; the PNG panels are the saved inputs
pixel for pixel; the poisoned set's clean rows are the data's own rows; the saved surrogate, loaded
through the normal model loader, reproduces the fidelity the check measured. ``result.json`` lists
every file with the sha256 of its bytes.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json

import numpy as np
import pytest
import torch
from PIL import Image

from aisec.api import assess
from aisec.checks._artefacts import SAVE_EPS, saved_eps_index
from aisec.core.types import Norm

EPS = [2 / 255, 8 / 255, 16 / 255]


@pytest.fixture(autouse=True)
def _one_thread():
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


@pytest.fixture(scope="module")
def rob(digits_target, digits_split, tmp_path_factory):
    data = digits_split[1].subset(range(24), name="digits-24")
    out = tmp_path_factory.mktemp("rob")
    torch.set_num_threads(1)
    run = assess(digits_target, data, out=out, checks={"robustness": {
        "attacks": [{"name": "fgsm"}, {"name": "deepfool", "params": {"steps": 10}}], "eps": EPS,
        "eps_l2": [0.5, 1.0], "samples": 24, "save_adversarial": 4, "clever": {"enabled": False},
        "reliability": {"enabled": False},
    }})
    return out, run, data


def _csv(path):
    with path.open(newline="", encoding="utf-8") as fh:
        return list(csv.DictReader(fh))


def _png(path) -> np.ndarray:
    return np.asarray(Image.open(path).convert("RGB"))


def test_adversarial_npz_is_what_the_target_predicts_inside_the_ball(rob, digits_target):
    out, _, _ = rob
    z = np.load(out / "artefacts" / "adversarial" / "fgsm-linf-8_255.npz", allow_pickle=False)
    assert float(z["eps"]) == pytest.approx(8 / 255)
    x, xa = z["x_clean"], z["x_adv"]
    assert x.shape == xa.shape == (4, 1, 8, 8)
    assert np.abs(xa - x).max() <= 8 / 255 + 1e-6
    with torch.no_grad():
        pa, pc = digits_target.predict(torch.from_numpy(xa)), digits_target.predict(torch.from_numpy(x))
    np.testing.assert_array_equal(z["y_pred_adv"], pa.argmax(1).numpy())
    np.testing.assert_array_equal(z["y_pred_clean"], pc.argmax(1).numpy())
    np.testing.assert_allclose(z["confidence_adv"], pa.max(1).values.numpy(), rtol=1e-5)
    np.testing.assert_allclose(z["confidence_clean"], pc.max(1).values.numpy(), rtol=1e-5)
    fooled = z["fooled"]
    assert (fooled == ((z["y_pred_adv"] != z["y_true"]) & (z["y_pred_clean"] == z["y_true"]))).all()
    assert list(fooled) == sorted(fooled, reverse=True)  # successful attacks first


def test_adversarial_ids_and_confidences_match_the_samples_csv(rob, digits_target):
    out, _, data = rob
    rows = _csv(out / "samples" / "robustness-samples.csv")
    z = np.load(out / "artefacts" / "adversarial" / "fgsm-linf-8_255.npz", allow_pickle=False)
    col = f"fgsm-linf@{8 / 255:g}"
    for k, i in enumerate(z["index"]):
        row = rows[int(i)]
        assert int(row["index"]) == int(i) and int(row["label"]) == int(z["y_true"][k])
        np.testing.assert_array_equal(z["x_clean"][k], data.x[int(i)].numpy())
        assert int(row[f"{col}:pred"]) == int(z["y_pred_adv"][k])
        assert float(row[f"{col}:confidence"]) == pytest.approx(float(z["confidence_adv"][k]), rel=1e-5)
        assert float(row["confidence_clean"]) == pytest.approx(float(z["confidence_clean"][k]), rel=1e-5)
    with torch.no_grad():  # every row's clean confidence, recomputed
        conf = digits_target.predict(data.x[:24]).max(1).values.numpy()
    np.testing.assert_allclose([float(r["confidence_clean"]) for r in rows], conf, rtol=1e-5)
    for e in EPS:
        assert all(0 < float(r[f"fgsm-linf@{e:g}:confidence"]) <= 1 for r in rows)


def test_minimal_norm_attack_saves_its_unbounded_perturbations(rob):
    out, _, _ = rob
    z = np.load(out / "artefacts" / "adversarial" / "deepfool-l2-minimal.npz", allow_pickle=False)
    assert np.isnan(float(z["eps"]))
    d = np.sqrt(((z["x_adv"] - z["x_clean"]) ** 2).reshape(len(z["index"]), -1).sum(1))
    np.testing.assert_allclose(z["distance"][z["fooled"]], d[z["fooled"]], rtol=1e-4, atol=1e-6)


def test_a_png_per_sample_shows_clean_adversarial_and_difference(rob):
    out, _, _ = rob
    folder = out / "artefacts" / "adversarial" / "fgsm-linf-8_255"
    z = np.load(folder.with_suffix(".npz"), allow_pickle=False)
    pngs = sorted(folder.glob("*.png"))
    assert sorted(p.name for p in pngs) == sorted(f"sample-{int(i)}.png" for i in z["index"])
    k = list(z["index"]).index(int(pngs[0].stem.split("-")[1]))
    img = _png(pngs[0])
    f = 12  # 8x8 inputs are scaled up to 96 px a panel; panels are 4 px apart
    assert img.shape == (96, 3 * 96 + 2 * 4, 3)
    clean, adv = img[::f, 0:96:f, 0], img[::f, 100:196:f, 0]
    np.testing.assert_array_equal(clean, np.rint(z["x_clean"][k, 0] * 255).astype(np.uint8))
    np.testing.assert_array_equal(adv, np.rint(z["x_adv"][k, 0] * 255).astype(np.uint8))
    diff = img[::f, 200:296:f, 0].astype(int)
    d = z["x_adv"][k, 0] - z["x_clean"][k, 0]
    if np.abs(d).max() > 0:  # amplified: the largest change reaches black or white, no change is mid-grey
        assert diff.max() == 255 or diff.min() == 0
        assert (np.abs(diff[d == 0] - 128) <= 1).all()


def test_result_json_lists_every_artefact_with_its_sha256(rob):
    out, run, _ = rob
    listed = json.loads((out / "result.json").read_text())["artefacts"]
    on_disk = sorted(p.relative_to(out).as_posix() for p in (out / "artefacts").rglob("*") if p.is_file())
    assert sorted(a["path"] for a in listed) == on_disk
    assert len(on_disk) == 2 + 2 * 4  # an .npz per attack, a PNG per saved sample
    for a in listed:
        data = (out / a["path"]).read_bytes()
        assert a["sha256"] == hashlib.sha256(data).hexdigest() and a["bytes"] == len(data)
        assert a["check"] == "robustness"
    assert [a.model_dump() for a in run.artefacts] == listed


def test_saved_eps_is_the_reference_eps_the_policy_reads():
    from aisec.policy.properties import Reference

    assert {Norm(k): v for k, v in Reference().eps.items()} == SAVE_EPS
    assert saved_eps_index([0.01, 0.02, 0.05], Norm.LINF) == 1  # the largest not above 8/255
    assert saved_eps_index([0.05, 0.1], Norm.LINF) == 0  # all above: the smallest
    assert saved_eps_index([0.25, 0.5, 1.0], Norm.L2) == 1
    assert saved_eps_index([1.0, 2.0, 5.0], Norm.L1) == 1  # no reference: the middle


def test_save_adversarial_zero_writes_nothing(digits_target, digits_split):
    from aisec.checks.robustness import RobustnessCheck, RobustnessParams

    data = digits_split[1].subset(range(8), name="digits-8")
    common = {"attacks": ["fgsm"], "eps": [0.1], "reference_eps": {}, "samples": 8, "clever": {"enabled": False},
              "reliability": {"enabled": False}}
    off = RobustnessCheck().run(digits_target, data, RobustnessParams(**common, save_adversarial=0))
    on = RobustnessCheck().run(digits_target, data, RobustnessParams(**common, save_adversarial=2))
    assert off.artefacts == [] and [a.path for a in on.artefacts] == [
        "adversarial/fgsm-linf-0.1.npz", *(f"adversarial/fgsm-linf-0.1/sample-{i}.png"
                                           for i in np.load(io.BytesIO(on.artefacts[0].data))["index"])]


def test_explanation_png_per_explained_image(digits_target, digits_split, tmp_path):
    data = digits_split[1].subset(range(3), name="digits-3")
    run = assess(digits_target, data, out=tmp_path, checks={"explainability": {
        "samples": 3, "num_samples": 40, "stability_samples": 0, "control": False, "random_orders": 2,
        "steps": 4, "cell": 2}})
    files = sorted(p.name for p in (tmp_path / "artefacts" / "explanations").glob("*.png"))
    assert files == ["lime-0.png", "lime-1.png", "lime-2.png"]
    img = _png(tmp_path / "artefacts" / "explanations" / "lime-0.png")
    assert img.shape == (96, 2 * 96 + 4, 3)
    np.testing.assert_array_equal(img[::12, 0:96:12, 0], np.rint(data.x[0, 0].numpy() * 255).astype(np.uint8))
    overlay = img[:, 100:196].astype(int)
    assert (overlay[..., 0] != overlay[..., 2]).any()  # coloured where the attribution is not zero
    assert {a.kind for a in run.artefacts} == {"explanation-image"}


def test_explanation_images_can_be_switched_off(digits_target, digits_split):
    from aisec.checks.explainability import ExplainabilityCheck, ExplainabilityParams

    data = digits_split[1].subset(range(2), name="digits-2")
    p = ExplainabilityParams(samples=2, num_samples=20, stability_samples=0, control=False, random_orders=2, steps=2,
                             save_images=1)
    assert [a.path for a in ExplainabilityCheck().run(digits_target, data, p).artefacts] == ["explanations/lime-0.png"]
    p = p.model_copy(update={"save_images": 0})
    assert ExplainabilityCheck().run(digits_target, data, p).artefacts == []


def test_a_kept_attack_step_restores_confidences_and_saved_examples():
    """A run killed mid-check resumes from its attack steps: they carry the confidences and saved examples."""
    from aisec.checks.robustness import _curve_from_step, _curve_to_step

    saved = {"index": np.array([3, 1]), "x_adv": np.zeros((2, 1, 2, 2), dtype=np.float32),
             "eps": np.asarray(0.1)}
    curve = {"attack": "fgsm", "norm": "linf", "kind": "fixed_eps", "targeted": False, "params": {},
             "points": [{"eps": 0.1, "raw_robust_accuracy": 0.5}], "warnings": [], "seconds": 0.1, "queries": 4,
             "example_eps": 0.1, "loss_traces": [[]], "fooled": [torch.tensor([True, False])],
             "distances": [np.array([0.1, np.nan])], "preds": [torch.tensor([1, 2])],
             "confs": [torch.tensor([0.9, 0.6])], "saved": saved}
    back = _curve_from_step(*_curve_to_step(curve))
    np.testing.assert_array_equal(back["confs"][0].numpy(), np.array([0.9, 0.6], dtype=np.float32))
    assert sorted(back["saved"]) == sorted(saved) and back["saved"]["index"].tolist() == [3, 1]
    old = _curve_to_step({k: v for k, v in curve.items() if k not in ("confs", "saved")})
    assert "confs" not in _curve_from_step(*old) and "saved" not in _curve_from_step(*old)
