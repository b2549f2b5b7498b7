"""Headless Chromium for the tests that check what a browser makes of our HTML.

Debian's Chromium (``/usr/bin/chromium``, or PLAYWRIGHT_CHROMIUM_EXECUTABLE_PATH), never
a browser download. ``dump_dom`` runs it alone (``--dump-dom``); ``open_chromium`` and
``visit`` drive it with playwright and record what a page did: console errors, uncaught
exceptions, dialogs (an ``alert`` from injected markup) and requests for anything but
the page's own files.

The flags keep Chromium off the network (this machine's is closed; a background
connection attempt would only slow the test) and out of the user's profile.

A missing browser skips the test, except under ``CI=true``, where it fails: CI must not
silently test less (the rule of the other real peers, tests/adb_phone.py)."""

from __future__ import annotations

import io
import os
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

CHROMIUM = Path(os.environ.get("PLAYWRIGHT_CHROMIUM_EXECUTABLE_PATH") or "/usr/bin/chromium")
MISSING = f"{CHROMIUM} not installed (make test installs Debian's chromium)"
_FLAGS = [
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


def require_chromium() -> None:
    """Skip the calling test when Chromium or playwright is missing; fail under CI=true."""
    problem = None
    if not CHROMIUM.exists():
        problem = MISSING
    else:
        try:
            import playwright.sync_api  # noqa: F401
        except ImportError:
            problem = "playwright is not installed (pip install -r requirements.lock)"
    if problem is None:
        return
    if os.environ.get("CI") == "true":
        pytest.fail(f"CI=true: {problem}")
    pytest.skip(problem)


def dump_dom(page: Path, profile: Path) -> str:
    """The DOM Chromium builds from ``page`` (a file), as serialised HTML."""
    cmd = [
        str(CHROMIUM),
        "--headless",
        "--no-sandbox",
        *_FLAGS,
        f"--user-data-dir={profile}",
        "--dump-dom",
        page.as_uri(),
    ]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=60, check=True).stdout


@contextmanager
def open_chromium() -> Iterator[Any]:
    """A playwright Browser on Debian's Chromium (call require_chromium first)."""
    from playwright.sync_api import sync_playwright

    # Chromium refuses to start its sandbox as root (containers, CI runners).
    args = [*_FLAGS, *(["--no-sandbox"] if os.geteuid() == 0 else [])]
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=str(CHROMIUM), args=args, headless=True)
        try:
            yield browser
        finally:
            browser.close()


@dataclass
class Visit:
    """A page opened in Chromium and what it did while it was open."""

    page: Any  # playwright.sync_api.Page
    console_errors: list[str] = field(default_factory=list)
    dialogs: list[str] = field(default_factory=list)
    foreign_requests: list[str] = field(default_factory=list)

    def assert_clean(self) -> None:
        """No console error or uncaught exception, no dialog, nothing fetched from elsewhere."""
        assert not self.dialogs, f"the page opened a dialog (markup ran): {self.dialogs}"
        assert not self.console_errors, f"console errors: {self.console_errors}"
        assert not self.foreign_requests, f"requests beyond the site: {self.foreign_requests}"

    def visible_text(self) -> str:
        return self.page.inner_text("body")

    def count(self, selector: str) -> int:
        return self.page.locator(selector).count()

    def screenshot_colours(self) -> int:
        """Distinct colours in a full-page screenshot: a blank or unstyled page has a few."""
        from PIL import Image

        image = Image.open(io.BytesIO(self.page.screenshot(full_page=True))).convert("RGB")
        colours = image.getcolors(maxcolors=image.width * image.height)
        assert colours is not None
        return len(colours)


@contextmanager
def visit(browser: Any, path: Path) -> Iterator[Visit]:
    """Open ``path`` (a file) in a fresh context and record errors, dialogs and requests."""
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    page = context.new_page()
    seen = Visit(page)

    def on_console(message: Any) -> None:
        if message.type == "error":
            seen.console_errors.append(message.text)

    def on_dialog(dialog: Any) -> None:
        # Recorded (assert_clean fails the test) and dismissed, so the page goes on.
        seen.dialogs.append(f"{dialog.type}: {dialog.message}")
        dialog.dismiss()

    def on_request(request: Any) -> None:
        if not request.url.startswith(("file:", "data:", "about:")):
            seen.foreign_requests.append(request.url)

    page.on("console", on_console)
    page.on("pageerror", lambda error: seen.console_errors.append(f"uncaught: {error}"))
    page.on("dialog", on_dialog)
    page.on("request", on_request)
    try:
        page.goto(path.resolve().as_uri(), wait_until="load")
        yield seen
    finally:
        context.close()
