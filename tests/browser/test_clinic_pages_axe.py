"""The clinic pages changed for issue 4 in a real browser: axe-core finds no serious or critical
accessibility violation on the Staff page (invitation form, pending invitations, its errors), the
EMR access page and the settings (languages spoken), in French and in English."""

import pytest
from django.conf import settings as django_settings
from django.test import Client

from clinics.models import ClinicMembership
from clinics.services_staff import staff_invite
from tests.browser_support import requires_chromium, shot_and_axe
from tests.clinics.conftest import make_staff, sign_in
from tests.factories import ClinicFactory, RoleFactory

pytestmark = [pytest.mark.browser, requires_chromium, pytest.mark.usefixtures("sync_db_under_playwright")]


@pytest.mark.parametrize("language", ["fr", "en"])
def test_staff_emr_access_and_settings_pages_pass_axe(
    browser, browser_server, transactional_db, settings, language
):
    settings.SECURE_SSL_REDIRECT = False
    clinic = ClinicFactory(name="Clinique Axe")
    RoleFactory(clinic=clinic)
    admin = make_staff(clinic, ClinicMembership.Role.CLINIC_ADMIN)
    staff_invite(clinic=clinic, by=admin, email="nouvelle@example.org", role="receptionist", language="fr")
    session = sign_in(Client(), admin).cookies[django_settings.SESSION_COOKIE_NAME].value
    base = browser_server.url
    problems: list[str] = []
    context = browser.new_context(locale=f"{language}-CA", viewport={"width": 1280, "height": 800})
    try:
        context.add_cookies(
            [
                {"name": django_settings.SESSION_COOKIE_NAME, "value": session, "url": base},
                {"name": "django_language", "value": language, "url": base},
            ]
        )
        page = context.new_page()
        page.set_default_timeout(15000)
        for path in ("personnel/", "personnel/inviter/", "dme/acces/", "parametres/"):
            page.goto(f"{base}/clinique/{clinic.pk}/{path}")
            assert page.locator("html").get_attribute("lang") == language
            assert "Clinique Axe" in page.content(), path
            problems += shot_and_axe(page, "clinic_staff_pages")
        # The invitation form's errors: the summary and each field's message.
        page.goto(f"{base}/clinique/{clinic.pk}/personnel/inviter/")
        page.locator("main form button[type=submit]").click()
        page.wait_for_load_state()
        assert page.locator("#error-summary").count() == 1
        problems += shot_and_axe(page, "clinic_staff_pages")
    finally:
        context.close()
    assert not problems, "\n".join(problems)
