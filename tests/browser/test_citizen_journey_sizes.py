"""The citizen's whole journey in a real browser (headless Debian Chromium), in French and in
English, on a phone and on a desktop screen: identify, search near a place, hold a time, book it,
then cancel it. axe-core checks every page for serious or critical violations and each step is
saved as a screenshot under var/screenshots/citizen_journey/."""

import pytest

from booking.models import Appointment, Slot
from tests.browser_support import browser_tab, requires_chromium
from tests.factories import CitizenFactory, FsaFactory, SlotFactory

pytestmark = [pytest.mark.browser, requires_chromium, pytest.mark.usefixtures("sync_db_under_playwright")]

WORDS = {
    "fr": {"countdown": "Temps restant", "cancelled": "annulé"},
    "en": {"countdown": "Time left", "cancelled": "cancelled"},
}


@pytest.mark.parametrize("size", ["phone", "desktop"])
@pytest.mark.parametrize("language", ["fr", "en"])
def test_search_hold_book_and_cancel(browser, browser_server, transactional_db, settings, language, size):
    settings.SECURE_SSL_REDIRECT = False
    FsaFactory()
    citizen = CitizenFactory()
    slot = SlotFactory()
    with browser_tab(browser, browser_server.url, "citizen_journey", language, size) as visit:
        page = visit.page
        page.goto(browser_server.url + "/")
        visit.check("home")
        page.locator("a.button-primary").click()

        page.wait_for_url("**/identification/**")
        visit.check("identify")
        page.fill("#id_first_name", citizen.first_name)
        page.fill("#id_last_name", citizen.last_name)
        page.fill("#id_nam", citizen.nam)
        page.fill("#id_card_sequence", citizen.card_sequence)
        page.fill("#id_birth_date", citizen.birth_date.isoformat())
        page.locator("main form button[type=submit]").click()

        page.wait_for_url("**/recherche/**")
        visit.check("search")
        page.check("#id_path_2")  # near a place I choose
        page.fill("#id_postal_code", "H2X 1K4")
        page.locator("form.search-form button[type=submit]").click()
        page.wait_for_selector(".slot-card")
        visit.check("results")
        page.locator(".slot-card form button").first.click()  # the hold

        page.wait_for_url(f"**/plages/{slot.pk}/confirmer/")
        assert page.locator(".countdown").inner_text().startswith(WORDS[language]["countdown"])
        visit.check("hold")
        page.fill("#id_email", "julie@example.org")
        page.locator("form button.button-primary").click()

        page.wait_for_url("**/rendez-vous/*/")
        appointment = Appointment.objects.get()
        assert appointment.citizen_id == citizen.pk
        assert appointment.reference in page.content()
        assert Slot.objects.get(pk=slot.pk).status == Slot.Status.BOOKED
        visit.check("booked")

        page.locator(f"main a[href='/rendez-vous/{appointment.pk}/annuler/']").click()
        page.wait_for_url(f"**/rendez-vous/{appointment.pk}/annuler/")
        visit.check("cancel")
        page.check("#id_reason_0")
        page.locator("main form button.button-danger").click()
        page.wait_for_url(f"**/rendez-vous/{appointment.pk}/")
        appointment.refresh_from_db()
        assert appointment.status == Appointment.Status.CANCELLED_BY_CITIZEN
        assert Slot.objects.get(pk=slot.pk).status == Slot.Status.FREE
        visit.check("cancelled")
    assert visit.problems == [], "\n".join(visit.problems)
