"""Test helper: open a page in Debian's Chromium, headless, and report what went wrong.

`open_page(target)` is a context manager over a fresh browser profile (playwright drives the
system's /usr/bin/chromium through `executable_path`; nothing is downloaded). While the page is
open it records console messages of type error/warning, uncaught page errors, dialogs (alert,
confirm, prompt: each is recorded and dismissed) and every request whose URL is not `file:`,
`data:`, `blob:` or `about:`; such requests are also aborted, so a test never reaches the network.
`Session.report()` returns all of that with a screenshot; `screenshot_stats`/`is_blank` tell a
drawn page from an empty one.

Without Chromium (or playwright) the browser tests skip with the reason, unless
AUDIENCE_ENGINE_REQUIRE_CHROMIUM=1, which makes them fail: CI sets it after installing Chromium.
"""

from __future__ import annotations

import io
import os
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

REQUIRE_ENV = "AUDIENCE_ENGINE_REQUIRE_CHROMIUM"
# Known to work headless in a container without a display.
FLAGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-dev-shm-usage",
]
LOCAL_SCHEMES = ("file:", "data:", "blob:", "about:")


def find_chromium() -> str | None:
    """Debian's Chromium: /usr/bin/chromium, else `chromium` (or `chromium-browser`) on PATH."""
    if os.access("/usr/bin/chromium", os.X_OK):
        return "/usr/bin/chromium"
    for name in ("chromium", "chromium-browser"):
        found = shutil.which(name)
        if found:
            return found
    return None


def _unavailable(reason: str) -> None:
    if os.environ.get(REQUIRE_ENV) == "1":
        pytest.fail(f"{reason}, and {REQUIRE_ENV}=1 requires the browser tests to run", pytrace=False)
    pytest.skip(f"{reason} (set {REQUIRE_ENV}=1 to make this a failure)")


def require_chromium() -> str:
    """The Chromium executable; skips the test without it (fails under AUDIENCE_ENGINE_REQUIRE_CHROMIUM=1)."""
    path = find_chromium()
    if path is None:
        _unavailable("Chromium not found (/usr/bin/chromium or `chromium` on PATH; Debian: apt-get install chromium)")
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        _unavailable("the playwright package is not installed (pip install playwright; never `playwright install`)")
    try:
        import PIL  # noqa: F401
    except ImportError:
        _unavailable("the Pillow package is not installed (pip install pillow)")
    return path  # type: ignore[return-value]


@dataclass
class PageReport:
    """What a page did while it was open."""

    console: list[tuple[str, str]] = field(default_factory=list)  # (type, text) of errors and warnings
    page_errors: list[str] = field(default_factory=list)  # uncaught exceptions
    dialogs: list[tuple[str, str]] = field(default_factory=list)  # (type, message) of alert/confirm/prompt
    external_requests: list[str] = field(default_factory=list)  # URLs that are not file:/data:/blob:/about:
    screenshot: bytes = b""

    def problems(self) -> list[str]:
        """Every recorded problem, one line each (empty when the page behaved)."""
        return (
            [f"console {t}: {m}" for t, m in self.console]
            + [f"page error: {e}" for e in self.page_errors]
            + [f"dialog {t}: {m}" for t, m in self.dialogs]
            + [f"request: {u}" for u in self.external_requests]
        )


class Session:
    """An open page (`page` is playwright's Page) and what it has recorded so far."""

    def __init__(self, page: Any, record: PageReport) -> None:
        self.page = page
        self.record = record

    def report(self, *, full_page: bool = True, clip: dict[str, float] | None = None) -> PageReport:
        """The record so far, with a fresh PNG screenshot (full page, or `clip` in CSS pixels)."""
        if clip is not None:
            self.record.screenshot = self.page.screenshot(clip=clip, full_page=True)
        else:
            self.record.screenshot = self.page.screenshot(full_page=full_page)
        return self.record


def _is_local(url: str) -> bool:
    return url.startswith(LOCAL_SCHEMES)


@contextmanager
def open_page(
    target: str | Path, *, width: int = 1280, height: int = 900, timeout_ms: int = 30_000
) -> Iterator[Session]:
    """Open a file (path) or URL in headless Chromium with a fresh profile; yield the Session.

    Listeners are attached before navigation, so nothing the page does on load is missed.
    """
    executable = require_chromium()
    from playwright.sync_api import sync_playwright

    url = Path(target).resolve().as_uri() if isinstance(target, Path) or "://" not in str(target) else str(target)
    record = PageReport()
    with tempfile.TemporaryDirectory(prefix="chromium-profile-") as profile, sync_playwright() as p:
        context = p.chromium.launch_persistent_context(
            profile,
            executable_path=executable,
            headless=True,
            args=FLAGS,
            viewport={"width": width, "height": height},
            offline=True,
            service_workers="block",
            accept_downloads=False,
        )
        try:

            def on_route(route: Any) -> None:
                if not _is_local(route.request.url):
                    record.external_requests.append(route.request.url)
                    route.abort()
                else:
                    route.continue_()

            context.route("**/*", on_route)
            page = context.pages[0] if context.pages else context.new_page()
            page.set_default_timeout(timeout_ms)
            page.on(
                "console",
                lambda m: record.console.append((m.type, m.text)) if m.type in ("error", "warning") else None,
            )
            page.on("pageerror", lambda e: record.page_errors.append(str(e)))

            def on_dialog(d: Any) -> None:
                record.dialogs.append((d.type, d.message))
                d.dismiss()

            page.on("dialog", on_dialog)

            def on_request(r: Any) -> None:
                if not _is_local(r.url) and r.url not in record.external_requests:
                    record.external_requests.append(r.url)

            page.on("request", on_request)
            page.on("websocket", lambda ws: record.external_requests.append(ws.url))
            page.goto(url, wait_until="load")
            yield Session(page, record)
        finally:
            context.close()


def screenshot_stats(png: bytes) -> tuple[float, int]:
    """(share of pixels that differ from the background, number of distinct colours) of a PNG.

    The background is the most common colour; a pixel differs when any channel is off by more than 16.
    """
    from PIL import Image

    img = Image.open(io.BytesIO(png)).convert("RGB")
    small = img if img.width * img.height <= 4_000_000 else img.resize((img.width // 2, img.height // 2))
    colours = small.getcolors(maxcolors=1 << 24) or []
    if not colours:
        return 0.0, 0
    total = sum(n for n, _ in colours)
    _, bg = max(colours)
    differ = sum(n for n, c in colours if max(abs(a - b) for a, b in zip(c, bg, strict=True)) > 16)
    return differ / total, len(colours)


def is_blank(png: bytes, *, min_share: float = 0.02, min_colours: int = 16) -> bool:
    """True when a screenshot shows (next to) nothing: under 2% non-background pixels or under 16 colours."""
    share, colours = screenshot_stats(png)
    return share < min_share or colours < min_colours
