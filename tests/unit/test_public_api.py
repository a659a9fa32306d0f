"""``import aisec`` is the public face: every name in ``__all__`` resolves, and ``aisec.assess`` takes a
module, a built-in name or a target, and a dataset or its name."""

from __future__ import annotations

import pytest

import aisec


def test_all_lists_exactly_the_exports() -> None:
    assert set(aisec.__all__) == {"__version__", *aisec._EXPORTS}
    assert sorted(aisec.__all__) == sorted(dir(aisec))


@pytest.mark.parametrize("name", sorted(aisec._EXPORTS))
def test_every_public_name_resolves(name: str) -> None:
    assert getattr(aisec, name) is not None


def test_unknown_name_is_an_attribute_error() -> None:
    with pytest.raises(AttributeError, match="no attribute 'asses'"):
        aisec.asses  # noqa: B018


def test_targets_package_exports_every_target() -> None:
    import aisec.targets as t

    for name in ("TorchTarget", "ProbaTarget", "OnnxTarget", "HttpTarget", "HfTextTarget", "TextPipelineTarget"):
        assert name in t.__all__ and getattr(t, name) is getattr(aisec, name, getattr(t, name))


CHECKS = {"robustness": {"attacks": ["fgsm"], "eps": [0.1], "samples": 40, "clever": {"enabled": False}}}


def test_assess_takes_a_torch_module_and_a_dataset(aisec_cache: object) -> None:
    from aisec.models.train import digits_cnn

    run = aisec.assess(digits_cnn(), aisec.digits(split="test"), checks=CHECKS)
    assert isinstance(run, aisec.Run) and run.target.spec.input_shape == (1, 8, 8)
    assert run.target.spec.num_classes == 10
    m = run.results[0].measurement("robustness.robust_accuracy", attack="fgsm", eps=0.1)
    assert 0.0 <= m.value <= 1.0 and m.sample_count == 40
    # a notebook shows the run as a table of its measurements, escaped
    html = run._repr_html_()
    assert html.startswith(f"<p><b>aisec run {run.run_id}</b>") and "robustness.robust_accuracy" in html
    assert html.count("<tr>") == 1 + len(run.evidence) and "{" not in html


def test_assess_takes_names(aisec_cache: object) -> None:
    run = aisec.assess("digits-cnn", "digits", checks=CHECKS)
    assert run.target.spec.name == "digits-cnn" and run.data.info.name.startswith("digits")


def test_assess_names_a_bad_model_clearly() -> None:
    with pytest.raises(aisec.AisecError, match="no-such-model"):
        aisec.assess("no-such-model.pt", "digits", checks=CHECKS)
