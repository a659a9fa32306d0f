"""Preprocessing defences: each against an independent reference, their declared facts, the wrapper.

References: Pillow's own JPEG round trip (the defence must be exactly it, per image), scipy.ndimage
``median_filter`` / ``gaussian_filter`` (``mode="reflect"``), scikit-image ``denoise_tv_chambolle``
(the algorithm the hand-written torch solver follows), and ART's ``FeatureSqueezing`` formula for
bit-depth. Tolerances: exact for integer-valued outputs (JPEG, median, bit-depth); 1e-6 for the
float64 Gaussian filter; 1e-6 for TV (same float64 iterations, same stopping rule).
"""

from __future__ import annotations

import io

import numpy as np
import pytest
import torch
from PIL import Image

from aisec.core.errors import ConfigError
from aisec.core.registry import get
from aisec.defences.preprocess import DefendedTarget, parse_defence, preprocess_names


@pytest.fixture(scope="module")
def images() -> torch.Tensor:
    g = torch.Generator().manual_seed(0)
    return torch.rand(4, 1, 12, 10, generator=g)


def test_every_defence_is_registered_with_its_facts():
    assert preprocess_names() == ["bit-depth", "gaussian-blur", "gaussian-noise", "jpeg", "median", "tv-min"]
    facts = {n: (get("defence", n).differentiable, get("defence", n).stochastic,
                 get("defence", n).piecewise_constant) for n in preprocess_names()}
    assert facts == {"bit-depth": (False, False, True), "gaussian-blur": (True, False, False),
                     "gaussian-noise": (True, True, False), "jpeg": (False, False, True),
                     "median": (False, False, False), "tv-min": (False, False, False)}


def test_jpeg_is_pillows_round_trip(images):
    d = parse_defence("jpeg:quality=50")
    out = d(images, (0.0, 1.0))
    for i in range(images.shape[0]):
        u8 = (images[i, 0] * 255).round().to(torch.uint8).numpy()
        buf = io.BytesIO()
        Image.fromarray(u8, mode="L").save(buf, format="JPEG", quality=50)
        ref = np.asarray(Image.open(io.BytesIO(buf.getvalue())), dtype=np.float32) / 255
        assert np.array_equal(out[i, 0].numpy(), ref)
    assert float((parse_defence("jpeg:10")(images, (0.0, 1.0)) - images).abs().mean()) \
        > float((parse_defence("jpeg:95")(images, (0.0, 1.0)) - images).abs().mean())  # lower quality, more loss


def test_jpeg_rgb_and_value_range():
    t = torch.linspace(-1, 1, 16)
    x = torch.stack([t[None, :].expand(16, 16), t[:, None].expand(16, 16), -t[None, :].expand(16, 16)])
    x = torch.stack([x, x.flip(-1)])  # smooth colour ramps in [-1, 1]: what JPEG keeps well
    out = parse_defence("jpeg").transform(x, (-1.0, 1.0))
    assert out.shape == x.shape and out.min() >= -1 and out.max() <= 1
    assert 0 < float((out - x).abs().mean()) < 0.05


def test_median_matches_scipy(images):
    from scipy.ndimage import median_filter

    for k in (3, 5):
        out = parse_defence(f"median:size={k}")(images, (0.0, 1.0)).numpy()
        ref = median_filter(images.numpy(), size=(1, 1, k, k), mode="reflect")
        assert np.array_equal(out, ref)


def test_gaussian_blur_matches_scipy(images):
    from scipy.ndimage import gaussian_filter

    x = images.double()
    for sigma in (0.5, 1.5, 6.0):  # 6.0: a kernel wider than the image (the symmetric pad repeats)
        out = parse_defence(f"gaussian-blur:sigma={sigma}")(x, (0.0, 1.0)).numpy()
        ref = gaussian_filter(x.numpy(), sigma=(0, 0, sigma, sigma), mode="reflect", truncate=4.0)
        np.testing.assert_allclose(out, ref, atol=1e-6)


def test_tv_min_matches_scikit_image(images):
    from skimage.restoration import denoise_tv_chambolle

    out = parse_defence("tv-min:weight=0.15").transform(images, (0.0, 1.0)).numpy()
    for i in range(images.shape[0]):
        ref = denoise_tv_chambolle(images[i, 0].double().numpy(), weight=0.15)
        np.testing.assert_allclose(out[i, 0], ref, atol=1e-6)
    tv = lambda a: float(np.abs(np.diff(a, axis=-1)).sum() + np.abs(np.diff(a, axis=-2)).sum())  # noqa: E731
    assert tv(out) < 0.5 * tv(images.numpy())  # the point of it: much less total variation


def test_bit_depth_is_feature_squeezing(images):
    out = parse_defence("bit-depth:bits=3")(images, (0.0, 1.0))
    assert torch.equal(out, torch.round(images * 7) / 7)  # ART FeatureSqueezing, bit_depth=3
    assert len(torch.unique(out)) <= 8


def test_gaussian_noise_is_fresh_each_call_and_clipped(images):
    d = parse_defence("gaussian-noise:sigma=0.2")
    a, b = d(images, (0.0, 1.0)), d(images, (0.0, 1.0))
    assert not torch.equal(a, b) and a.min() >= 0 and a.max() <= 1
    unclipped = parse_defence("gaussian-noise:sigma=0.2,clip=false")(images.repeat(16, 1, 1, 1), (0.0, 1.0))
    assert float((unclipped - images.repeat(16, 1, 1, 1)).std()) == pytest.approx(0.2, rel=0.05)


@pytest.mark.parametrize(("spec", "message"), [
    ("nope", "unknown defence 'nope'; known: bit-depth, gaussian-blur, gaussian-noise, jpeg, median, tv-min"),
    ("jpeg:quality=500", "defence 'jpeg': quality: Input should be less than or equal to 100"),
    ("jpeg:q=5", "defence 'jpeg': q: Extra inputs are not permitted (its parameters: quality)"),
    ("median:size=4", "the window side must be odd"),
    ("gaussian-noise:sigma=nan", "defence 'gaussian-noise': sigma:"),
    ("jpeg:quality", "quality: Input should be a valid integer"),  # a bare first value is the first parameter
    ("jpeg:75,9", "parameters are key=value pairs, got '9'"),
])
def test_bad_specs_are_one_line_errors(spec, message):
    with pytest.raises(ConfigError, match=None) as err:
        parse_defence(spec)
    assert message in str(err.value) and "\n" not in str(err.value)


def test_spec_forms_and_label():
    assert parse_defence("jpeg:75").label() == "jpeg:quality=75"
    assert parse_defence("JPEG-compression").label() == "jpeg:quality=75"  # alias, case-insensitive
    assert parse_defence("gaussian-blur:sigma=2").label() == "gaussian-blur:sigma=2,truncate=4"


def test_wrapper_gradients_tell_the_truth(digits_target, digits_test_batch):
    """Differentiable: exact gradient; piecewise constant: exactly zero; otherwise no gradient path."""
    x = digits_test_batch[0][:8].clone().requires_grad_(True)
    blur = DefendedTarget(digits_target, "gaussian-blur:sigma=0.7")
    (g,) = torch.autograd.grad(blur.logits(x)[:, 0].sum(), x)
    assert g.abs().sum() > 0
    jpeg = DefendedTarget(digits_target, "bit-depth:bits=3")
    (g,) = torch.autograd.grad(jpeg.logits(x)[:, 0].sum(), x)
    assert torch.count_nonzero(g) == 0
    med = DefendedTarget(digits_target, "median")
    z = med.logits(x)
    assert not z.requires_grad or torch.autograd.grad(z[:, 0].sum(), x, allow_unused=True)[0] is None
    # the forward is the defended system: the model on the defended input
    with torch.no_grad():
        xd = x.detach()
        assert torch.allclose(med.predict(xd), digits_target.predict(med.defence(xd, (0.0, 1.0))))
        assert torch.allclose(med.bpda().predict(xd), med.predict(xd))
    assert med.spec.name == "digits-cnn+median:size=3" and med.bpda().spec.name == "bpda(median:size=3)-digits-cnn"
    assert med.queries == digits_target.queries


def test_image_defence_refuses_a_table_model():
    from aisec.targets.torch import TorchTarget

    t = TorchTarget(torch.nn.Linear(5, 2), input_shape=(5,), num_classes=2, name="tab", device="cpu")
    with pytest.raises(ConfigError, match="defence 'median' needs image inputs"):
        DefendedTarget(t, "median")
    assert DefendedTarget(t, "gaussian-noise").spec.name.startswith("tab+gaussian-noise")  # any input
