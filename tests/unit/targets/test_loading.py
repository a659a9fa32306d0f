"""load_target: every supported format round-trips; unsafe, corrupt and mismatched files fail clearly."""

from __future__ import annotations

import hashlib
import os
import pickle
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from aisec.core.errors import (
    BudgetExceeded,
    ConfigError,
    OutputError,
    ShapeError,
    TargetError,
    UnsafeModelError,
)
from aisec.core.types import Access, Capability
from aisec.models.zoo import DigitsCNN
from aisec.targets import ProbaTarget, TorchTarget, load_target

SHAPE = (1, 8, 8)


@pytest.fixture(scope="module")
def net() -> DigitsCNN:
    torch.manual_seed(0)
    return DigitsCNN().eval()


@pytest.fixture(scope="module")
def batch() -> torch.Tensor:
    return torch.rand(16, *SHAPE, generator=torch.Generator().manual_seed(1))


def _load(model, **kw):
    kw.setdefault("input_shape", SHAPE)
    kw.setdefault("num_classes", 10)
    kw.setdefault("device", "cpu")
    return load_target(model, **kw)


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _same(target, net: nn.Module, x: torch.Tensor) -> None:
    with torch.no_grad():
        want = torch.softmax(net(x), 1)
    torch.testing.assert_close(target.predict(x), want)


# ------------------------------------------------------------------------------- round trips


def test_module_in_memory(net, batch):
    t = _load(net)
    assert isinstance(t, TorchTarget) and t.spec.access is Access.WHITE
    _same(t, net, batch)
    assert t.queries == batch.shape[0]  # the probe pass is not counted


def test_torchscript(tmp_path, net, batch):
    path = tmp_path / "m.pt"
    torch.jit.save(torch.jit.script(net), str(path))
    t = _load(path, arch="does.not:Matter")  # arch is ignored for TorchScript
    assert isinstance(t, TorchTarget) and t.spec.name == "m.pt" and t.spec.digest == _sha(path)
    _same(t, net, batch)


def test_safetensors_with_import_path(tmp_path, net, batch):
    from safetensors.torch import save_file

    path = tmp_path / "m.safetensors"
    save_file(net.state_dict(), str(path))
    t = _load(path, arch="aisec.models.zoo:DigitsCNN", arch_kwargs={"num_classes": 10})
    assert t.spec.digest == _sha(path)
    _same(t, net, batch)


def test_state_dict_pt_with_zoo_name(tmp_path, net, batch):
    path = tmp_path / "m.pth"
    torch.save(net.state_dict(), path)
    t = _load(str(path), arch="digits-cnn")
    assert t.spec.digest == _sha(path)
    _same(t, net, batch)


def test_checkpoint_dict_and_dataparallel_prefix(tmp_path, net, batch):
    path = tmp_path / "ckpt.bin"
    sd = {f"module.{k}": v for k, v in net.state_dict().items()}
    torch.save({"epoch": 3, "state_dict": sd}, path)
    _same(_load(path, arch="digits-cnn"), net, batch)


def test_pickled_module_needs_opt_in(tmp_path, net, batch):
    path = tmp_path / "whole.pt"
    torch.save(net, path)
    with pytest.raises(UnsafeModelError, match=r"trust-model-code.*") as err:
        _load(path)
    assert "DigitsCNN" in str(err.value)  # names what the pickle would import
    t = _load(path, trust_model_code=True)
    assert isinstance(t, TorchTarget) and t.spec.digest == _sha(path)
    _same(t, net, batch)


@pytest.fixture(scope="module")
def logreg():
    from sklearn.linear_model import LogisticRegression

    rng = np.random.default_rng(0)
    x = rng.random((60, 64), dtype=np.float32)
    y = np.arange(60) % 3
    return LogisticRegression(max_iter=200).fit(x, y)


@pytest.mark.parametrize("suffix", [".pkl", ".joblib"])
def test_sklearn_pickle_needs_opt_in(tmp_path, logreg, suffix):
    path = tmp_path / f"clf{suffix}"
    if suffix == ".pkl":
        path.write_bytes(pickle.dumps(logreg))
    else:
        import joblib

        joblib.dump(logreg, path)
    with pytest.raises(UnsafeModelError, match="execute code"):
        _load(path, num_classes=3)
    t = _load(path, num_classes=3, trust_model_code=True)
    assert isinstance(t, ProbaTarget) and t.spec.access is Access.BLACK
    assert t.spec.digest == _sha(path)
    x = torch.rand(5, *SHAPE)
    want = logreg.predict_proba(x.reshape(5, -1).numpy())
    np.testing.assert_allclose(t.predict(x).numpy(), want, rtol=1e-5, atol=1e-6)


class _Evil:
    def __init__(self, marker: str) -> None:
        self.marker = marker

    def __reduce__(self):
        return (open, (self.marker, "w"))


@pytest.mark.parametrize("suffix", [".pt", ".pkl"])
def test_malicious_pickle_refused_without_running(tmp_path, suffix):
    marker = tmp_path / "pwned"
    path = tmp_path / f"evil{suffix}"
    if suffix == ".pt":
        torch.save({"weight": torch.zeros(1), "x": _Evil(str(marker))}, path)
    else:
        path.write_bytes(pickle.dumps(_Evil(str(marker))))
    assert not marker.exists()
    with pytest.raises(UnsafeModelError, match="trust_model_code=True"):
        _load(path, arch="digits-cnn")
    assert not marker.exists()


# ------------------------------------------------------------------------------------ errors


def test_missing_file(tmp_path):
    with pytest.raises(TargetError, match=r"model file not found: .*nope\.pt"):
        _load(tmp_path / "nope.pt")


@pytest.mark.parametrize(
    ("suffix", "fmt"),
    [(".pt", "PyTorch checkpoint"), (".safetensors", "safetensors"), (".pkl", "pickled model")],
)
def test_random_bytes(tmp_path, suffix, fmt):
    path = tmp_path / f"junk{suffix}"
    path.write_bytes(os.urandom(4096))
    with pytest.raises(TargetError) as err:
        _load(path, arch="digits-cnn", trust_model_code=suffix == ".pkl")
    assert not isinstance(err.value, UnsafeModelError)
    assert path.name in str(err.value) and fmt in str(err.value)


@pytest.mark.parametrize("kind", ["state_dict", "torchscript", "safetensors"])
def test_truncated(tmp_path, net, kind):
    from safetensors.torch import save_file

    path = tmp_path / ("m.safetensors" if kind == "safetensors" else "m.pt")
    if kind == "state_dict":
        torch.save(net.state_dict(), path)
    elif kind == "torchscript":
        torch.jit.save(torch.jit.script(net), str(path))
    else:
        save_file(net.state_dict(), str(path))
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(TargetError, match=r"cannot read .*m\.(pt|safetensors) as .*truncated or corrupt"):
        _load(path, arch="digits-cnn")


def test_unknown_suffix(tmp_path):
    path = tmp_path / "model.xyz"
    path.write_bytes(b"not a model")
    with pytest.raises(TargetError, match="unknown model format"):
        _load(path)


def test_corrupt_onnx_is_a_target_error(tmp_path):
    path = tmp_path / "model.onnx"
    path.write_bytes(b"not a model")
    with pytest.raises(TargetError, match="cannot load ONNX model"):
        _load(path)


def test_state_dict_without_arch(tmp_path, net):
    path = tmp_path / "w.pt"
    torch.save(net.state_dict(), path)
    with pytest.raises(TargetError, match=r"--arch package\.module:Class"):
        _load(path)


def test_wrong_arch_lists_keys(tmp_path, net):
    path = tmp_path / "w.pt"
    torch.save(net.state_dict(), path)
    with pytest.raises(TargetError, match=r"do not fit architecture 'lenet5'.*missing: conv1\.weight"):
        _load(path, arch="lenet5")


def test_size_mismatch_lists_keys(tmp_path, net):
    path = tmp_path / "w.pt"
    torch.save(net.state_dict(), path)
    with pytest.raises(TargetError, match=r"size mismatch: classifier\.3\.weight \(file \(10, 64\), model \(3, 64\)\)"):
        _load(path, arch="digits-cnn", arch_kwargs={"num_classes": 3}, num_classes=3)


@pytest.mark.parametrize("arch", ["no_such_pkg.mod:Net", "aisec.models.zoo:NoSuchNet", "aisec.models.zoo:torch"])
def test_bad_import_path(tmp_path, net, arch):
    path = tmp_path / "w.pt"
    torch.save(net.state_dict(), path)
    with pytest.raises(TargetError, match=arch.split(":")[0]):
        _load(path, arch=arch)


def test_class_count_mismatch(net):
    with pytest.raises(ShapeError, match=r"has 10 outputs but the data has 3 classes \(expected 3, got 10\)"):
        _load(net, num_classes=3)


def test_input_shape_mismatch(net):
    with pytest.raises(ShapeError, match=r"does not accept inputs of shape \(1, 3, 8, 8\)"):
        _load(net, input_shape=(3, 8, 8))


def test_sklearn_feature_mismatch(logreg):
    with pytest.raises(ShapeError, match=r"does not accept inputs of shape \(1, 1, 28, 28\)"):
        _load(logreg, input_shape=(1, 28, 28), num_classes=3)


class _NaNNet(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.full((x.shape[0], 10), float("nan"))


def test_nan_outputs():
    t = _load(_NaNNet())
    with pytest.raises(OutputError, match="NaN"):
        t.predict(torch.rand(2, *SHAPE))


def test_tuple_output_is_rejected():
    class TupleNet(nn.Module):
        def forward(self, x):
            return x.reshape(x.shape[0], -1)[:, :10], x

    with pytest.raises(OutputError, match="must return"):
        _load(TupleNet())


def test_options_that_do_not_fit(net, logreg):
    with pytest.raises(ConfigError, match="black-box"):
        _load(net, query_budget=10)
    with pytest.raises(ConfigError, match="Pipeline"):
        _load(logreg, num_classes=3, normalization={"mean": (0.5,), "std": (0.5,)})


# --------------------------------------------------------------------- black box and budgets


class _CountingModel:
    def __init__(self, inner) -> None:
        self.inner = inner
        self.seen = 0

    def predict_proba(self, x):
        self.seen += len(x)
        return self.inner.predict_proba(x)


def test_proba_budget(logreg):
    model = _CountingModel(logreg)
    t = _load(model, num_classes=3, query_budget=10)
    assert t.spec.has(Capability.QUERY_BUDGET)
    probe = model.seen  # the load-time probe queried the model once
    assert probe == 1 and t.queries == 0
    t.predict(torch.rand(6, *SHAPE))
    assert t.queries == 6
    with pytest.raises(BudgetExceeded) as err:
        t.predict(torch.rand(5, *SHAPE))
    assert (err.value.used, err.value.budget) == (6, 10)
    assert t.queries == 6 and model.seen == probe + 6  # nothing beyond the budget reached the model
    t.predict(torch.rand(4, *SHAPE))
    assert t.queries == 10 and model.seen == probe + 10
    with pytest.raises(BudgetExceeded):
        t.predict(torch.rand(1, *SHAPE))
    assert model.seen == probe + 10


# ---------------------------------------------------------------------------- normalisation


def test_normalization_inside_target(net, batch):
    mean, std = (0.3,), (0.2,)
    t = _load(net, normalization={"mean": mean, "std": std})
    with torch.no_grad():
        want = torch.softmax(net((batch - mean[0]) / std[0]), 1)
    torch.testing.assert_close(t.predict(batch), want)
    # and gradients flow back to the natural input space
    x = batch.clone().requires_grad_(True)
    t.logits(x).sum().backward()
    assert x.grad is not None and torch.isfinite(x.grad).all()
