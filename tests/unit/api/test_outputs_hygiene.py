"""Issue 18, item 11: what a newcomer sees in the files aisec writes and in the test server's log.

- ``LICENSE`` is the full Apache-2.0 text that ``pyproject.toml`` declares;
- text cells of ``samples/*.csv`` cannot run as spreadsheet formulas (OWASP "CSV Injection": a
  leading ``'`` before ``= + - @``, tab, CR), while numbers, negative ones included, stay numbers;
- the loopback v2 test server ends a connection its client dropped without a traceback on stderr,
  and still reports any other handler error.
"""

from __future__ import annotations

import csv
import socket
import struct
import time
import tomllib
from pathlib import Path

import numpy as np
import torch

from aisec.api import _write_table
from aisec.testing.v2_server import V2Server

ROOT = Path(__file__).resolve().parents[3]


def test_license_is_the_apache_text_pyproject_declares():
    meta = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    assert meta["license"] == "Apache-2.0" and meta["license-files"] == ["LICENSE"]  # SPDX (PEP 639)
    text = (ROOT / "LICENSE").read_text(encoding="utf-8")
    assert "Apache License" in text and "Version 2.0, January 2004" in text
    # the full standard text: all nine sections of the terms and the appendix
    for heading in ("1. Definitions.", "2. Grant of Copyright License.", "3. Grant of Patent License.",
                    "4. Redistribution.", "5. Submission of Contributions.", "6. Trademarks.",
                    "7. Disclaimer of Warranty.", "8. Limitation of Liability.",
                    "9. Accepting Warranty or Additional Liability.", "END OF TERMS AND CONDITIONS",
                    "APPENDIX: How to apply the Apache License to your work."):
        assert heading in text, heading
    assert len(text.split()) > 1500


def test_csv_text_cells_cannot_become_formulas(tmp_path):
    texts = np.array(["=HYPERLINK(\"http://x\")", "+1+cmd|' /C calc'!A0", "-2+3", "@SUM(A1:A2)", "\tx", "\ry",
                      "cat", "-1.5", "+2", "a=b"], dtype=object)
    nums = np.array([-1.5, 2.0, -0.25, 3.0, -7.0, 0.0, 1.0, -1e-9, 5.0, np.nan])
    path = tmp_path / "t.csv"
    assert _write_table({"label": texts, "margin": nums, "fooled": np.array([True, False] * 5)}, path) == 10
    with path.open(newline="", encoding="utf-8") as fh:
        rows = list(csv.DictReader(fh))
    labels = [r["label"] for r in rows]
    assert labels[:6] == ["'=HYPERLINK(\"http://x\")", "'+1+cmd|' /C calc'!A0", "'-2+3", "'@SUM(A1:A2)", "'\tx", "'\ry"]
    assert labels[6:] == ["cat", "-1.5", "+2", "a=b"]  # plain text and plain numbers are left alone
    assert [r["margin"] for r in rows] == ["-1.5", "2", "-0.25", "3", "-7", "0", "1", "-1e-09", "5", ""]
    assert [r["fooled"] for r in rows] == ["1", "0"] * 5


def _hang_up_during_reply(url: str) -> None:
    """Send a valid infer request and reset the connection before the (huge) reply is read."""
    host, port = url.removeprefix("http://").split(":")
    body = b'{"inputs": [{"name": "x", "shape": [1, 4], "datatype": "FP32", "data": [0, 0, 0, 0]}]}'
    s = socket.create_connection((host, int(port)))
    s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))  # close sends RST
    s.sendall(b"POST /v2/models/m/infer HTTP/1.1\r\nHost: x\r\ncontent-type: application/json\r\n"
              b"content-length: " + str(len(body)).encode() + b"\r\n\r\n" + body)
    s.close()


def test_v2_server_is_quiet_when_the_client_hangs_up(capfd):
    calls = []

    def predict(x: torch.Tensor) -> torch.Tensor:
        calls.append(1)
        time.sleep(0.2)  # the client is gone by the time the reply is written
        return torch.full((x.shape[0], 2), 0.5)

    with V2Server(predict, model="m", input_shape=(4,), mode="huge") as srv:
        for _ in range(3):
            _hang_up_during_reply(srv.url)
        deadline = time.monotonic() + 10
        while len(calls) < 3 and time.monotonic() < deadline:
            time.sleep(0.05)
        time.sleep(0.5)
    assert len(calls) == 3
    err = capfd.readouterr().err
    assert "BrokenPipeError" not in err and "ConnectionResetError" not in err and "Traceback" not in err, err


def test_v2_server_still_reports_other_errors(capfd):
    def predict(x: torch.Tensor) -> torch.Tensor:
        raise RuntimeError("model exploded")

    with V2Server(predict, model="m", input_shape=(4,)) as srv:
        _hang_up_during_reply(srv.url)
        time.sleep(0.5)
    assert "RuntimeError: model exploded" in capfd.readouterr().err
