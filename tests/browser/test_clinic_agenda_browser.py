"""A clinic administrator's day in a real browser (headless Debian Chromium), in French and in
English, on a phone and on a desktop screen: signed in with a password and a TOTP code, they publish
slots from a template (preview, then publish), see them in the agenda by day and by week, print a day
sheet, book one for a phone caller found by NAM, and mark a patient arrived. axe-core checks every
page; screenshots go to var/screenshots/clinic_agenda/."""

from datetime import timedelta

import pytest
from django.conf import settings as django_settings
from django.test import Client
from django.utils import timezone

from booking.models import Appointment, Reason, Slot
from booking.services import appointment_book
from clinics.models import ClinicMembership
from tests.browser_support import browser_tab, requires_chromium
from tests.clinics.conftest import make_staff, sign_in
from tests.factories import CitizenFactory, ClinicFactory, RoleFactory, SlotFactory

pytestmark = [pytest.mark.browser, requires_chromium, pytest.mark.usefixtures("sync_db_under_playwright")]


def assert_nothing_scrolls_sideways(page) -> None:
    """Neither the page nor the free times' region is wider than the screen: each Book form is in view."""
    assert page.evaluate("document.documentElement.scrollWidth <= window.innerWidth"), page.url
    region = page.locator(".table-scroll:has(form.slot-book)")
    assert region.evaluate("(element) => element.scrollWidth <= element.clientWidth"), page.url


@pytest.mark.parametrize("size", ["phone", "desktop"])
@pytest.mark.parametrize("language", ["fr", "en"])
def test_template_agenda_phone_booking_and_arrival(
    browser, browser_server, transactional_db, settings, language, size
):
    settings.SECURE_SSL_REDIRECT = False
    clinic = ClinicFactory(name="Clinique Agenda")
    role = RoleFactory(clinic=clinic)
    admin = make_staff(clinic, ClinicMembership.Role.CLINIC_ADMIN)
    caller = CitizenFactory(first_name="Rosalie", last_name="Bouchard")
    # A patient whose time began a few minutes ago, in today's agenda: they have just come in.
    start = timezone.now() - timedelta(minutes=5)
    present = appointment_book(
        slot_id=SlotFactory(role=role, start=start, end=start + timedelta(minutes=15)).pk,
        citizen=CitizenFactory(first_name="Présent"),
        reason=Reason.FOLLOW_UP,
        channel=Appointment.Channel.CLINIC_AGENDA,
    )
    session = sign_in(Client(), admin).cookies[django_settings.SESSION_COOKIE_NAME].value
    base = f"{browser_server.url}/clinique/{clinic.pk}"
    tomorrow = timezone.now().astimezone(clinic.tz).date() + timedelta(days=1)
    with browser_tab(browser, browser_server.url, "clinic_agenda", language, size, session=session) as visit:
        page = visit.page
        page.goto(f"{base}/plages/modele/")
        visit.check("template")
        page.select_option("#id_practitioner", str(role.practitioner_id))
        for day in range(7):
            page.check(f"#id_weekdays_{day}")
        page.fill("#id_time_from", "09:00")
        page.fill("#id_time_to", "10:00")
        page.fill("#id_date_from", tomorrow.isoformat())
        page.fill("#id_date_to", (tomorrow + timedelta(days=13)).isoformat())
        page.check("#id_reasons_0")
        page.locator("main form[method=get] button[type=submit]").click()
        page.wait_for_selector("#preview-title")
        visit.check("preview")
        assert Slot.objects.filter(role=role).count() == 1  # nothing published by the preview
        page.locator("button[name=action][value=publish]").click()

        page.wait_for_url("**/agenda/**")
        published = Slot.objects.filter(role=role, start__gt=timezone.now())
        assert published.count() >= 4 * 7  # two weeks of 09:00–10:00, less any statutory holiday
        assert page.locator(".agenda-table tbody tr").count() >= 4
        visit.check("agenda-day")
        page.goto(f"{base}/agenda/?date={tomorrow.isoformat()}&view=week")
        assert page.locator(".agenda-table").count() == 7
        visit.check("agenda-week")
        page.goto(f"{base}/agenda/feuille/?date={tomorrow.isoformat()}&practitioner={role.practitioner_id}")
        visit.check("day-sheet")

        page.goto(f"{base}/telephone/")
        visit.check("phone")
        page.fill("#id_nam", caller.nam)
        page.locator("main form:has(input[value=find]) button").click()
        page.wait_for_selector("form.slot-book")
        assert "Bouchard" in page.content()
        assert caller.nam not in page.url
        assert_nothing_scrolls_sideways(page)
        visit.check("phone-caller")
        booking_form = page.locator("form.slot-book").first
        slot_id = int(booking_form.locator("input[name=slot]").get_attribute("value"))
        booking_form.locator("button").click()
        page.wait_for_load_state()
        booked = Appointment.objects.get(slot_id=slot_id)
        assert booked.citizen_id == caller.pk
        assert booked.channel == Appointment.Channel.CLINIC_AGENDA
        assert_nothing_scrolls_sideways(page)
        visit.check("phone-booked")

        page.goto(f"{base}/agenda/")
        page.locator(f"form[action$='/rendez-vous/{present.pk}/presence/'] button[value=arrived]").click()
        page.wait_for_load_state()
        present.refresh_from_db()
        assert present.status == Appointment.Status.ARRIVED
        visit.check("arrived")
    assert visit.problems == [], "\n".join(visit.problems)
