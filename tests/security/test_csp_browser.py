"""The Content Security Policy holds in a real browser: headless Debian Chromium opens every kind of
page (citizen, account, two-factor, clinic staff, the Swagger UI) and reports no CSP violation and
no script error. A violation would mean a page relies on inline code the policy forbids, so it
would be broken for real visitors."""

import pytest
from django.test import Client

from booking.models import Reason, Slot
from tests.browser_support import chromium, requires_chromium
from tests.clinics.conftest import sign_in
from tests.factories import CitizenFactory, FsaFactory, SlotFactory

pytestmark = [pytest.mark.browser, requires_chromium, pytest.mark.usefixtures("sync_db_under_playwright")]

# Listens from the first byte of every document: the browser's own report of each violation.
VIOLATION_LISTENER = """
window.__csp = [];
document.addEventListener("securitypolicyviolation", (e) => {
  window.__csp.push(e.violatedDirective + " blocked " + (e.blockedURI || "inline") + " at " + e.sourceFile);
});
"""


class Browser:
    """One Chromium context (one person's browser) that records every CSP violation and error."""

    def __init__(self, context, base_url: str):
        self.context = context
        self.base_url = base_url
        self.page = context.new_page()
        self.page.set_default_timeout(15000)
        self.problems: list[str] = []
        self.page.on("console", self._console)
        self.page.on("pageerror", lambda error: self.problems.append(f"{self.page.url}: error {error}"))

    def _console(self, message) -> None:
        text = message.text
        if text.startswith("Failed to load resource") and message.location.get("url") == self.page.url:
            return  # the page's own status (the 404 page is visited on purpose)
        if message.type == "error" or "Content Security Policy" in text:
            self.problems.append(f"{self.page.url}: console {message.type}: {text}")

    def use_session_of(self, client: Client) -> None:
        """Carry a Django test client's cookies (its session) into this browser."""
        self.context.add_cookies(
            [
                {"name": name, "value": morsel.value, "url": self.base_url}
                for name, morsel in client.cookies.items()
            ]
        )

    def visit(self, path: str, *, wait_for: str | None = None) -> None:
        self.page.goto(self.base_url + path)
        self.page.wait_for_load_state("load")
        if wait_for:
            self.page.wait_for_selector(wait_for)
        self.problems += [f"{self.page.url}: {v}" for v in self.page.evaluate("window.__csp || []")]


@pytest.fixture(scope="module")
def chrome(browser_server):
    """One Chromium for the module's tests (each gets contexts of its own below)."""
    with chromium() as chrome:
        yield chrome


@pytest.fixture
def browser(chrome, browser_server):
    contexts = []

    def make() -> Browser:
        context = chrome.new_context(locale="fr-CA")
        context.add_init_script(VIOLATION_LISTENER)
        contexts.append(context)
        return Browser(context, browser_server.url)

    try:
        yield make
    finally:
        for context in contexts:
            context.close()


def test_public_pages_and_the_api_documentation_run_without_a_csp_violation(browser, transactional_db):
    visitor = browser()
    for path in (
        "/",
        "/identification/",
        "/rendez-vous/retrouver/",
        "/comptes/login/",
        "/comptes/signup/",
        "/comptes/password/reset/",
        "/une-page-qui-n-existe-pas/",
    ):
        visitor.visit(path)
    # Swagger UI builds the whole page from its scripts: the operations appear only if they ran.
    visitor.visit("/api/docs/", wait_for=".opblock")
    assert visitor.problems == []


def test_the_citizen_journey_pages_run_without_a_csp_violation(browser, transactional_db):
    FsaFactory()
    citizen = CitizenFactory()
    slot = SlotFactory()
    client = Client()
    response = client.post(
        "/identification/",
        {
            "first_name": citizen.first_name,
            "last_name": citizen.last_name,
            "nam": citizen.nam,
            "card_sequence": citizen.card_sequence,
            "birth_date": citizen.birth_date.isoformat(),
        },
    )
    assert response.status_code == 302
    assert client.post(f"/plages/{slot.pk}/retenir/").status_code == 302
    assert Slot.objects.get(pk=slot.pk).holder_id == citizen.pk

    person = browser()
    person.use_session_of(client)
    person.visit(f"/recherche/?path=near&reason={Reason.FOLLOW_UP}&postal_code=H2X&radius_km=25&sort=soonest")
    # The confirmation page runs booking/hold.js: its countdown shows only if the script ran.
    person.visit(f"/plages/{slot.pk}/confirmer/", wait_for=".countdown:not(:empty)")
    person.visit("/rendez-vous/")
    assert person.problems == []


def test_clinic_and_two_factor_pages_run_without_a_csp_violation(browser, world, transactional_db):
    client = sign_in(Client(), world.admin_a)
    staff = browser()
    staff.use_session_of(client)
    clinic_id = world.clinic_a.pk
    membership = world.membership(world.receptionist_a)
    staff.visit("/clinique/")
    staff.visit(f"/clinique/{clinic_id}/agenda/")
    # The day sheet runs clinics/print.js: its Print button is shown only by the script.
    staff.visit(
        f"/clinique/{clinic_id}/agenda/feuille/?practitioner={world.role_a.practitioner.pk}",
        wait_for="[data-print]:not([hidden])",
    )
    staff.visit(f"/clinique/{clinic_id}/personnel/")
    staff.visit(f"/clinique/{clinic_id}/personnel/{membership.pk}/desactiver/")
    # allauth's two-factor pages, WebAuthn's included (allauth's own static scripts).
    staff.visit("/comptes/2fa/")
    staff.visit("/comptes/2fa/recovery-codes/")
    staff.visit("/comptes/2fa/webauthn/add/")
    staff.visit("/comptes/email/")
    assert staff.problems == []


def test_a_violation_would_be_caught(browser, transactional_db, settings):
    # The detector itself: with stylesheets forbidden on the documentation page, the browser reports.
    settings.SECURE_CSP_PATH_OVERRIDES = {"/api/docs/": {"style-src": ["'none'"]}}
    visitor = browser()
    visitor.visit("/api/docs/")
    assert any("style-src" in problem for problem in visitor.problems), visitor.problems
