"""Regressions from review: hostile input, Redis down, hold tokens bound to their slot, sessions on
shared computers, proxies."""

import pytest
from django.test import RequestFactory, override_settings
from django.urls import reverse

from booking import errors
from booking.models import Appointment, Reason, Slot
from booking.selectors import MAX_PAGE, Path, SlotQuery, slot_search
from booking.services import appointment_book, slot_hold
from config.ratelimit import client_ip
from tests.conftest import identify_payload
from tests.factories import CitizenFactory, ClinicFactory, FsaFactory, RoleFactory, SlotFactory, UserFactory

pytestmark = pytest.mark.django_db

DEAD_REDIS = {
    "default": {
        "BACKEND": "django.core.cache.backends.redis.RedisCache",
        "LOCATION": "redis://127.0.0.1:1/0",  # nothing listens there: every cache call fails
        "OPTIONS": {"socket_connect_timeout": 0.2},
    }
}


def test_citizens_keep_identifying_and_booking_when_redis_is_down(client, citizen):
    slot = SlotFactory()
    with override_settings(CACHES=DEAD_REDIS):
        assert client.post(reverse("booking:identify"), identify_payload(citizen)).status_code == 302
        client.post(reverse("booking:hold", args=[slot.pk]), {"reason": Reason.FOLLOW_UP})
        token = client.get(reverse("booking:confirm", args=[slot.pk])).context["form"].initial["hold_token"]
        response = client.post(
            reverse("booking:confirm", args=[slot.pk]),
            {"reason": Reason.FOLLOW_UP, "email": "", "language": "fr", "hold_token": token},
        )
    assert response.status_code == 302
    assert Appointment.objects.filter(slot=slot, citizen=citizen).exists()


def test_an_unknown_reason_on_the_hold_form_is_ignored_not_a_500(client, citizen):
    slot = SlotFactory()
    other = CitizenFactory(first_name="Paul", last_name="Roy", sex="M")
    slot_hold(slot_id=slot.pk, citizen=other)
    client.post(reverse("booking:identify"), identify_payload(citizen))
    response = client.post(reverse("booking:hold", args=[slot.pk]), {"reason": "zzz<script>"})
    assert response.status_code == 409
    assert "zzz" not in response.content.decode()


def test_a_hold_token_books_only_its_own_slot(citizen):
    role = RoleFactory()
    held, other = SlotFactory(role=role), SlotFactory(role=role)
    hold = slot_hold(slot_id=held.pk, citizen=citizen)
    with pytest.raises(errors.HoldExpired):
        appointment_book(
            slot_id=other.pk, citizen=citizen, reason=Reason.FOLLOW_UP, channel="api", hold_token=hold.token
        )
    assert Slot.objects.get(pk=other.pk).status == Slot.Status.FREE
    booked = appointment_book(
        slot_id=held.pk, citizen=citizen, reason=Reason.FOLLOW_UP, channel="api", hold_token=hold.token
    )
    assert booked.slot_id == held.pk
    assert booked.idempotency_key == hold.token


def test_booking_releases_the_citizens_hold_on_another_slot(citizen):
    role = RoleFactory()
    held, other = SlotFactory(role=role), SlotFactory(role=role)
    slot_hold(slot_id=held.pk, citizen=citizen)
    appointment_book(slot_id=other.pk, citizen=citizen, reason=Reason.FOLLOW_UP, channel="api")
    held.refresh_from_db()
    assert held.holder_id is None  # consumed: a citizen holds nothing once they booked


def test_a_slot_changed_by_the_clinic_after_the_hold_is_not_booked_at_the_new_time(citizen):
    from datetime import timedelta

    from booking.services import slot_update

    slot = SlotFactory()
    hold = slot_hold(slot_id=slot.pk, citizen=citizen)
    slot_update(
        slot_id=slot.pk,
        expected_version=slot.version,
        start=slot.start + timedelta(hours=2),
        end=slot.end + timedelta(hours=2),
        reasons=slot.reason_codes,
        audience=slot.audience,
        modality=slot.modality,
    )
    with pytest.raises(errors.HoldExpired):
        appointment_book(
            slot_id=slot.pk, citizen=citizen, reason=Reason.FOLLOW_UP, channel="portal", hold_token=hold.token
        )
    assert not Appointment.objects.exists()


def test_slots_of_an_inactive_clinic_cannot_be_held_or_booked(citizen):
    slot = SlotFactory(role=RoleFactory(clinic=ClinicFactory(is_active=False)))
    with pytest.raises(errors.SlotNotFound):
        slot_hold(slot_id=slot.pk, citizen=citizen)
    with pytest.raises(errors.SlotNotFound):
        appointment_book(slot_id=slot.pk, citizen=citizen, reason=Reason.FOLLOW_UP, channel="portal")
    assert Slot.objects.get(pk=slot.pk).status == Slot.Status.FREE


def test_the_last_page_never_links_to_a_page_that_is_refused(citizen):
    FsaFactory()
    role = RoleFactory()
    for _ in range(3):
        SlotFactory(role=role)
    result = slot_search(citizen=citizen, query=SlotQuery(path=Path.NEAR, fsa="H2X", page=MAX_PAGE + 5))
    assert result.page == MAX_PAGE
    assert result.has_next is False


def test_end_my_session_also_signs_out_the_account(client, citizen):
    user = UserFactory()
    citizen.account = user
    citizen.save()
    client.force_login(user)
    assert client.get(reverse("booking:mine")).status_code == 200
    client.post(reverse("booking:sign_out"))
    assert client.get(reverse("booking:mine")).status_code == 302


def test_a_new_identification_does_not_inherit_the_previous_persons_found_appointments(client, citizen):
    slot = SlotFactory()
    appointment = appointment_book(
        slot_id=slot.pk, citizen=citizen, reason=Reason.FOLLOW_UP, channel="portal"
    )
    client.post(reverse("booking:find"), {"reference": appointment.reference, "nam": citizen.nam})
    assert client.get(reverse("booking:appointment", args=[appointment.pk])).status_code == 200
    stranger = CitizenFactory(first_name="Paul", last_name="Roy", sex="M")
    client.post(reverse("booking:identify"), identify_payload(stranger))
    assert client.get(reverse("booking:appointment", args=[appointment.pk])).status_code == 404


def test_found_appointments_expire_with_the_session_window(client, citizen, settings):
    slot = SlotFactory()
    appointment = appointment_book(
        slot_id=slot.pk, citizen=citizen, reason=Reason.FOLLOW_UP, channel="portal"
    )
    settings.CITIZEN_SESSION_SECONDS = -1  # already over
    client.post(reverse("booking:find"), {"reference": appointment.reference, "nam": citizen.nam})
    assert client.get(reverse("booking:appointment", args=[appointment.pk])).status_code == 404


def test_pages_with_personal_data_are_never_cached(client, citizen):
    client.post(reverse("booking:identify"), identify_payload(citizen))
    for name in ("booking:identify", "booking:search", "booking:mine", "booking:find"):
        response = client.get(reverse(name))
        assert "no-store" in response.get("Cache-Control", ""), name


@pytest.mark.parametrize(
    "hops,forwarded,expected",
    [
        (0, "203.0.113.9", "10.0.0.1"),  # no proxy trusted: the header is the client's own words
        (1, "203.0.113.9", "203.0.113.9"),
        (1, "6.6.6.6, 203.0.113.9", "203.0.113.9"),  # a forged first hop is ignored
        (2, "6.6.6.6, 203.0.113.9, 10.1.1.1", "203.0.113.9"),
        (2, "203.0.113.9", "10.0.0.1"),  # fewer hops than proxies: not trusted
    ],
)
def test_client_ip_takes_the_hop_the_trusted_proxies_added(settings, hops, forwarded, expected):
    settings.TRUSTED_PROXY_COUNT = hops
    request = RequestFactory().get("/", HTTP_X_FORWARDED_FOR=forwarded, REMOTE_ADDR="10.0.0.1")
    assert client_ip(request) == expected
