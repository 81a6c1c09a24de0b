"""Maintenance mode: search and viewing keep working, every appointment write pauses with a clear
message (pages) or 503 + Retry-After (citizen API, FHIR writes), and a banner in both languages."""

import io
import json

import pytest
from django.core.management import call_command
from django.test import Client
from django.urls import reverse

from booking.api.auth import citizen_token_make
from booking.models import Appointment, Reason, Slot
from booking.services import appointment_book
from config import maintenance
from tests.conftest import identify_payload
from tests.factories import FsaFactory, SlotFactory

pytestmark = pytest.mark.django_db

BANNER_FR = "Maintenance en cours."
BANNER_EN = "Maintenance in progress."


def command(*args: str) -> str:
    out = io.StringIO()
    call_command("maintenance", *args, stdout=out)
    return out.getvalue()


@pytest.fixture
def maintenance_on():
    assert "on (flag" in command("on", "--retry-after", "600")
    yield
    assert command("off") == "maintenance: off\n"


@pytest.fixture
def identified(citizen):
    FsaFactory()
    client = Client()
    assert client.post("/identification/", identify_payload(citizen)).status_code == 302
    return client


def test_the_command_turns_it_on_and_off_and_says_so():
    assert command("status") == "maintenance: off\n"
    out = command("on")
    assert out.startswith("maintenance: on (flag since ") and "Retry-After 900 s" in out
    assert maintenance.maintenance_state().active
    assert command("off") == "maintenance: off\n"
    assert not maintenance.maintenance_state().active


def test_every_page_shows_the_banner_in_french_and_english(maintenance_on, identified):
    for url, language in (("/", "fr"), (reverse("booking:find"), "en"), (reverse("booking:search"), "fr")):
        html = identified.get(url, HTTP_ACCEPT_LANGUAGE=language).content.decode()
        assert BANNER_FR in html and BANNER_EN in html
        assert '<p lang="fr">' in html and '<p lang="en">' in html


def test_no_banner_when_it_is_off(identified):
    assert BANNER_FR not in identified.get("/").content.decode()


def test_search_and_my_appointments_keep_working(maintenance_on, identified, citizen):
    slot = SlotFactory()
    booked = appointment_book(slot_id=slot.pk, citizen=citizen, reason=Reason.FOLLOW_UP, channel="portal")
    url = reverse("booking:search") + "?reason=follow_up&path=near&radius_km=25&sort=soonest"
    assert identified.get(url).status_code == 200
    assert booked.reference in identified.get(reverse("booking:mine")).content.decode()
    assert identified.get(reverse("booking:appointment", args=[booked.pk])).status_code == 200


def test_a_hold_on_the_pages_is_paused_with_a_friendly_page(maintenance_on, identified):
    slot = SlotFactory()
    response = identified.post(reverse("booking:hold", args=[slot.pk]), {"reason": Reason.FOLLOW_UP})
    assert response.status_code == 503
    assert response["Retry-After"] == "600"
    html = response.content.decode()
    assert "La prise de rendez-vous est suspendue pour maintenance" in html
    assert "environ 10 minutes" in html
    slot.refresh_from_db()
    assert slot.holder_id is None


def test_a_cancellation_on_the_pages_is_paused_and_changes_nothing(maintenance_on, identified, citizen):
    slot = SlotFactory()
    booked = appointment_book(slot_id=slot.pk, citizen=citizen, reason=Reason.FOLLOW_UP, channel="portal")
    response = identified.post(reverse("booking:cancel", args=[booked.pk]), {"reason": "cannot_attend"})
    assert response.status_code == 503
    booked.refresh_from_db()
    assert booked.status == Appointment.Status.BOOKED
    # The cancellation page itself (GET) still shows the appointment.
    assert identified.get(reverse("booking:cancel", args=[booked.pk])).status_code == 200


def test_bookings_resume_when_it_is_turned_off(identified):
    slot = SlotFactory()
    command("on")
    assert (
        identified.post(reverse("booking:hold", args=[slot.pk]), {"reason": "follow_up"}).status_code == 503
    )
    command("off")
    response = identified.post(reverse("booking:hold", args=[slot.pk]), {"reason": "follow_up"})
    assert response.status_code == 302
    assert Slot.objects.get(pk=slot.pk).holder_id is not None


def test_the_setting_turns_it_on_without_the_flag(settings, identified):
    settings.MAINTENANCE_MODE = True
    settings.MAINTENANCE_RETRY_AFTER = 120
    slot = SlotFactory()
    response = identified.post(reverse("booking:hold", args=[slot.pk]), {"reason": "follow_up"})
    assert response.status_code == 503 and response["Retry-After"] == "120"
    assert "on (setting)" in command("status")


def test_the_citizen_api_answers_writes_with_503_and_retry_after(maintenance_on, citizen):
    api = Client(HTTP_AUTHORIZATION=f"Bearer {citizen_token_make(citizen)[0]}")
    slot = SlotFactory()
    response = api.post("/api/v1/holds", json.dumps({"slot_id": slot.pk}), content_type="application/json")
    assert response.status_code == 503
    assert response["Retry-After"] == "600"
    error = response.json()["error"]
    assert error["code"] == "maintenance" and error["retry_after"] == 600
    # Reading, and identifying (a token, not an appointment write), keep working.
    assert api.get("/api/v1/appointments").status_code == 200
    identified = Client().post("/api/v1/identify", identify_payload(citizen), content_type="application/json")
    assert identified.status_code == 200


def test_fhir_writes_answer_an_operation_outcome_with_503_and_reads_go_on(maintenance_on, fhir_a, persona_a):
    slot = SlotFactory(role=persona_a.role)
    for method, url in (("post", "/fhir/r4/Appointment"), ("put", f"/fhir/r4/Slot/{slot.pk}")):
        response = getattr(fhir_a, method)(url, "{}", content_type="application/fhir+json")
        assert response.status_code == 503, (method, url)
        assert response["Retry-After"] == "600"
        body = response.json()
        assert body["resourceType"] == "OperationOutcome"
        assert body["issue"][0]["code"] == "transient"
    assert fhir_a.get(f"/fhir/r4/Slot/{slot.pk}").status_code == 200
    search = fhir_a.post(
        "/fhir/r4/Slot/_search", "_count=1", content_type="application/x-www-form-urlencoded"
    )
    assert search.status_code == 200


def test_the_metric_says_it_is_on(maintenance_on):
    text = Client().get("/metrics").content.decode()
    assert "\nrdv_maintenance_mode 1.0\n" in text
