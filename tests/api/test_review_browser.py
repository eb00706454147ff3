"""The review page end to end in a real headless Chromium (Debian's, driven by Playwright).

The daemon's app is served by uvicorn on a free loopback port in a background thread; the
browser signs in with a review token, labels two items with the keyboard shortcuts and one
with a click and a reason, and the labels are then read back from the store.

Under CI=true a missing Chromium or Playwright fails the test; elsewhere it is skipped.
"""

from __future__ import annotations

import os
import socket
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import uvicorn
from missing_part import missing
from review_data import (
    CYCLE_AT,
    FEATURE,
    Clock,
    answered,
    app_for,
    human_labels,
    mint_tokens,
    queue_ids,
    seed,
    services_for,
)
from sqlalchemy import Engine

CHROMIUM = Path(os.environ.get("AIQM_TEST_CHROMIUM", "/usr/bin/chromium"))
SCREENSHOT = Path("/tmp/aiqm-review-page.png")
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def sync_playwright() -> Any:
    if not CHROMIUM.exists():
        missing(f"no Chromium at {CHROMIUM}; install Debian's chromium package")
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        missing("Playwright for Python is not installed (pip install -e '.[test]')")
    return sync_playwright


class Served:
    """The app on uvicorn in a thread, on a loopback port the OS chose."""

    def __init__(self, app: Any) -> None:
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind(("127.0.0.1", 0))
        self.url = f"http://127.0.0.1:{self.sock.getsockname()[1]}"
        config = uvicorn.Config(app, log_level="warning", access_log=False, ws="none", lifespan="on")
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, kwargs={"sockets": [self.sock]}, daemon=True)

    def __enter__(self) -> Served:
        self.thread.start()
        deadline = time.monotonic() + 10
        while not self.server.started:
            if not self.thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError("uvicorn did not start")
            time.sleep(0.02)
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.should_exit = True
        self.thread.join(10)
        self.sock.close()


@pytest.fixture
def served(engine: Engine) -> Iterator[tuple[Served, str]]:
    clock = Clock(CYCLE_AT + timedelta(hours=1))
    settings = seed(engine, clock)
    answered(engine, clock(), labelled=40, worth=61.4, saved={"rubric": 18.6})
    services = services_for(engine, settings, lambda: datetime.now(UTC))
    token = mint_tokens(engine, datetime.now(UTC)).review
    with Served(app_for(services)) as server:
        yield server, token


def test_a_reviewer_labels_items_in_headless_chromium(
    sync_playwright: Any, served: tuple[Served, str], engine: Engine
) -> None:
    server, token = served
    order = queue_ids(engine)
    started = time.monotonic()
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=str(CHROMIUM), args=CHROMIUM_ARGS, headless=True, timeout=20_000
        )
        try:
            page = browser.new_page(viewport={"width": 1280, "height": 1000})
            page.set_default_timeout(10_000)
            errors: list[str] = []
            page.on("pageerror", lambda error: errors.append(str(error)))
            # Script errors and refusals (a Content-Security-Policy violation); a response's
            # status (the 422 below) is logged as an error too, and is no error of the page.
            page.on(
                "console",
                lambda m: (
                    errors.append(m.text)
                    if m.type == "error" and not m.text.startswith("Failed to load resource")
                    else None
                ),
            )

            # Signed out: the queue sends the browser to the sign-in form, and back after it.
            page.goto(f"{server.url}/review/{FEATURE}")
            assert "/review/login" in page.url
            page.fill("#token", token)
            with page.expect_navigation():
                page.click("button[type=submit]")
            assert page.url.startswith(f"{server.url}/review/{FEATURE}")
            assert page.get_attribute("#current", "data-output-id") == order[0]
            assert page.locator("#progress").inner_text().startswith("0 of 6 reviewed")
            assert page.locator("#labels").inner_text() == (
                "The last answer (cycle of Mon 2 Mar 2026, 06:00 UTC) used 40 human labels, worth 61 "
                "with the judges (judge rubric saved 19). 6 of this week's sample still wait for a reviewer."
            )

            # The markup in the first output is shown as text, never run.
            assert page.locator("pre[data-field=input]").inner_text() == "<script>alert(1)</script>"

            # j and k walk the queue; ? shows the help.
            with page.expect_navigation():
                page.keyboard.press("j")
            assert page.get_attribute("#current", "data-output-id") == order[1]
            with page.expect_navigation():
                page.keyboard.press("k")
            assert page.get_attribute("#current", "data-output-id") == order[0]
            page.keyboard.press("?")
            assert page.locator("#help").is_visible()
            page.keyboard.press("Escape")
            assert not page.locator("#help").is_visible()

            # 1. p passes the current item at once.
            with page.expect_navigation():
                page.keyboard.press("p")
            assert page.get_attribute("#current", "data-output-id") == order[1]

            # 2. f arms "fail" and focuses the reason; Enter submits it.
            page.keyboard.press("f")
            assert page.evaluate("document.activeElement.name") == "reason"
            page.keyboard.type("Promises a delivery date it cannot know.")
            with page.expect_navigation():
                page.keyboard.press("Enter")
            assert page.get_attribute("#current", "data-output-id") == order[2]

            # 3. A click without a reason is refused by the server; with one it is stored.
            with page.expect_navigation():
                page.click("button[value=unsure]")
            assert "A reason is required" in page.locator("p.error").inner_text()
            page.fill("textarea[name=reason]", "Depends on the carrier; cannot tell from here.")
            with page.expect_navigation():
                page.click("button[value=unsure]")
            assert page.get_attribute("#current", "data-output-id") == order[3]
            assert page.locator("#progress").inner_text().startswith("3 of 6 reviewed")

            page.screenshot(path=str(SCREENSHOT), full_page=True)
            assert errors == []
        finally:
            browser.close()

    labels = human_labels(engine)
    assert {k: (v["verdict"], v["reason"], v["source"]) for k, v in labels.items()} == {
        order[0]: ("pass", None, "human:rita_reviewer"),
        order[1]: ("fail", "Promises a delivery date it cannot know.", "human:rita_reviewer"),
        order[2]: ("unsure", "Depends on the carrier; cannot tell from here.", "human:rita_reviewer"),
    }
    for label in labels.values():
        assert label["review_seconds"] is not None and 0 <= label["review_seconds"] < 60
    assert time.monotonic() - started < 30
