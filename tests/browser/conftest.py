"""The browser tests share one headless Chromium (tests/browser_support.py): launching it and
Playwright's driver costs about a second, a fresh context per test only a fraction of that."""

import pytest

from tests.browser_support import VIEWPORTS, chromium


@pytest.fixture(scope="package")
def browser(browser_server):
    """One Chromium for every test of this package. It asks for the live server so that it closes
    first: the server's teardown waits for the browser's keep-alive connections to go."""
    with chromium() as chrome:
        yield chrome


@pytest.fixture
def browser_page(browser):
    """A fresh context (no cookie yet, so French) at phone size, and its one tab."""
    context = browser.new_context(locale="fr-CA", viewport=VIEWPORTS["phone"])
    try:
        page = context.new_page()
        page.set_default_timeout(15000)
        yield page
    finally:
        context.close()
