"""axe-core on every HTML page of the product, in a real browser (headless Debian Chromium).

The inventory is tests/security/test_permission_matrix.py: each GET row is opened by the first
persona that the matrix says gets 200 there (same objects, same sign-ins), so a new page added to
the matrix is checked here without more work. The waiting room's queue page, a redirect in the
matrix (the room is off there), is opened with the room switched on and full. Personas alternate
French at phone size and English at desktop size; screenshots go to var/screenshots/every_page/."""

import pytest
from django.conf import settings as django_settings

from tests.browser_support import browser_tab, requires_chromium
from tests.clinics.conftest import world
from tests.security.test_permission_matrix import MATRIX, objects

__all__ = ["objects", "world"]

pytestmark = [pytest.mark.browser, requires_chromium, pytest.mark.usefixtures("sync_db_under_playwright")]

# Personas with a browser session, in the order they take the pages (EMR clients have no pages).
PERSONAS = ("anonymous", "citizen_a", "guardian", "admin_a", "board", "analyst")
NOT_HTML = (
    "/api/",
    "/fhir/",
    "/oauth/",
    "/gestion/",
    "/healthz",
    "/readyz",
    "/metrics",
    "/donnees-ouvertes/",
)
NOT_HTML_ENDINGS = (".ics", ".csv", ".json", ".ndjson")


def html_pages() -> dict[str, list[str]]:
    """Each HTML GET row of the matrix, given to the first persona in PERSONAS that gets 200."""
    taken: dict[str, list[str]] = {persona: [] for persona in PERSONAS}
    for row in MATRIX:
        path = row.path.split("?")[0]
        if row.method != "GET" or path.startswith(NOT_HTML) or path.endswith(NOT_HTML_ENDINGS):
            continue
        persona = next((p for p in PERSONAS if row.expected[p] == 200), None)
        if persona is not None:
            taken[persona].append(row.path)
    return taken


def test_the_inventory_covers_every_kind_of_page():
    pages = {path for paths in html_pages().values() for path in paths}
    for path in (
        "/",
        "/recherche/",
        "/liste-attente/demande/",
        "/offre/{offer_token}/",
        "/mes-donnees/",
        "/fermer-mon-compte/",
        "/clinique/{clinic_a}/agenda/",
        "/clinique/{web_a}/plages/modele/",
        "/clinique/{web_a}/telephone/",
        "/clinique/{clinic_a}/agenda/feuille/",
        "/clinique/{clinic_a}/dme/conflits/{conflict_a}/",
        "/clinique/inscription/",
        "/clinique/conseil/demandes/",
        "/soutien/",
        "/analyses/",
        "/fournisseurs/",
    ):
        assert path in pages, path


def test_every_html_page_has_no_serious_axe_violation(
    browser, browser_server, transactional_db, objects, settings
):
    settings.SECURE_SSL_REDIRECT = False
    problems: list[str] = []
    checked: list[str] = []
    for number, (persona, paths) in enumerate(html_pages().items()):
        client = objects.clients[persona]()
        cookie = client.cookies.get(django_settings.SESSION_COOKIE_NAME)
        language, size = ("fr", "phone") if number % 2 == 0 else ("en", "desktop")
        with browser_tab(
            browser,
            browser_server.url,
            "every_page",
            language,
            size,
            session=cookie.value if cookie else None,
        ) as visit:
            for path in paths:
                response = visit.page.goto(browser_server.url + path.format(**objects.ids))
                assert response is not None and response.status == 200, (persona, path)
                visit.check(persona + path.split("{")[0].rstrip("/").replace("/", "_"))
                checked.append(path)
            if persona == "anonymous":
                # The waiting room switched on and full: a newcomer gets the queue page.
                settings.WAITING_ROOM_ENABLED = True
                settings.WAITING_ROOM_CAPACITY = 0
                response = visit.page.goto(browser_server.url + "/file-attente/?next=/recherche/")
                assert response is not None and response.status == 200
                # Its reload every few seconds keeps the place (axe's meta-refresh rule): allowed
                # here only because the page offers to turn it off (WCAG 2.2.1), checked next.
                visit.check("anonymous_waiting_room", allowed=frozenset({"meta-refresh"}))
                visit.page.locator("main a[href^='?manual=1']").click()
                visit.page.wait_for_url(lambda url: "manual=1" in url)
                assert visit.page.locator("meta[http-equiv=refresh]").count() == 0
                visit.check("anonymous_waiting_room_manual")
                settings.WAITING_ROOM_ENABLED = False
                checked.append("/file-attente/")
        problems += visit.problems
    print(f"{len(checked)} pages checked with axe:", *checked, sep="\n  ")
    assert problems == [], "\n".join(problems)
