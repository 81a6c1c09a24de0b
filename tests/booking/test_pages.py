"""The citizen journey driven through the pages, in French and in English."""

import re
from datetime import timedelta

import pytest
from django.core import mail
from django.urls import reverse
from django.utils import timezone

from booking.models import Appointment, Audience, Reason, SearchMiss, Slot
from booking.notifications import cancel_token_make
from tests.conftest import identify_payload
from tests.factories import CitizenFactory, ClinicFactory, FsaFactory, RoleFactory, SlotFactory

pytestmark = pytest.mark.django_db


def _identify(client, citizen, **overrides):
    return client.post(reverse("booking:identify"), identify_payload(citizen, **overrides))


def _search(client, **params):
    query = {
        "path": "near",
        "reason": Reason.FOLLOW_UP,
        "postal_code": "H2X",
        "radius_km": 25,
        "sort": "soonest",
    }
    query.update(params)
    return client.get(reverse("booking:search"), query)


def test_home_explains_the_three_paths_in_french_by_default(client):
    response = client.get("/")
    assert response.status_code == 200
    html = response.content.decode()
    assert '<html lang="fr">' in html
    assert "médecin de famille" in html
    assert "GMF" in html


def test_home_renders_in_english_when_asked(client):
    response = client.get("/", HTTP_ACCEPT_LANGUAGE="en")
    html = response.content.decode()
    assert '<html lang="en">' in html
    assert "Three ways to get an appointment" in html


def test_language_switch_works_without_javascript(client):
    response = client.post(reverse("set_language"), {"language": "en", "next": "/"}, follow=True)
    assert '<html lang="en">' in response.content.decode()


def test_search_asks_to_identify_first(client):
    response = client.get(reverse("booking:search"))
    assert response.status_code == 302
    assert response["Location"].startswith(reverse("booking:identify"))


def test_citizen_can_identify_and_search_near_a_postal_code(client, citizen):
    FsaFactory()
    slot = SlotFactory()
    response = _identify(client, citizen)
    assert response.status_code == 302
    response = _search(client)
    assert response.status_code == 200
    html = response.content.decode()
    assert slot.clinic.name in html
    assert reverse("booking:hold", args=[slot.pk]) in html


def test_identification_mismatch_gets_one_generic_message_and_where_else_to_get_care(client, citizen):
    response = _identify(client, citizen, card_sequence="99")
    html = response.content.decode()
    assert response.status_code == 400
    assert "811" in html
    other = _identify(client, citizen, first_name="Autre")
    # Same message whichever field was wrong: the page does not say which one.
    assert re.sub(r"csrfmiddlewaretoken\" value=\"[^\"]+", "", other.content.decode()).count(
        "811"
    ) == html.count("811")


def test_malformed_nam_is_explained_in_the_current_language(client, citizen):
    response = _identify(client, citizen, nam="12345")
    assert "4 lettres et 8 chiffres" in response.content.decode()
    response = client.post(
        reverse("booking:identify"), identify_payload(citizen, nam="12345"), HTTP_ACCEPT_LANGUAGE="en"
    )
    assert "4 letters and 8 digits" in response.content.decode()


def test_unknown_postal_code_says_so_and_shows_the_format(client, citizen):
    FsaFactory()
    _identify(client, citizen)
    response = _search(client, postal_code="H9Z 9Z9")
    assert response.status_code == 400
    assert "A1A 1A1" in response.content.decode()


def test_dates_in_the_past_are_refused(client, citizen):
    FsaFactory()
    _identify(client, citizen)
    yesterday = (timezone.localdate() - timedelta(days=1)).isoformat()
    response = _search(client, date_from=yesterday)
    assert response.status_code == 400
    assert "passé" in response.content.decode()


def test_a_search_without_result_is_recorded_and_suggests_what_to_try(client, citizen):
    FsaFactory()
    _identify(client, citizen)
    response = _search(client, radius_km=5)
    html = response.content.decode()
    assert "811" in html
    assert "100 km" in html
    miss = SearchMiss.objects.get()
    assert (miss.path, miss.fsa, miss.region_id, miss.radius_km) == ("near", "H2X", "06", 5)


def test_citizen_not_enrolled_is_sent_to_the_public_path_with_an_explanation(client, citizen):
    _identify(client, citizen)
    response = client.get(reverse("booking:search"))
    html = response.content.decode()
    assert "pas inscrit" in html
    assert (
        'value="near" checked' in html
        or 'value="near"\n' in html
        or re.search(r'value="near"[^>]*checked', html)
    )


def test_the_whole_journey_hold_book_see_cancel(client, citizen):
    FsaFactory()
    slot = SlotFactory()
    _identify(client, citizen)
    response = client.post(reverse("booking:hold", args=[slot.pk]), {"reason": Reason.FOLLOW_UP})
    assert response["Location"] == reverse("booking:confirm", args=[slot.pk])
    page = client.get(response["Location"])
    assert page.status_code == 200
    assert "data-seconds-left" in page.content.decode()
    token = page.context["form"].initial["hold_token"]
    response = client.post(
        reverse("booking:confirm", args=[slot.pk]),
        {"reason": Reason.FOLLOW_UP, "email": "julie@example.org", "language": "fr", "hold_token": token},
    )
    appointment = Appointment.objects.get()
    assert response["Location"] == reverse("booking:appointment", args=[appointment.pk])
    done = client.get(response["Location"]).content.decode()
    assert appointment.reference in done
    slot.refresh_from_db()
    assert slot.status == Slot.Status.BOOKED

    mine = client.get(reverse("booking:mine")).content.decode()
    assert appointment.reference in mine

    ics = client.get(reverse("booking:calendar", args=[appointment.pk]))
    assert ics["Content-Type"].startswith("text/calendar")
    assert b"BEGIN:VEVENT" in ics.content

    response = client.post(reverse("booking:cancel", args=[appointment.pk]), {"reason": "cannot_attend"})
    assert response.status_code == 302
    appointment.refresh_from_db()
    slot.refresh_from_db()
    assert appointment.status == Appointment.Status.CANCELLED_BY_CITIZEN
    assert slot.status == Slot.Status.FREE


def test_booking_sends_a_confirmation_in_the_citizens_language_with_a_calendar_file(
    client, citizen, django_capture_on_commit_callbacks
):
    FsaFactory()
    slot = SlotFactory()
    _identify(client, citizen)
    client.post(reverse("booking:hold", args=[slot.pk]), {"reason": Reason.FOLLOW_UP})
    token = client.get(reverse("booking:confirm", args=[slot.pk])).context["form"].initial["hold_token"]
    with django_capture_on_commit_callbacks(execute=True):
        client.post(
            reverse("booking:confirm", args=[slot.pk]),
            {"reason": Reason.FOLLOW_UP, "email": "julie@example.org", "language": "en", "hold_token": token},
        )
    assert len(mail.outbox) == 1
    message = mail.outbox[0]
    appointment = Appointment.objects.get()
    assert appointment.reference in message.subject
    assert "Your appointment is booked" in message.body
    assert message.attachments[0][2] == "text/calendar"
    # The cancel link opens a page; it carries no NAM.
    assert citizen.nam not in message.body
    assert "/annulation/" in message.body


def test_a_retried_confirmation_returns_the_same_appointment(client, citizen):
    slot = SlotFactory()
    _identify(client, citizen)
    client.post(reverse("booking:hold", args=[slot.pk]), {"reason": Reason.FOLLOW_UP})
    token = client.get(reverse("booking:confirm", args=[slot.pk])).context["form"].initial["hold_token"]
    data = {"reason": Reason.FOLLOW_UP, "email": "", "language": "fr", "hold_token": token}
    first = client.post(reverse("booking:confirm", args=[slot.pk]), data)
    # The session hold is consumed; a replay of the same POST (double click) must not book twice.
    from booking.services import appointment_book

    again = appointment_book(
        slot_id=slot.pk, citizen=citizen, reason=Reason.FOLLOW_UP, channel="portal", hold_token=token
    )
    assert first.status_code == 302
    assert Appointment.objects.count() == 1
    assert again.pk == Appointment.objects.get().pk


def test_a_slot_taken_meanwhile_offers_the_next_free_slots(client, citizen):
    role = RoleFactory()
    slot = SlotFactory(role=role)
    later = SlotFactory(role=role)
    _identify(client, citizen)
    Slot.objects.filter(pk=slot.pk).update(status=Slot.Status.BOOKED)
    response = client.post(reverse("booking:hold", args=[slot.pk]), {"reason": Reason.FOLLOW_UP})
    assert response.status_code == 409
    assert reverse("booking:hold", args=[later.pk]) in response.content.decode()


def test_a_slot_for_other_patients_cannot_be_held(client, citizen):
    slot = SlotFactory(audience=Audience.OWN_PATIENTS)
    _identify(client, citizen)
    response = client.post(reverse("booking:hold", args=[slot.pk]), {"reason": Reason.FOLLOW_UP})
    assert response.status_code == 403


def test_another_citizen_cannot_see_or_cancel_my_appointment(client, citizen):
    slot = SlotFactory()
    from booking.services import appointment_book

    appointment = appointment_book(
        slot_id=slot.pk, citizen=citizen, reason=Reason.FOLLOW_UP, channel="portal"
    )
    other = CitizenFactory(first_name="Paul", last_name="Roy", sex="M")
    _identify(client, other)
    assert client.get(reverse("booking:appointment", args=[appointment.pk])).status_code == 404
    assert (
        client.post(reverse("booking:cancel", args=[appointment.pk]), {"reason": "other"}).status_code == 404
    )
    appointment.refresh_from_db()
    assert appointment.status == Appointment.Status.BOOKED


def test_cancel_link_get_changes_nothing_and_post_cancels_once(client, citizen):
    slot = SlotFactory()
    from booking.services import appointment_book

    appointment = appointment_book(
        slot_id=slot.pk, citizen=citizen, reason=Reason.FOLLOW_UP, channel="portal"
    )
    url = reverse("booking:cancel_link", args=[cancel_token_make(appointment)])
    assert client.get(url).status_code == 200
    appointment.refresh_from_db()
    assert appointment.status == Appointment.Status.BOOKED
    assert client.post(url, {"reason": "feeling_better"}).status_code == 302
    appointment.refresh_from_db()
    assert appointment.status == Appointment.Status.CANCELLED_BY_CITIZEN
    # Single use: the token was bound to the version that is now gone.
    assert client.post(url, {"reason": "feeling_better"}).status_code == 404


def test_find_by_reference_and_nam_without_an_account(client, citizen):
    slot = SlotFactory()
    from booking.services import appointment_book

    appointment = appointment_book(
        slot_id=slot.pk, citizen=citizen, reason=Reason.FOLLOW_UP, channel="portal"
    )
    wrong = client.post(reverse("booking:find"), {"reference": appointment.reference, "nam": "TREM55512314"})
    assert wrong.status_code == 400
    response = client.post(
        reverse("booking:find"), {"reference": appointment.reference.lower(), "nam": citizen.nam}
    )
    assert response["Location"] == reverse("booking:appointment", args=[appointment.pk])
    assert client.get(response["Location"]).status_code == 200


def test_too_many_identification_failures_get_a_friendly_429_with_retry_after(client, citizen, settings):
    settings.RATE_LIMITS = {**settings.RATE_LIMITS, "identify_nam": "2/600"}
    for _ in range(2):
        _identify(client, citizen, card_sequence="99")
    response = _identify(client, citizen)
    assert response.status_code == 429
    assert int(response["Retry-After"]) > 0
    assert "811" in response.content.decode()


def test_clinic_in_halifax_shows_local_time(client, citizen):
    FsaFactory()
    clinic = ClinicFactory(time_zone="America/Halifax")
    slot = SlotFactory(role=RoleFactory(clinic=clinic))
    _identify(client, citizen)
    html = _search(client).content.decode()
    local = slot.start.astimezone(clinic.tz)
    assert f"{local:%H:%M}" in html
    assert "America/Halifax" in html


def test_health_endpoints(client):
    assert client.get("/healthz").json() == {"status": "ok"}
    ready = client.get("/readyz")
    assert ready.status_code == 200
    assert ready.json()["checks"] == {"database": "ok", "redis": "ok"}


def test_unknown_page_is_a_friendly_404(client):
    response = client.get("/nulle-part/")
    assert response.status_code == 404
    assert "Page introuvable" in response.content.decode()
