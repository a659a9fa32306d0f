"""Label-only HTTP targets: a loopback JSON endpoint that answers one class per sample.

Decision-based attacks (HopSkipJump) run on it within their budget; score-based ones (Square) are
refused with a CapabilityError naming the alternatives; the privacy check runs the label-only
membership attacks on an over-fitted model; hostile label replies raise OutputError/ShapeError
with the results of earlier requests kept in ``.partial``.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler
from typing import Any

import httpx
import numpy as np
import pytest
import torch

from aisec.attacks.base import run_attack
from aisec.core.errors import CapabilityError, OutputError, ShapeError
from aisec.core.types import Capability, OutputKind
from aisec.targets.http import HttpTarget
from aisec.testing.v2_server import LoopbackServer


class LabelServer(LoopbackServer):
    """``POST /predict`` with ``{"instances": [...]}`` → ``{"labels": [...]}`` from ``label_fn``."""

    path = "/predict"

    def __init__(self, label_fn: Callable[[np.ndarray], list[Any]]) -> None:
        self.label_fn = label_fn
        self.samples = 0
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: Any) -> None:
                return

            def do_POST(self) -> None:
                raw = self.rfile.read(int(self.headers.get("content-length", "0")))
                x = np.asarray(json.loads(raw)["instances"], dtype=np.float32)
                server.samples += x.shape[0]
                body = json.dumps({"labels": server.label_fn(x)}).encode()
                self.send_response(200)
                self.send_header("content-type", "application/json")
                self.send_header("content-length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

        super().__init__(Handler)

    def __enter__(self) -> LabelServer:
        super().__enter__()
        return self


def label_target(url: str, **kw: Any) -> HttpTarget:
    args: dict[str, Any] = dict(protocol="json", response_path="labels", output="labels", input_shape=(1, 8, 8),
                                num_classes=10, retries=0)
    return HttpTarget(url, **(args | kw))


@pytest.fixture
def digits_labels(digits_target) -> Iterator[LabelServer]:
    def labels(x: np.ndarray) -> list[int]:
        return digits_target.predict(torch.from_numpy(x)).argmax(1).tolist()

    with LabelServer(labels) as srv:
        yield srv


def test_spec_and_one_hot_predictions(digits_labels, digits_target, digits_test_batch, tmp_path):
    x, _ = digits_test_batch
    log = tmp_path / "q.jsonl"
    with label_target(digits_labels.url, query_budget=100, max_batch=20, log_path=log) as t:
        assert t.spec.output is OutputKind.LABELS
        assert Capability.LABELS_ONLY in t.spec.capabilities and Capability.QUERY_BUDGET in t.spec.capabilities
        assert Capability.PROBABILITIES not in t.spec.capabilities
        p = t.predict(x[:30])
        assert t.queries == 30 and digits_labels.samples == 30
    assert torch.equal(p.sum(1), torch.ones(30)) and set(p.unique().tolist()) == {0.0, 1.0}
    assert torch.equal(p.argmax(1), digits_target.predict(x[:30]).argmax(1))
    recs = [json.loads(s) for s in log.read_text().splitlines()]
    assert [len(r["labels"]) for r in recs] == [20, 10] and "scores" not in recs[0]
    assert recs[0]["labels"] == p.argmax(1)[:20].tolist()


def test_hopskipjump_fools_within_budget_and_square_is_refused(digits_labels, digits_target, digits_test_batch):
    x, y = digits_test_batch
    x, y = x[:8], y[:8]
    budget = 8 * 200 + 8
    with label_target(digits_labels.url, query_budget=budget) as t:
        with pytest.raises(CapabilityError, match=r"attack 'square' needs probabilities.*'boundary',.*'hopskipjump'"):
            run_attack("square", t, x, y, {"eps": 0.3, "max_queries": 50})
        assert t.queries == 0  # refused before a single query
        out = run_attack("hopskipjump", t, x, y, {"max_queries": 200, "max_iter": 8, "init_evals": 20},
                         batch_size=8)
        assert t.queries <= budget and digits_labels.samples == t.queries
    # HopSkipJump reads only arg-maxes: over labels it must take exactly the path it takes with scores.
    ref = run_attack("hopskipjump", digits_target, x, y, {"max_queries": 200, "max_iter": 8, "init_evals": 20},
                     batch_size=8)
    assert torch.equal(out.x_adv, ref.x_adv) and out.queries == ref.queries
    eligible = out.pred_clean == out.y
    assert eligible.sum() >= 6
    fooled = out.success & eligible
    assert fooled.float().mean() >= 0.5
    assert torch.equal(digits_target.predict(out.x_adv[fooled]).argmax(1) != y[fooled], torch.ones(int(fooled.sum()),
                                                                                                    dtype=torch.bool))


def test_class_name_replies_are_mapped(digits_target, digits_test_batch):
    x, _ = digits_test_batch
    names = [f"digit-{i}" for i in range(10)]

    def labels(xb: np.ndarray) -> list[str]:
        return [names[i] for i in digits_target.predict(torch.from_numpy(xb)).argmax(1).tolist()]

    with LabelServer(labels) as srv, label_target(srv.url, class_names=names) as t:
        assert torch.equal(t.predict(x[:5]).argmax(1), digits_target.predict(x[:5]).argmax(1))


def _mock(replies: list[Any]) -> httpx.Client:
    calls = {"n": 0}

    def handler(request: httpx.Request) -> httpx.Response:
        body = replies[min(calls["n"], len(replies) - 1)]
        calls["n"] += 1
        return httpx.Response(200, json=body)

    return httpx.Client(transport=httpx.MockTransport(handler))


@pytest.mark.parametrize(
    ("bad", "err", "match"),
    [
        ([0, 10], OutputError, r"label 10 for sample 1; labels must lie in \[0, 10\)"),
        ([0, -1], OutputError, r"label -1 .* \[0, 10\)"),
        ([0, 2.5], OutputError, r"2.5 \(float\) for sample 1; .* integer class indices"),
        ([0, True], OutputError, r"True \(bool\)"),
        ([0], ShapeError, r"returned 1 labels for 2 samples"),
        ([0, "cat"], OutputError, r"'cat' .* not a known class name"),
        ({"a": 1}, OutputError, r"dict where a list of 2 labels"),
    ],
)
def test_hostile_label_replies_keep_earlier_results(bad, err, match):
    x = torch.rand(4, 1, 8, 8)
    client = _mock([{"labels": [3, 7]}, {"labels": bad}])
    t = label_target("http://model.local/predict", max_batch=2, client=client)
    with pytest.raises(err, match=match) as info:
        t.predict(x)
    part = info.value.partial
    assert part.shape == (2, 10) and part.argmax(1).tolist() == [3, 7]


def test_v2_label_tensor(digits_target):
    x = torch.rand(3, 1, 8, 8)

    def reply(data: list[Any], dtype: str = "INT64", shape: list[int] | None = None) -> dict[str, Any]:
        return {"outputs": [{"name": "label", "datatype": dtype, "shape": shape or [len(data)], "data": data}]}

    common: dict[str, Any] = dict(protocol="v2", model="m", output="labels", input_shape=(1, 8, 8), num_classes=10)
    t = HttpTarget("http://srv", client=_mock([reply([1, 2, 9])]), **common)
    assert t.predict(x).argmax(1).tolist() == [1, 2, 9]
    t = HttpTarget("http://srv", client=_mock([reply([0.1, 0.2, 0.7], "FP32")]), **common)
    with pytest.raises(OutputError, match="FP32 tensor where labels"):
        t.predict(x)
    t = HttpTarget("http://srv", client=_mock([reply([1, 2, 3, 4, 5, 6], shape=[3, 2])]), **common)
    with pytest.raises(ShapeError, match=r"shape \[3, 2\]"):
        t.predict(x)
    with pytest.raises(CapabilityError, match="predicted labels only"):
        t.logits(x)


def test_privacy_check_on_label_only_overfit_model(digits_split):
    """A depth-unlimited decision tree memorises its members: the label-only attack must see it."""
    from sklearn.tree import DecisionTreeClassifier

    from aisec.checks.privacy import PrivacyCheck, PrivacyParams
    from aisec.core.dataset import TensorDataset
    from aisec.core.types import Modality

    train, test = digits_split
    xm, ym, xn, yn = train.x[:200], train.y[:200], test.x[:200], test.y[:200]
    tree = DecisionTreeClassifier(random_state=0).fit(xm.reshape(200, -1).numpy(), ym.numpy())

    def labels(xb: np.ndarray) -> list[int]:
        return tree.predict(xb.reshape(xb.shape[0], -1)).astype(int).tolist()

    members = TensorDataset(xm, ym, name="members", modality=Modality.IMAGE)
    nonmembers = TensorDataset(xn, yn, name="nonmembers", modality=Modality.IMAGE)
    with LabelServer(labels) as srv, label_target(srv.url, max_batch=4096) as t:
        res = PrivacyCheck().run(t, members, PrivacyParams(nonmembers=nonmembers))
    aucs = {s["key"]: s["auc"] for s in res.summary["attacks"]}
    assert set(aucs) == {"gap", "label_only"}
    assert any("returns labels only" in w and "score-based" in w for w in res.warnings)
    assert res.summary["member_accuracy"] == 1.0 and res.summary["nonmember_accuracy"] < 0.95
    assert aucs["label_only"] > 0.6 and aucs["gap"] > 0.5
