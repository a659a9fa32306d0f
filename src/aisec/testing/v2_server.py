"""A small Open Inference Protocol v2 server on loopback, for tests and benchmarks.

It serves any ``predict(x) -> probabilities`` callable (e.g. a :class:`TorchTarget`) at
``/v2/health/ready``, ``/v2/models/{name}`` and ``/v2/models/{name}/infer``, with optional
misbehaviour for hostile-endpoint tests: ``delay`` seconds per request, ``fail_first`` requests
answered 500, and ``mode`` in {``ok``, ``bad_json``, ``bad_shape``, ``huge``, ``error500``}.
Standard library only (``http.server``), bound to 127.0.0.1.

>>> with V2Server(lambda x: target.predict(x), model="digits", input_shape=(1, 8, 8)) as srv:
...     HttpTarget(srv.url, protocol="v2", model="digits", input_shape=(1, 8, 8), num_classes=10)
"""

from __future__ import annotations

import json
import socket
import threading
import time
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import numpy as np
import torch


class LoopbackServer:
    """A threaded HTTP server on 127.0.0.1 (a free port) serving ``handler``, as a context manager;
    ``url`` is its address plus ``path``."""

    path = ""

    def __init__(self, handler: type[BaseHTTPRequestHandler]) -> None:
        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self._httpd.daemon_threads = True
        self._thread = threading.Thread(target=self._httpd.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        host, port = self._httpd.server_address[:2]
        if not isinstance(host, str):  # AF_INET: always str; the socketserver stub also admits bytes
            host = host.decode()
        return f"http://{host}:{port}{self.path}"

    def __enter__(self) -> LoopbackServer:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()
        self._thread.join(timeout=5)


class V2Server(LoopbackServer):
    def __init__(
        self,
        predict: Callable[[torch.Tensor], torch.Tensor],
        *,
        model: str,
        input_shape: tuple[int, ...],
        delay: float = 0.0,
        mode: str = "ok",
        fail_first: int = 0,
    ) -> None:
        self.predict = predict
        self.model = model
        self.input_shape = input_shape
        self.delay = delay
        self.mode = mode
        self.fail_first = fail_first
        self.requests = 0
        self.samples = 0
        self._lock = threading.Lock()
        super().__init__(self._handler())

    def __enter__(self) -> V2Server:
        super().__enter__()
        return self

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def setup(self) -> None:
                super().setup()
                # Without this, Nagle + delayed ACK add ~40 ms to every small keep-alive reply.
                self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

            def log_message(self, format: str, *args: Any) -> None:  # quiet
                return

            def handle(self) -> None:
                # A client that gives up (its timeout, a reply it refuses as too large) closes the
                # connection while the reply is being written: nothing is left to answer, so end
                # this connection quietly instead of letting socketserver print a traceback. Any
                # other error still reaches socketserver's handle_error.
                try:
                    super().handle()
                except (BrokenPipeError, ConnectionResetError):
                    self.close_connection = True

            def _send(self, code: int, body: bytes) -> None:
                self.send_response(code)
                self.send_header("content-type", "application/json")
                self.send_header("content-length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def do_GET(self) -> None:
                if self.path == "/v2/health/ready":
                    self._send(200, b"{}")
                elif self.path == f"/v2/models/{server.model}":
                    meta = {"name": server.model, "platform": "aisec-test",
                            "inputs": [{"name": "input-0", "datatype": "FP32", "shape": [-1, *server.input_shape]}]}
                    self._send(200, json.dumps(meta).encode())
                else:
                    self._send(404, b'{"error": "not found"}')

            def do_POST(self) -> None:
                length = int(self.headers.get("content-length", "0"))
                raw = self.rfile.read(length)
                with server._lock:
                    server.requests += 1
                    nth = server.requests
                if self.path != f"/v2/models/{server.model}/infer":
                    self._send(404, b'{"error": "unknown model"}')
                    return
                if server.delay:
                    time.sleep(server.delay)
                if nth <= server.fail_first or server.mode == "error500":
                    self._send(500, b'{"error": "internal"}')
                    return
                req = json.loads(raw)
                inp = req["inputs"][0]
                x = torch.tensor(np.asarray(inp["data"], dtype=np.float32).reshape(inp["shape"]))
                with server._lock:
                    server.samples += int(x.shape[0])
                p = server.predict(x).detach().cpu().float().numpy()
                if server.mode == "bad_json":
                    self._send(200, b'{"outputs": [ {"name": "probs", "data": [0.1, ')
                    return
                if server.mode == "bad_shape":
                    p = p[:, :-1]
                shape = list(p.shape)
                data = p.reshape(-1).tolist()
                if server.mode == "huge":
                    data = data * 20000
                    shape = [len(data)]
                out = {"model_name": server.model, "outputs": [
                    {"name": "probs", "shape": shape, "datatype": "FP32", "data": data}]}
                self._send(200, json.dumps(out).encode())

        return Handler
