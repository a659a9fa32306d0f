"""The pages in Chromium against the real server (``create_app``, a worker process, a temp store): a digits
assessment created through the form, its progress to done, its results page, two runs compared, evidence
verified."""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from tests.live_server import Server

pytestmark = pytest.mark.browser


@pytest.fixture(scope="module")
def real(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Server, str]]:
    from aisec.web.app import create_app
    from aisec.web.settings import ServeSettings

    d = tmp_path_factory.mktemp("serve")
    token = secrets.token_urlsafe(16)
    settings = ServeSettings(token=token, store_url=f"sqlite:///{d / 'ev.db'}", work_dir=d / "work")
    with Server(create_app(settings)) as s:
        yield s, token


def _assess(page: Any, server: Server, token: str) -> str:
    page.goto(f"{server.url}/?token={token}")
    page.get_by_label("image", exact=True).check()
    page.get_by_label("Dataset", exact=True).select_option("digits")
    page.locator("#c-robustness").check()
    page.locator("#p-robustness-attacks").fill("fgsm")
    page.locator("#p-robustness-eps").fill("0.05")
    page.locator("#p-robustness-samples").fill("32")
    page.locator("#plan-yaml").filter(has_text="samples: 32").wait_for()
    assert "aisec assess --plan plan.yaml" in page.locator("#command").inner_text()
    assert "- fgsm" in page.locator("#plan-yaml").inner_text()
    page.locator("#run").click()
    page.wait_for_url("**/runs/*")
    page.locator("#status").filter(has_text="complete").wait_for(timeout=240_000)
    return str(page.url.rsplit("/", 1)[-1])


def test_assessment_compare_and_evidence(page: Any, real: tuple[Server, str], artefacts: Path) -> None:
    server, token = real
    first = _assess(page, server, token)
    page.locator("#results").wait_for()
    page.locator("#evidence tbody tr").first.wait_for()  # the run's evidence records, from the store
    assert page.locator("#progress li").count() > 0
    assert "robustness." in page.locator("#evidence tbody").inner_text()
    page.locator("#chart .main-svg").first.wait_for()  # the plotly chart rendered
    report = page.frame_locator("#report")  # the static report, framed (sandboxed, same origin, its own CSP)
    report.locator("table").first.wait_for()
    assert "robust" in report.locator("body").inner_text().lower()
    page.screenshot(path=str(artefacts / "e2e-run.png"), full_page=True)
    second = _assess(page, server, token)
    page.goto(f"{server.url}/compare?runs={first}&runs={second}")
    page.get_by_text("robustness.clean_accuracy").first.wait_for()  # the side-by-side metric rows
    page.screenshot(path=str(artefacts / "e2e-compare.png"), full_page=True)
    page.goto(f"{server.url}/evidence")
    page.locator("#evidence-table tbody tr").first.wait_for()  # the store's records listed
    assert first in page.locator("#evidence-table tbody").inner_text()
    page.get_by_role("button", name="Verify").click()
    page.get_by_text("Evidence verified: ok").wait_for(timeout=60_000)
    assert page.locator("#verify-report").inner_text().strip()
    page.screenshot(path=str(artefacts / "e2e-evidence.png"), full_page=True)
