"""HTTP targets against a real digits model served on loopback (Open Inference Protocol v2),
plus hostile endpoints: slow, wrong JSON, wrong shapes, 500s, huge replies."""

from __future__ import annotations

import json

import httpx
import pytest
import torch

from aisec.attacks.base import run_attack
from aisec.campaigns.scan import scan
from aisec.core.errors import BudgetExceeded, OutputError, ShapeError
from aisec.targets.http import EndpointError, HttpTarget
from aisec.testing.v2_server import V2Server


def v2(srv, **kw):
    args = dict(protocol="v2", model="digits", input_shape=(1, 8, 8), num_classes=10, retries=1, backoff=0.01)
    return HttpTarget(srv.url, **(args | kw))


@pytest.fixture
def serve(digits_target):
    def make(**kw):
        return V2Server(digits_target.predict, model="digits", input_shape=(1, 8, 8), **kw)

    return make


def test_v2_matches_in_process_and_logs(serve, digits_target, digits_test_batch, tmp_path):
    x, _ = digits_test_batch
    log = tmp_path / "q.jsonl"
    with serve() as srv, v2(srv, max_batch=50, log_path=log, query_budget=1000) as t:
        p = t.predict(x)
        assert torch.allclose(p, digits_target.predict(x), atol=1e-5)
        assert t.queries == 128 and srv.requests == 3 and srv.samples == 128
    lines = [json.loads(s) for s in log.read_text().splitlines()]
    assert [r["samples"] for r in lines] == [50, 50, 28] and all(r["status"] == 200 for r in lines)
    assert len(lines[0]["scores"]) == 50


def test_square_over_http_respects_budget(serve, digits_test_batch):
    x, y = digits_test_batch
    x, y = x[:16], y[:16]
    with serve() as srv, v2(srv, query_budget=16 * 2 + 200) as t:
        out = run_attack("square", t, x, y, {"eps": 0.3, "max_queries": 100}, batch_size=64)
        assert t.queries <= 232 and srv.samples == t.queries
        assert out.success.any()


def test_plain_json_endpoint(digits_target, digits_test_batch):
    x, _ = digits_test_batch

    def handler(request: httpx.Request) -> httpx.Response:
        body = json.loads(request.content)
        p = digits_target.predict(torch.tensor(body["payload"]["rows"]))
        return httpx.Response(200, json={"result": {"probs": p.tolist()}})

    client = httpx.Client(transport=httpx.MockTransport(handler))
    t = HttpTarget("http://model.local/predict", protocol="json", request_template={"payload": {"rows": "{{inputs}}"}},
                   response_path="result.probs", input_shape=(1, 8, 8), num_classes=10, client=client)
    assert torch.allclose(t.predict(x[:5]), digits_target.predict(x[:5]), atol=1e-5)


def test_slow_endpoint_times_out_clearly(serve, digits_test_batch):
    x, _ = digits_test_batch
    with serve(delay=0.5) as srv, v2(srv, timeout=0.1, retries=1) as t:
        with pytest.raises(EndpointError, match=r"failed 2 times; last error: timed out after 0.1 s"):
            t.predict(x[:2])
        assert t.queries == 4  # each attempt is counted: the server may have seen it


def test_500s_retried_then_succeed(serve, digits_test_batch):
    x, _ = digits_test_batch
    with serve(fail_first=1) as srv, v2(srv, retries=2) as t:
        assert t.predict(x[:3]).shape == (3, 10)
        assert srv.requests == 2


def test_persistent_500_keeps_partial_results(serve, digits_target, digits_test_batch, tmp_path):
    x, _ = digits_test_batch
    log = tmp_path / "q.jsonl"
    with serve() as srv, v2(srv, max_batch=4, retries=1, log_path=log) as t:
        srv.fail_first = 0
        first = t.predict(x[:4])
        srv.mode = "error500"
        with pytest.raises(EndpointError, match="HTTP 500") as err:
            t.predict(x[:8])
    assert first.shape == (4, 10)
    assert err.value.partial is not None and err.value.partial.shape == (0, 10)
    recs = [json.loads(s) for s in log.read_text().splitlines()]
    assert recs[0]["status"] == 200 and "scores" in recs[0]
    assert [r["status"] for r in recs[1:]] == [500, 500]


def test_partial_results_across_chunks(serve, digits_target, digits_test_batch):
    x, _ = digits_test_batch
    with serve() as srv, v2(srv, max_batch=4, retries=0) as t:
        orig = srv.predict
        calls = {"n": 0}

        def flaky(xb):
            calls["n"] += 1
            if calls["n"] == 2:
                srv.mode = "bad_json"
            return orig(xb)

        srv.predict = flaky
        with pytest.raises(OutputError, match="did not return JSON") as err:
            t.predict(x[:12])
    part = err.value.partial
    assert part.shape == (4, 10) and torch.allclose(part, digits_target.predict(x[:4]), atol=1e-5)


def test_wrong_shape_and_huge_reply(serve, digits_test_batch):
    x, _ = digits_test_batch
    with serve(mode="bad_shape") as srv, v2(srv) as t, pytest.raises(ShapeError, match=r"shape \(2, 9\)"):
        t.predict(x[:2])
    with serve(mode="huge") as srv, v2(srv, max_response_bytes=100_000) as t, pytest.raises(OutputError, match="byte"):
        t.predict(x[:2])


def test_budget_refused_before_sending(serve, digits_test_batch):
    x, _ = digits_test_batch
    with serve() as srv, v2(srv, query_budget=5) as t:
        t.predict(x[:5])
        with pytest.raises(BudgetExceeded):
            t.predict(x[:1])
        assert srv.samples == 5


def test_scan_keeps_runs_before_failure(serve, digits_test_batch):
    x, y = digits_test_batch
    x, y = x[:8], y[:8]
    with serve() as srv, v2(srv, query_budget=8 * 2 + 8 * 20 + 4) as t:
        summary = scan(t, x, y, {"square": {"eps": [0.01], "max_queries": [20]}, "simba": {"eps": [0.3]}})
        assert t.queries <= 180
    assert summary.rows[0].runs == 1 and summary.rows[0].errors == []
    assert summary.rows[0].queries_max == 22
    # simba found the budget spent by square: its run failed cleanly, square's results are kept
    assert summary.rows[1].errors and "budget" in summary.rows[1].errors[0]


def test_config_errors():
    from aisec.core.errors import ConfigError

    with pytest.raises(ConfigError, match="model name"):
        HttpTarget("http://x", protocol="v2", input_shape=(2,), num_classes=2)
    with pytest.raises(ConfigError, match="inputs"):
        HttpTarget("http://x", protocol="json", request_template={"a": 1}, input_shape=(2,), num_classes=2)
    with pytest.raises(ConfigError, match="http"):
        HttpTarget("file:///etc/passwd", protocol="json", input_shape=(2,), num_classes=2)
