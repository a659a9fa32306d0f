"""The pages in Chromium against the API contract's stand-in (_stub_api): form from the catalogue, live
command preview, plan download, refused upload, and a page without the token refused."""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from tests.browser._stub_api import create_stub_app
from tests.live_server import Server

pytestmark = pytest.mark.browser


@pytest.fixture(scope="module")
def stub() -> Iterator[tuple[Server, str]]:
    token = secrets.token_urlsafe(16)
    with Server(create_stub_app(token)) as s:
        yield s, token


def test_page_without_token_refused(page: Any, stub: tuple[Server, str]) -> None:
    server, _ = stub
    resp = page.goto(server.url + "/runs")
    assert resp.status == 401
    assert page.goto(server.url + "/static/app.js").status == 401


def test_new_assessment_form_and_preview(page: Any, stub: tuple[Server, str], artefacts: Path) -> None:
    server, token = stub
    page.goto(f"{server.url}/?token={token}")
    assert "token" not in page.url  # the login redirect drops it from the address bar
    page.get_by_label("image", exact=True).check()
    page.get_by_label("Dataset", exact=True).select_option("digits")
    page.locator("#c-robustness").check()
    page.locator("#p-robustness-eps").fill("0.05")
    page.locator("#p-robustness-n_samples").fill("32")
    cmd = page.locator("#command")
    cmd.filter(has_text="--set robustness.n_samples=32").wait_for()
    text = cmd.inner_text()
    assert "--model digits-cnn --data digits --checks robustness" in text
    assert "robustness.eps=0.05" in text and "attacks" not in text  # a parameter left at its default is not sent
    assert "n_samples: 32" in page.locator("#plan-yaml").inner_text()
    assert page.locator("#download-plan").get_attribute("href").startswith("data:application/x-yaml")
    # switching task type regenerates the dataset/model lists from the catalogue
    page.get_by_label("tabular", exact=True).check()
    assert page.locator("#dataset").input_value() == "adult"
    page.screenshot(path=str(artefacts / "stub-new-assessment.png"), full_page=True)


def test_bad_upload_refused(page: Any, stub: tuple[Server, str], artefacts: Path, tmp_path: Path) -> None:
    server, token = stub
    page.goto(f"{server.url}/?token={token}")
    bad = tmp_path / "model.exe"
    bad.write_bytes(b"MZ")
    page.locator("#model-upload").set_input_files(str(bad))
    msg = page.locator("#message")
    msg.filter(has_text="Upload refused").wait_for()
    assert "not an allowed file type" in msg.inner_text()
    big = tmp_path / "model.onnx"
    big.write_bytes(b"0" * 5000)
    page.locator("#model-upload").set_input_files(str(big))
    msg.filter(has_text="upload limit").wait_for()
    page.screenshot(path=str(artefacts / "stub-bad-upload.png"), full_page=True)
