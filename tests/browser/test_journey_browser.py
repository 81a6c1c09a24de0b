"""Once in a real browser: headless Debian Chromium books a slot end to end in French, and axe-core
checks every page for serious or critical accessibility violations."""

import pytest

from booking.models import Appointment, Slot
from tests.browser_support import requires_chromium, shot_and_axe
from tests.factories import CitizenFactory, FsaFactory, SlotFactory

pytestmark = [pytest.mark.browser, requires_chromium, pytest.mark.usefixtures("sync_db_under_playwright")]


def _axe_serious(page) -> list[str]:
    return shot_and_axe(page, "journey_fr_and_errors")


def test_a_citizen_books_a_slot_in_french_in_a_real_browser(
    browser_server, transactional_db, browser_page, settings
):
    settings.SECURE_SSL_REDIRECT = False
    FsaFactory()
    citizen = CitizenFactory()
    slot = SlotFactory()
    page = browser_page
    problems: list[str] = []

    page.goto(browser_server.url + "/")
    assert page.locator("html").get_attribute("lang") == "fr"
    problems += _axe_serious(page)
    page.locator("a.button-primary").click()

    page.wait_for_url("**/identification/**")
    problems += _axe_serious(page)
    page.fill("#id_first_name", citizen.first_name)
    page.fill("#id_last_name", citizen.last_name)
    page.fill("#id_nam", citizen.nam[:4].lower() + " " + citizen.nam[4:8] + " " + citizen.nam[8:])
    page.fill("#id_card_sequence", citizen.card_sequence)
    page.fill("#id_birth_date", citizen.birth_date.isoformat())
    page.locator("main form button[type=submit]").click()

    page.wait_for_url("**/recherche/**")
    problems += _axe_serious(page)
    page.check("#id_path_2")  # near a place I choose
    page.fill("#id_postal_code", "H2X 1K4")
    page.locator("form.search-form button[type=submit]").click()
    page.wait_for_selector(".slot-card")
    problems += _axe_serious(page)
    page.locator(".slot-card form button").first.click()

    page.wait_for_url(f"**/plages/{slot.pk}/confirmer/")
    problems += _axe_serious(page)
    assert page.locator(".countdown").inner_text().startswith("Temps restant")
    page.fill("#id_email", "julie@example.org")
    page.locator("form button.button-primary").click()

    page.wait_for_url("**/rendez-vous/*/")
    problems += _axe_serious(page)
    appointment = Appointment.objects.get()
    assert appointment.reference in page.content()
    assert appointment.citizen_id == citizen.pk
    assert Slot.objects.get(pk=slot.pk).status == Slot.Status.BOOKED

    assert problems == []


def test_error_states_and_english_pages_pass_axe(browser_server, transactional_db, browser_page, settings):
    settings.SECURE_SSL_REDIRECT = False
    FsaFactory()
    citizen = CitizenFactory()
    page = browser_page
    problems: list[str] = []
    page.goto(browser_server.url + "/")
    page.locator("form.lang-switch button").click()  # to English, without JavaScript needed
    page.wait_for_load_state()
    assert page.locator("html").get_attribute("lang") == "en"
    problems += _axe_serious(page)

    page.goto(browser_server.url + "/identification/")
    page.locator("main form button[type=submit]").click()  # everything empty: the error summary
    assert page.locator("#error-summary").count() == 1
    problems += _axe_serious(page)
    page.fill("#id_first_name", citizen.first_name)
    page.fill("#id_last_name", citizen.last_name)
    page.fill("#id_nam", citizen.nam)
    page.fill("#id_card_sequence", "99")  # wrong: the generic message and where else to get care
    page.fill("#id_birth_date", citizen.birth_date.isoformat())
    page.locator("main form button[type=submit]").click()
    assert "811" in page.content()
    problems += _axe_serious(page)

    page.fill("#id_card_sequence", citizen.card_sequence)
    page.locator("main form button[type=submit]").click()
    page.wait_for_url("**/recherche/**")
    page.fill("#id_postal_code", "H2X")
    page.select_option("#id_radius_km", "5")
    page.locator("form.search-form button[type=submit]").click()  # no slot at all: suggestions
    assert "811" in page.content()
    problems += _axe_serious(page)

    page.goto(browser_server.url + "/rendez-vous/")
    problems += _axe_serious(page)
    page.goto(browser_server.url + "/rendez-vous/retrouver/")
    problems += _axe_serious(page)
    # Law 25 pages: my data, and closing the account with its error state (the box left unchecked).
    page.goto(browser_server.url + "/mes-donnees/")
    assert citizen.nam in page.content()
    problems += _axe_serious(page)
    page.goto(browser_server.url + "/fermer-mon-compte/")
    problems += _axe_serious(page)
    page.locator("main form button.button-danger").click()
    assert page.locator("#error-summary").count() == 1
    problems += _axe_serious(page)
    assert problems == []


def test_the_challenge_page_is_accessible_and_its_script_solves_it(
    browser_server, transactional_db, browser_page, settings
):
    settings.SECURE_SSL_REDIRECT = False
    settings.CHALLENGE_ENABLED = True
    settings.CHALLENGE_BITS = 40  # out of reach: the page stays while axe checks it
    page = browser_page
    page.goto(browser_server.url + "/recherche/")
    page.wait_for_url("**/verification/**")
    assert _axe_serious(page) == []
    settings.CHALLENGE_BITS = 6  # the script finds a nonce and submits: on to the search
    page.reload()
    page.wait_for_url("**/identification/**")  # the search's own answer to a visitor not identified
