"""The interactive API docs render in a real browser, with assets served locally (no CDN).

Runs Debian's Chromium through Playwright. Skipped when Chromium is not installed, except
under CI=true, where .ci/run installs it and a missing browser fails the run.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests import servers
from tests.conftest import fresh_database_url

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
pytestmark = pytest.mark.skipif(
    CHROMIUM is None and os.environ.get("CI") != "true",
    reason="Debian's chromium is not installed (apt-get install chromium)",
)


@pytest.fixture
def live_url(database: str, tmp_path: Path) -> Iterator[str]:
    """The app as production serves it (gunicorn), started and stopped by tests.servers."""
    env = {**os.environ, "NONGDAI_DATABASE_URL": fresh_database_url(database, tmp_path),
           "NONGDAI_INSTANCE_PATH": str(tmp_path), "NONGDAI_SEED_DEMO": "0"}
    with servers.gunicorn("app:create_app()", env=env, workers=1) as server:
        yield server.base


def test_swagger_ui_renders_every_operation_group(live_url: str) -> None:
    from playwright.sync_api import sync_playwright  # noqa: PLC0415

    assert CHROMIUM, "chromium is required under CI"
    with sync_playwright() as pw:
        browser = pw.chromium.launch(
            executable_path=CHROMIUM,
            args=["--no-sandbox", "--disable-gpu", "--disable-background-networking",
                  "--disable-component-update", "--disable-sync", "--no-first-run"],
        )
        try:
            page = browser.new_page()
            failed: list[str] = []
            page.on("requestfailed", lambda request: failed.append(request.url))
            page.goto(f"{live_url}/api/docs")
            page.wait_for_selector(".opblock", timeout=15_000)
            paths = page.locator(".opblock-summary-path").all_inner_texts()
            assert any(path.startswith("/api/v1/auth/") for path in paths), paths
            assert any(path.startswith("/api/v1/farmers") for path in paths), paths
            assert page.locator(".info .title").inner_text().startswith("Nongdai")
            assert failed == []
        finally:
            browser.close()
