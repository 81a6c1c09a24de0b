"""The vendor portal in a real browser (headless Debian Chromium), without JavaScript needed: the
request with its error summary, the pending state, the approved sandbox with its secret shown once;
axe-core finds no serious or critical violation on any of them."""

import pytest

from citizens.models import User
from clinics.models import BoardRole
from sync import vendors
from sync.models import EmrVendor
from tests.browser_support import requires_chromium, shot_and_axe
from tests.clinics.conftest import PASSWORD, make_account

pytestmark = [pytest.mark.browser, requires_chromium, pytest.mark.usefixtures("sync_db_under_playwright")]


def test_the_vendor_portal_passes_axe_from_request_to_secret(
    browser_server, transactional_db, browser_page, settings
):
    settings.SECURE_SSL_REDIRECT = False
    user = make_account(email="tech@boreal.example")
    page = browser_page
    problems: list[str] = []
    page.goto(browser_server.url + "/fournisseurs/inscription/")
    page.fill("#id_login", user.email)
    page.fill("#id_password", PASSWORD)
    page.locator("main form button[type=submit]").click()
    page.wait_for_url("**/fournisseurs/inscription/")
    page.fill("#id_company", "")
    page.locator("main form button[type=submit]").click()  # the error summary
    assert page.locator("#error-summary").count() == 1
    problems += shot_and_axe(page, "vendor_portal")

    page.fill("#id_company", "Logiciels Boréal inc.")
    page.fill("#id_product_name", "BorealDME")
    page.locator("main form button[type=submit]").click()
    page.wait_for_url("**/fournisseurs/")
    assert "attend l’examen du conseil" in page.content()
    problems += shot_and_axe(page, "vendor_portal")

    board = make_account()
    BoardRole.objects.create(user=board, role=BoardRole.Role.BOARD_ADMIN)
    vendors.vendor_approve(vendor_id=EmrVendor.objects.get(user=user).pk, by=User.objects.get(pk=board.pk))
    page.goto(browser_server.url + "/fournisseurs/")
    problems += shot_and_axe(page, "vendor_portal")
    page.locator("form[action='/fournisseurs/identifiants/'] button").click()
    assert "affiché cette seule fois" in page.content()
    problems += shot_and_axe(page, "vendor_portal")
    assert problems == []
