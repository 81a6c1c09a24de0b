"""Redis stopped while citizens book: the bookings succeed (PostgreSQL is the truth), and their
e-mails go out once Redis is back, each exactly once.

Real processes: a private Redis, the web app under gunicorn, a Celery worker and beat. Redis is the
broker, the cache and the rate-limit store; while it is down the rate limits fail open, the
on-commit task cannot be published (logged, the request still answers), and the outbox row stays
``pending``; once Redis is back, beat's sweep hands the pending rows to the worker.
"""

import time
from email import message_from_bytes

import pytest

from booking.models import Appointment, OutboxEvent
from tests.conftest import identify_payload
from tests.factories import CitizenFactory, SlotFactory

from .conftest import RedisServer, WebApp, celery, django_env, test_database_url, wait_until

pytestmark = pytest.mark.django_db(transaction=True)

CITIZENS = 6


def book_through_the_api(web: WebApp, citizen, slot) -> tuple[list[int], float]:
    started = time.monotonic()
    identified = web.post("/api/v1/identify", json=identify_payload(citizen))
    token = identified.json().get("token", "") if identified.status_code == 200 else ""
    auth = {"Authorization": f"Bearer {token}"}
    hold = web.post("/api/v1/holds", json={"slot_id": slot.pk}, headers=auth)
    hold_token = hold.json().get("hold_token", "") if hold.status_code == 201 else ""
    booked = web.post(
        "/api/v1/appointments",
        json={"slot_id": slot.pk, "hold_token": hold_token, "reason": "follow_up"},
        headers=auth,
    )
    return [identified.status_code, hold.status_code, booked.status_code], time.monotonic() - started


def mail_recipients(folder) -> list[str]:
    recipients = []
    for path in sorted(folder.iterdir()):
        # The file backend appends each message followed by a line of dashes.
        for chunk in path.read_bytes().split(b"-" * 79 + b"\n"):
            if chunk.strip():
                recipients.append(message_from_bytes(chunk)["To"])
    return recipients


def test_citizens_book_while_redis_is_down_and_get_their_e_mail_once_it_is_back(tmp_path, processes):
    redis_server = RedisServer(tmp_path / "redis")
    redis_server.start()
    processes.append(redis_server)
    mail = tmp_path / "mail"
    mail.mkdir()
    env = django_env(DATABASE_URL=test_database_url(), REDIS_URL=redis_server.url, FAULT_EMAIL_DIR=str(mail))
    web = WebApp(tmp_path, env)
    web.start()
    processes.append(web)
    worker, beat = celery(tmp_path, env, "worker"), celery(tmp_path, env, "beat")
    for each in (worker, beat):
        each.start()
        processes.append(each)
    wait_until(lambda: "ready" in worker.output(), timeout=60, what="the Celery worker is ready")

    citizens = [CitizenFactory(email=f"panne{i}@example.org") for i in range(CITIZENS)]
    slots = [SlotFactory() for _ in citizens]

    redis_server.stop()
    results = [
        book_through_the_api(web, citizen, slot) for citizen, slot in zip(citizens, slots, strict=True)
    ]

    assert [statuses for statuses, _ in results] == [[200, 201, 201]] * CITIZENS, results
    slowest = max(seconds for _, seconds in results)
    assert slowest < 4, f"a booking took {slowest:.1f} s with Redis down"
    assert Appointment.objects.filter(citizen__in=citizens, status="booked").count() == CITIZENS
    pending = OutboxEvent.objects.filter(kind="appointment.booked", notify_state="pending")
    assert pending.count() == CITIZENS
    time.sleep(3)  # beat's sweep is due every 2 s: nothing can be sent while the broker is down
    assert list(mail.iterdir()) == []

    redis_server.start()
    wait_until(
        lambda: not OutboxEvent.objects.filter(notify_state="pending").exists(),
        timeout=90,
        what="the pending notifications are sent after Redis is back",
    )
    assert OutboxEvent.objects.filter(kind="appointment.booked", notify_state="sent").count() == CITIZENS
    time.sleep(3)  # a few more sweeps: nothing is sent twice
    assert sorted(mail_recipients(mail)) == sorted(c.email for c in citizens)
    print(f"bookings with Redis down: slowest {slowest:.2f} s")
