"""Structured logs: JSON lines with the request id, carried into Celery tasks, and no personal data
on the whole booking journey (pages and API)."""

import json
import logging
from datetime import date

import pytest
from celery import shared_task
from django.test import Client
from django.urls import reverse

from booking.models import Appointment, Reason
from config.celery import app as celery_app
from config.logs import JsonFormatter, RequestIdFilter, request_id_var, scrub
from tests.conftest import identify_payload
from tests.factories import CitizenFactory, FsaFactory, SlotFactory

pytestmark = pytest.mark.django_db


class Capture(logging.Handler):
    """Every record of every logger, as written (before the formatter's scrubbing), and as JSON."""

    def __init__(self) -> None:
        super().__init__(level=logging.DEBUG)
        self.addFilter(RequestIdFilter())
        self.raw: list[str] = []
        self.lines: list[dict] = []

    def emit(self, record: logging.LogRecord) -> None:
        extras = {k: v for k, v in vars(record).items() if k not in ("msg", "args")}
        exc = logging.Formatter().formatException(record.exc_info) if record.exc_info else ""
        self.raw.append(f"{record.getMessage()} {extras} {exc}")
        self.lines.append(json.loads(JsonFormatter().format(record)))


@pytest.fixture
def captured():
    handler = Capture()
    root = logging.getLogger()
    level = root.level
    root.addHandler(handler)
    root.setLevel(logging.DEBUG)
    yield handler
    root.removeHandler(handler)
    root.setLevel(level)


@shared_task
def _log_inside_a_task() -> None:
    logging.getLogger("rdv.test").info("inside the task")


def test_each_request_logs_one_json_line_with_its_request_id_and_route(captured):
    response = Client().get("/healthz", HTTP_X_REQUEST_ID="lb-req-0123456789")
    assert response["X-Request-ID"] == "lb-req-0123456789"
    access = [line for line in captured.lines if line["logger"] == "rdv.access"]
    assert access == [
        {
            "time": access[0]["time"],
            "level": "INFO",
            "logger": "rdv.access",
            "message": "request",
            "request_id": "lb-req-0123456789",
            "view": "healthz",
            "method": "GET",
            "status": 200,
            "duration_ms": access[0]["duration_ms"],
        }
    ]


def test_the_request_id_travels_in_the_task_message_headers(settings):
    """A real publish to Redis (not eager): the message carries the id of the request that sent it."""
    queue = "rdv-test-request-id"
    import redis

    broker = redis.Redis.from_url(settings.CELERY_BROKER_URL)
    broker.delete(queue)
    eager = celery_app.conf.task_always_eager
    celery_app.conf.task_always_eager = False
    token = request_id_var.set("req-from-the-web-123")
    try:
        _log_inside_a_task.apply_async(queue=queue)
    finally:
        request_id_var.reset(token)
        celery_app.conf.task_always_eager = eager
    raw = broker.lpop(queue)
    broker.delete(queue)
    assert raw is not None
    assert json.loads(raw)["headers"]["request_id"] == "req-from-the-web-123"


def test_a_task_logs_with_the_request_id_from_its_headers(captured):
    _log_inside_a_task.apply(headers={"request_id": "req-from-the-web-456"})
    inside = [line for line in captured.lines if line["message"] == "inside the task"]
    assert [line["request_id"] for line in inside] == ["req-from-the-web-456"]
    assert request_id_var.get() == ""  # reset after the task


def test_a_task_run_inline_during_a_request_keeps_the_requests_id(captured, citizen, slot):
    # The demo and the tests run tasks inline (eager): the booking's e-mail task logs under the
    # booking request's id.
    token = request_id_var.set("req-inline-0000001")
    try:
        _log_inside_a_task.delay()
    finally:
        request_id_var.reset(token)
    assert [line["request_id"] for line in captured.lines if line["message"] == "inside the task"] == [
        "req-inline-0000001"
    ]


def test_djangos_own_request_records_carry_the_request_id_and_the_route_not_the_path(captured):
    response = Client().get(
        "/annulation/not-a-valid-token-but-could-be/", HTTP_X_REQUEST_ID="req-404-000000001"
    )
    assert response.status_code == 404
    lines = [line for line in captured.lines if line["logger"] == "django.request"]
    assert lines and all(line["request_id"] == "req-404-000000001" for line in lines)
    assert all("could-be" not in json.dumps(line) for line in lines)
    assert lines[0]["message"] == "Not Found: booking:cancel_link"


def test_scrub_removes_what_looks_like_a_nam_an_email_or_a_phone_number():
    text = (
        "Key (nam)=(GAGJ 8553 1401) exists; also GAGJ85531401, julie.gagnon+rdv@example.qc.ca, "
        "514-555-0199, (438) 555 0100, +1 819 555 0123; appointment 42, slot 1234"
    )
    assert scrub(text) == (
        "Key (nam)=([nam]) exists; also [nam], [email], [phone], [phone], [phone]; appointment 42, slot 1234"
    )


def test_a_record_with_personal_data_is_written_scrubbed():
    record = logging.LogRecord("x", logging.ERROR, __file__, 1, "duplicate %s", ("GAGJ85531401",), None)
    record.detail = "write to julie@example.org"
    line = json.loads(JsonFormatter().format(record))
    assert line["message"] == "duplicate [nam]"
    assert line["detail"] == "write to [email]"


def test_booking_and_cancelling_on_the_pages_and_the_api_logs_no_personal_data(
    captured, django_capture_on_commit_callbacks
):
    FsaFactory()
    citizen = CitizenFactory(
        first_name="Zéphirine",
        last_name="Quimperlé",
        birth_date=date(1979, 11, 23),
        email="zephirine.quimperle@example.org",
        mobile="514-555-0199",
    )
    pages = Client()
    # A failed identification first (a typo in the name), then the right one.
    assert pages.post("/identification/", identify_payload(citizen, first_name="Zéphirin")).status_code == 400
    assert pages.post("/identification/", identify_payload(citizen)).status_code == 302
    slot = SlotFactory()
    pages.get(reverse("booking:search") + "?reason=follow_up&path=near&radius_km=25&sort=soonest")
    pages.post(reverse("booking:hold", args=[slot.pk]), {"reason": Reason.FOLLOW_UP})
    hold_token = pages.get(reverse("booking:confirm", args=[slot.pk])).context["form"].initial["hold_token"]
    with django_capture_on_commit_callbacks(execute=True):
        response = pages.post(
            reverse("booking:confirm", args=[slot.pk]),
            {"reason": Reason.FOLLOW_UP, "email": citizen.email, "language": "fr", "hold_token": hold_token},
        )
    assert response.status_code == 302
    booked = Appointment.objects.get(slot=slot)
    pages.post(reverse("booking:find"), {"reference": booked.reference, "nam": citizen.nam})
    with django_capture_on_commit_callbacks(execute=True):
        pages.post(reverse("booking:cancel", args=[booked.pk]), {"reason": "cannot_attend"})

    api = Client()
    identified = api.post("/api/v1/identify", identify_payload(citizen), content_type="application/json")
    assert identified.status_code == 200
    auth = {"HTTP_AUTHORIZATION": f"Bearer {identified.json()['token']}"}
    other = SlotFactory(role=slot.role)
    hold = api.post("/api/v1/holds", {"slot_id": other.pk}, content_type="application/json", **auth)
    with django_capture_on_commit_callbacks(execute=True):
        made = api.post(
            "/api/v1/appointments",
            {"slot_id": other.pk, "reason": "follow_up", "hold_token": hold.json()["hold_token"]},
            content_type="application/json",
            **auth,
        )
    assert made.status_code == 201
    api.get("/api/v1/appointments", **auth)
    with django_capture_on_commit_callbacks(execute=True):
        cancelled = api.post(
            f"/api/v1/appointments/{made.json()['id']}/cancel",
            {"reason": "cannot_attend"},
            content_type="application/json",
            **auth,
        )
    assert cancelled.status_code == 200
    assert Appointment.objects.filter(status="cancelled_by_citizen").count() == 2

    # The logs did record the journey, each line under a request id...
    views = [line.get("view") for line in captured.lines if line["logger"] == "rdv.access"]
    for view in (
        "booking:identify",
        "booking:confirm",
        "booking:cancel",
        "api:appointments",
        "api:appointment-cancel",
    ):
        assert view in views
    assert all(line["request_id"] for line in captured.lines if line["logger"] == "rdv.access")
    # ...and nothing that names the person, before any scrubbing.
    nam = citizen.nam
    forbidden = [
        nam, f"{nam[:4]} {nam[4:8]} {nam[8:]}", nam.lower(), "Zéphirine", "Quimperlé", "zephirine",
        "quimperle", "514-555-0199", "5145550199", "1979-11-23",
    ]  # fmt: skip
    everything = "\n".join(captured.raw)
    for value in forbidden:
        assert value.lower() not in everything.lower(), value
