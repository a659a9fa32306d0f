"""The spade check on the digits CNN: its score is the metric's on the model's answers, it names and saves
the least robust samples, its ranking agrees with CLEVER and DeepFool, it runs on a black box, refuses a
labels-only one, and reaches the evidence, the catalogue, the report and the CLI."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from aisec.core.dataset import TensorDataset
from aisec.core.errors import CapabilityError
from aisec.core.registry import get_check
from aisec.core.types import Modality
from aisec.metrics.spade import centred_log_probabilities, robustness_index, spade
from aisec.targets.sklearn import ProbaTarget

FAST = {"agreement_samples": 16, "clever_batches": 3, "clever_batch_size": 8, "bootstrap": 100, "deepfool_steps": 20,
        "top": 4}


@pytest.fixture(scope="module")
def data(digits_split) -> TensorDataset:
    _, test = digits_split
    return TensorDataset(test.x[:150], test.y[:150], name="digits-test-150", modality=Modality.IMAGE,
                         classes=[str(i) for i in range(10)])


@pytest.fixture(scope="module")
def white(digits_target, data):
    return get_check("spade").cls().run(digits_target, data, FAST)


def _black_box(model: torch.nn.Module) -> ProbaTarget:
    class _Scores:
        def predict_proba(self, a):  # type: ignore[no-untyped-def]
            with torch.no_grad():
                return torch.softmax(model(torch.as_tensor(a).view(-1, 1, 8, 8)), 1).numpy()

    return ProbaTarget(_Scores(), input_shape=(1, 8, 8), num_classes=10, modality="image")


class _LabelsOnly:
    """A target that answers with one-hot labels only (as a decision-only endpoint does)."""

    def __init__(self, inner: ProbaTarget) -> None:
        from aisec.core.types import Capability, OutputKind

        self.inner = inner
        self.spec = inner.spec.model_copy(update={"capabilities": frozenset({Capability.LABELS_ONLY}),
                                                  "output": OutputKind.LABELS})
        self.queries = 0

    def predict(self, x: torch.Tensor) -> torch.Tensor:
        return torch.nn.functional.one_hot(self.inner.predict(x).argmax(1), 10).float()


def test_the_score_is_spade_on_the_models_answers(white, digits_target, data) -> None:
    s = white.summary
    with torch.no_grad():
        p = digits_target.predict(data.x.float()).numpy()
    ref = spade(data.x.numpy(), centred_log_probabilities(p), k=10)
    assert s.score == pytest.approx(ref.score, rel=1e-6) and s.score > 1
    assert s.robustness_index == pytest.approx(robustness_index(s.score)) == pytest.approx(1 / s.score)
    assert white.measurement("spade.score").value == s.score
    assert white.measurement("spade.robustness_index").value == s.robustness_index
    table = white.tables["samples"]
    np.testing.assert_allclose(table["node_score"], ref.node_scores, atol=1e-6)
    assert sorted(table["rank"]) == list(range(1, 151))


def test_it_names_and_saves_the_least_robust_samples(white) -> None:
    s = white.summary
    scores = white.tables["samples"]["node_score"]
    assert [t.index for t in s.least_robust] == list(np.argsort(-scores, kind="stable")[:4])
    assert s.least_robust[0].node_score == 1.0
    pngs = [a for a in white.artefacts if a.kind == "spade-image"]
    assert len(pngs) == 4 and all(a.data[:8] == b"\x89PNG\r\n\x1a\n" for a in pngs)
    assert white.images["least_robust"]["x"].shape == (4, 1, 8, 8)


def test_its_ranking_agrees_with_clever_and_deepfool(white) -> None:
    """The samples SPADE ranks least robust need smaller perturbations (measured ρ ≈ +0.4..0.7 on digits)."""
    by = {a.reference: a for a in white.summary.agreement}
    assert set(by) == {"deepfool", "clever"}
    for ref in ("deepfool", "clever"):
        a = by[ref]
        assert a.n == 16 and a.rho is not None and a.ci is not None and a.ci.low <= a.rho <= a.ci.high
        m = white.measurement(f"spade.agreement_{ref}")
        assert m.value == a.rho and m.interval is not None and m.sample_count == 16
    assert by["clever"].rho > 0  # type: ignore[operator]
    t = white.tables["samples"]
    assert np.isfinite(t["clever"]).sum() == 16


def test_it_runs_on_a_black_box_and_refuses_labels_only(digits_model, data, white) -> None:
    res = get_check("spade").cls().run(_black_box(digits_model), data, FAST)
    assert res.summary.score == pytest.approx(white.summary.score, rel=1e-5)
    assert res.summary.agreement == [] and "gives no gradients" in (res.summary.agreement_note or "")
    assert {m.metric for m in res.measurements} == {"spade.score", "spade.robustness_index"}
    with pytest.raises(CapabilityError, match="labels only"):
        get_check("spade").cls().run(_LabelsOnly(_black_box(digits_model)), data, FAST)  # type: ignore[arg-type]


def test_every_metric_is_in_the_catalogue_and_the_report_renders(white, digits_target, data) -> None:
    from aisec.core.check import Summary
    from aisec.policy.catalogue import load_catalogue
    from aisec.report.rerender import SUMMARY_TYPES
    from aisec.report.sections.spade import spade_section

    cat = load_catalogue()
    ids = {m.id for m in cat.metrics}
    assert {m.metric for m in white.measurements} <= ids
    assert "spade.agreement_clever" in ids and "spade.agreement_deepfool" in ids

    from types import SimpleNamespace

    html = spade_section(white, SimpleNamespace(target=digits_target, data=data))  # type: ignore[arg-type]
    assert "SPADE — does the model keep close inputs close?" in html and "Spearman ρ with clever" in html
    assert html.count("data:image/png;base64,") == 2  # the least robust grid and the agreement scatter
    mod, cls = SUMMARY_TYPES["spade"].split(":")
    back = getattr(__import__(mod, fromlist=[cls]), cls).model_validate(json.loads(json.dumps(white.summary.to_json())))
    assert isinstance(back, Summary) and back.score == white.summary.score


def test_assess_checks_spade_on_the_digits_builtin(aisec_cache, tmp_path) -> None:
    from click.testing import CliRunner

    from aisec.cli.main import main

    out = tmp_path / "r"
    res = CliRunner().invoke(main, ["assess", "-m", "digits-cnn", "-d", "digits", "--split", "test", "-t", "spade",
                                    "--spade-samples", "120", "--spade-k", "8", "--spade-agreement", "0",
                                    "-o", str(out), "--json"])
    assert res.exit_code == 0, res.output
    doc = json.loads(res.stdout)
    s = doc["checks"]["spade"]["summary"]
    assert s["n"] == 120 and s["k"] == 8 and s["score"] > 1 and s["agreement_note"] == "agreement_samples is 0"
    assert (out / "samples" / "spade-samples.csv").exists()
    assert len(list((out / "artefacts" / "spade").glob("*.png"))) == 8
    assert "SPADE — does" in (out / "report.html").read_text()
    again = CliRunner().invoke(main, ["report", str(out)])  # re-rendered from the run folder alone
    assert again.exit_code == 0, again.output
    assert "SPADE — does" in (out / "rerendered" / "report.html").read_text()


def test_on_a_text_target_it_ranks_texts_on_their_mean_embeddings(aisec_cache) -> None:
    pytest.importorskip("transformers")
    from aisec.data.text import encode_texts
    from aisec.targets.hf import HfTextTarget
    from aisec.testing.text import cached_tiny_sentiment_bert, toy_sentiment

    target = HfTextTarget(cached_tiny_sentiment_bert(), max_length=16)
    texts, y = toy_sentiment(40, seed=99)
    data = TensorDataset(encode_texts(texts, 96), y, name="toy-reviews", modality=Modality.TEXT,
                         classes=["negative", "positive"], value_range=(0.0, 255.0))
    res = get_check("spade").cls().run(target, data, {"k": 5, "top": 3})
    s = res.summary
    assert s.inputs == "mean token embeddings" and s.n == 40 and s.score > 0
    assert [t.text for t in s.least_robust] == [texts[t.index] for t in s.least_robust]
    assert s.agreement == [] and "texts" in (s.agreement_note or "") and res.artefacts == []
