"""`aiqm demo` then its quality page in a real headless Chromium (Debian's, driven by Playwright).

The demo is set up as `aiqm demo --no-serve --port P` does it; its store is then served by the
daemon's app on P (uvicorn in a thread), and the browser opens the address the demo printed
first, signs in with the printed review token, sees every feature, opens a feature's page whose
charts are drawn (non-zero size, a screenshot with many colours), and goes on to the review page,
which has this week's items to review. No CSP violation or script error on the way.

Under CI=true a missing Chromium or Playwright fails the test; elsewhere it is skipped.
"""

from __future__ import annotations

import contextlib
import io
import re
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import uvicorn
from missing_part import missing
from test_review_browser import CHROMIUM, CHROMIUM_ARGS

from monitor.api.app import create_app
from monitor.config import load_settings
from monitor.daemon.app import build_services
from monitor.demo.run import run_demo
from monitor.store.engine import make_engine

SCREENSHOTS = Path("/tmp")
MIN_COLOURS = 50  # a drawn chart has lines, bands, text and anti-aliasing; a blank one has one colour

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def playwright() -> Any:
    if not CHROMIUM.exists():
        missing(f"no Chromium at {CHROMIUM}; install Debian's chromium package")
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        missing("Playwright for Python is not installed (pip install -e '.[test]')")
    return sync_playwright


@pytest.fixture(scope="module")
def demo_served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The demo's printed output, with its store served on the port it printed."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    folder = tmp_path_factory.mktemp("demo") / "data"
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        assert run_demo(weeks=6, data_dir=folder, serve=False, port=port) == 0
    settings = load_settings(folder / "aiqm.yaml")
    services = build_services(settings, engine=make_engine(settings.resolved_database_url), scheduler=False)
    server = uvicorn.Server(
        uvicorn.Config(create_app(services), log_level="warning", access_log=False, ws="none")
    )
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        assert thread.is_alive() and time.monotonic() < deadline, "uvicorn did not start"
        time.sleep(0.02)
    try:
        yield out.getvalue()
    finally:
        server.should_exit = True
        thread.join(10)
        sock.close()


def colours(path: Path) -> int:
    import matplotlib.image

    pixels = np.asarray(matplotlib.image.imread(str(path)))
    return len(np.unique(pixels.reshape(-1, pixels.shape[-1]), axis=0))


def test_the_printed_quality_address_shows_charts_and_the_review_page_has_items(
    playwright: Any, demo_served: str
) -> None:
    text = demo_served
    first = text.splitlines()[0]
    address = re.match(r"quality page +(http://127\.0\.0\.1:\d+/quality)\b", first)
    token = re.search(r"review token +(\S+)", text)
    assert address is not None, first
    assert token is not None, text
    with playwright() as pw:
        browser = pw.chromium.launch(
            executable_path=str(CHROMIUM), args=CHROMIUM_ARGS, headless=True, timeout=20_000
        )
        try:
            page = browser.new_page(viewport={"width": 1400, "height": 1000})
            page.set_default_timeout(15_000)
            errors: list[str] = []
            page.on("pageerror", lambda error: errors.append(str(error)))
            page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)

            page.goto(address[1])
            assert "/quality/login" in page.url
            page.fill("#token", token[1])
            with page.expect_navigation():
                page.click("button[type=submit]")
            assert page.url == address[1]
            features = page.locator("#features tbody tr")
            assert features.count() == 3
            summarizer = page.locator('tr[data-feature="summarizer"]')
            assert summarizer.locator(".mode").inner_text() in {"normal", "review"}
            assert "%" in summarizer.inner_text() and "grader" in summarizer.inner_text()  # the LLM judge
            page.screenshot(path=str(SCREENSHOTS / "aiqm-quality-overview.png"), full_page=True)

            with page.expect_navigation():
                summarizer.locator("a").first.click()
            charts = page.locator("img.chart")
            assert charts.count() == 4
            for i in range(4):
                chart = charts.nth(i)
                chart.scroll_into_view_if_needed()
                assert page.evaluate("(img) => img.complete && img.naturalWidth > 0", chart.element_handle())
                box = chart.bounding_box()
                assert box is not None and box["width"] > 200 and box["height"] > 100
                shot = SCREENSHOTS / f"aiqm-quality-chart-{i}.png"
                chart.screenshot(path=str(shot))
                assert colours(shot) > MIN_COLOURS, f"chart {i} looks blank"
            assert page.locator("#timeline").is_visible()
            page.screenshot(path=str(SCREENSHOTS / "aiqm-quality-feature.png"), full_page=True)

            with page.expect_navigation():
                page.click("#review-link")
            assert "/review/summarizer" in page.url
            progress = page.locator("#progress").inner_text()
            reviewed, drawn = (int(n) for n in re.findall(r"\d+", progress)[:2])
            assert 0 < reviewed < drawn  # this week's sample is partly reviewed: items wait
            assert page.locator("#current").count() == 1
            assert errors == []
        finally:
            browser.close()
