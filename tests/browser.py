"""Headless Chromium for the tests that check what a browser makes of our HTML.

The flags keep Chromium off the network (this machine's is closed; a background
connection attempt would only slow the test) and out of the user's profile."""

from __future__ import annotations

import subprocess
from pathlib import Path

CHROMIUM = Path("/usr/bin/chromium")
MISSING = "/usr/bin/chromium not installed (make test installs it)"


def dump_dom(page: Path, profile: Path) -> str:
    """The DOM Chromium builds from ``page`` (a file), as serialised HTML."""
    cmd = [
        str(CHROMIUM),
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        f"--user-data-dir={profile}",
        "--dump-dom",
        page.as_uri(),
    ]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=60, check=True).stdout
