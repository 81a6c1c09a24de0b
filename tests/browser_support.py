"""Headless Debian Chromium for the browser tests (Playwright drives /usr/bin/chromium, never a
browser of its own). The live-server fixtures that go with it are in tests/conftest.py."""

import os
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

CHROMIUM = "/usr/bin/chromium"
# Without the background-networking flags Chromium keeps trying to reach Google's hosts, which this
# machine's closed network refuses.
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]

requires_chromium = pytest.mark.skipif(
    not shutil.which(CHROMIUM), reason="Debian's chromium is not installed (make browser)"
)


@contextmanager
def sync_orm_allowed() -> Iterator[None]:
    """Playwright's sync API runs an event loop in the test's thread; the test's own ORM calls are
    sync, so Django's async-safety check is lifted while a browser runs (browser tests only)."""
    previous = os.environ.get("DJANGO_ALLOW_ASYNC_UNSAFE")
    os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = "true"
    try:
        yield
    finally:
        if previous is None:
            os.environ.pop("DJANGO_ALLOW_ASYNC_UNSAFE", None)
        else:
            os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = previous


@contextmanager
def chromium() -> Iterator[Any]:
    """Playwright and one headless Chromium for as long as the block lasts. Starting them costs about a
    second, so tests/browser/ shares one per package (its conftest) and gives each test a fresh
    context (cookies, storage and cache of its own)."""
    from django.db import connections
    from playwright.sync_api import sync_playwright

    with sync_orm_allowed(), sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            yield browser
        finally:
            browser.close()
            # While Playwright's loop runs, the ORM's context-local connection handler gives this
            # thread a connection of its own: close it here, or it idles until the end of the session
            # and the live server's teardown waits for it (tests/conftest.py, browser_server).
            connections.close_all()


# The two sizes every journey runs at: a phone held upright and an ordinary laptop screen.
VIEWPORTS = {"phone": {"width": 390, "height": 844}, "desktop": {"width": 1366, "height": 900}}
SCREENSHOTS = Path(__file__).resolve().parents[1] / "var" / "screenshots"


def axe_serious(page: Any, allowed: frozenset[str] = frozenset()) -> list[str]:
    """axe-core's serious and critical violations on the page as shown now, one line each, but for
    the rule ids in ``allowed`` (each use says why)."""
    from axe_playwright_python.sync_playwright import Axe

    results = Axe().run(page)
    problems = []
    for violation in results.response.get("violations", []):
        if violation.get("impact") in ("serious", "critical") and violation["id"] not in allowed:
            targets = [n.get("target") for n in violation.get("nodes", [])][:3]
            problems.append(f"{page.url}: {violation['id']} ({violation['impact']}) {targets}")
    return problems


class Visit:
    """One browser tab of a test: each ``check`` runs axe on the page and writes a full-page
    screenshot to var/screenshots/<test>/<lang>-<size>-<nn>-<step>.png for review."""

    def __init__(self, page: Any, test: str, language: str, size: str) -> None:
        self.page, self.language, self.size = page, language, size
        self.folder = SCREENSHOTS / test
        self.folder.mkdir(parents=True, exist_ok=True)
        self.problems: list[str] = []
        self.count = 0

    def check(self, step: str, allowed: frozenset[str] = frozenset()) -> None:
        self.page.wait_for_load_state()
        assert self.page.locator("html").get_attribute("lang") == self.language, self.page.url
        self.count += 1
        name = f"{self.language}-{self.size}-{self.count:02d}-{step}.png"
        self.page.screenshot(path=str(self.folder / name), full_page=True)
        self.problems += axe_serious(self.page, allowed)


@contextmanager
def browser_tab(
    browser: Any, base_url: str, test: str, language: str, size: str, *, session: str | None = None
) -> Iterator[Visit]:
    """A fresh context of ``browser`` at ``size`` in ``language`` (its cookie set, as the language
    switch does), signed in with ``session`` (a session cookie's value) when given."""
    from django.conf import settings

    context = browser.new_context(locale=f"{language}-CA", viewport=VIEWPORTS[size])
    try:
        cookies = [{"name": settings.LANGUAGE_COOKIE_NAME, "value": language, "url": base_url}]
        if session:
            cookies.append({"name": settings.SESSION_COOKIE_NAME, "value": session, "url": base_url})
        context.add_cookies(cookies)
        page = context.new_page()
        page.set_default_timeout(15000)
        yield Visit(page, test, language, size)
    finally:
        context.close()


_SHOTS: dict[str, int] = {}


def shot_and_axe(page: Any, test: str) -> list[str]:
    """For the tests that drive a page themselves: a full-page screenshot of it under
    var/screenshots/<test>/ (numbered in order, named by the page's path), then axe_serious."""
    from urllib.parse import urlsplit

    page.wait_for_load_state()
    folder = SCREENSHOTS / test
    folder.mkdir(parents=True, exist_ok=True)
    _SHOTS[test] = _SHOTS.get(test, 0) + 1
    language = page.locator("html").get_attribute("lang")
    slug = urlsplit(page.url).path.strip("/").replace("/", "_") or "home"
    page.screenshot(path=str(folder / f"{language}-{_SHOTS[test]:02d}-{slug}.png"), full_page=True)
    return axe_serious(page)
