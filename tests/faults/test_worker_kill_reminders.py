"""A Celery worker killed with SIGKILL while it sends reminders: after a restart every reminder is
delivered exactly once per idempotency key, none is lost.

Real processes: a private Redis (the broker), Celery workers (prefork, as in production) on the test
database that schedule the reminders from the bookings' outbox events and send them, and a fake SMS
provider (``tests.faults.fake_sms``: the far end of the wire, which keeps its books in files and,
like real providers, delivers a key it already accepted only once). The worker is killed at two
deterministic moments, each a call of the provider that waits to be killed:

1. *after* the provider accepted the 3rd message, before the worker recorded it as sent: the
   residual case of docs/reminders.md. The restarted sender sends it again with the same key; the
   provider does not deliver it twice (it reached the provider twice: counted below);
2. *before* the provider accepted a message: the message was claimed but never sent; the claim
   times out and the next worker sends it.
"""

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from django.utils import timezone

from booking.models import Appointment, Reminder
from booking.reminders import reminders_schedule
from booking.services import appointment_book
from clinics.models import Clinic
from tests.factories import CitizenFactory, ClinicFactory, RoleFactory, SlotFactory

from . import fake_sms
from .conftest import RedisServer, broker, celery, django_env, test_database_url, wait_until, worker_ready

pytestmark = pytest.mark.django_db(transaction=True)

REMINDERS = 8
PROVIDER = "tests.faults.fake_sms.FileSmsProvider"
CLAIM_TIMEOUT = 3  # seconds: a claim older than this is taken over (600 in production)


def daytime_zone() -> str:
    """A fixed-offset zone where it is now mid-day, so that the 8:00–21:00 sending window is open
    whatever time the tests run (the workers read the real clock)."""
    now = datetime.now(UTC)
    for hours in range(-12, 15):
        name = f"Etc/GMT{-hours:+d}"  # POSIX sign: Etc/GMT-3 is UTC+3
        if 10 <= now.astimezone(ZoneInfo(name)).hour <= 17:
            return name
    raise AssertionError("no zone at mid-day")


def book_appointments() -> Clinic:
    """Eight appointments starting in 5 hours, booked (as far as reminders know) two days ago."""
    reminders_schedule()  # the first run: nothing booked yet; from now on the outbox drives them
    role = RoleFactory(clinic=ClinicFactory(time_zone=daytime_zone()))
    now = timezone.now()
    for n in range(REMINDERS):
        start = (now + timedelta(hours=5, minutes=20 * n)).replace(second=0, microsecond=0)
        slot = SlotFactory(role=role, start=start, end=start + timedelta(minutes=15))
        citizen = CitizenFactory(email="", mobile=f"514 555-02{n:02d}")
        appointment_book(slot_id=slot.pk, citizen=citizen, reason="follow_up", channel="portal")
    # Booked two days ago: their day-before reminders are due now.
    Appointment.objects.filter(clinic=role.clinic).update(created_at=now - timedelta(days=2))
    assert not Reminder.objects.exists()
    return role.clinic


def states() -> dict[str, int]:
    result: dict[str, int] = {}
    for state in Reminder.objects.values_list("state", flat=True):
        result[state] = result.get(state, 0) + 1
    return result


def test_reminders_are_sent_exactly_once_across_killed_workers(tmp_path, processes):
    book_appointments()
    redis_server = RedisServer(tmp_path / "redis")
    redis_server.start()
    processes.append(redis_server)
    provider = tmp_path / "provider"
    provider.mkdir()
    blocked = provider / "blocked"
    client = broker(redis_server.url)

    def worker(name: str, block: str):
        env = django_env(
            DATABASE_URL=test_database_url(),
            REDIS_URL=redis_server.url,
            SMS_BACKEND=PROVIDER,
            FAKE_SMS_DIR=str(provider),
            FAKE_SMS_BLOCK=block,
            REMINDER_SENDING_TIMEOUT_SECONDS=str(CLAIM_TIMEOUT),
        )
        process = celery(tmp_path, env, "worker", name=name, pool="prefork")
        process.start()
        processes.append(process)
        worker_ready(process)
        return process

    def send_until(predicate, what: str) -> None:
        """As beat does (every minute in production): run the sender again until ``predicate``."""

        def poke():
            client.send_task("booking.tasks.reminders_send")
            return predicate()

        wait_until(poke, timeout=60, interval=1, what=what)

    def blocks() -> int:
        return len(blocked.read_text().splitlines()) if blocked.exists() else 0

    # 0. The worker schedules them from the bookings' outbox events, as beat has it do every minute.
    first = worker("worker-1", "3:after")
    client.send_task("booking.tasks.reminders_schedule")
    wait_until(lambda: Reminder.objects.count() == REMINDERS, timeout=30, what="the reminders are scheduled")
    reminders = list(Reminder.objects.order_by("due_at"))
    now = timezone.now()
    assert all(r.state == "pending" and r.due_at <= now and r.channel == "sms" for r in reminders)

    # 1. Killed after the provider accepted the 3rd message, before it was recorded as sent.
    send_until(lambda: blocks() == 1, "the first worker reaches the 3rd message")
    assert states() == {"sent": 2, "sending": REMINDERS - 2}  # one batch claimed, two recorded
    first.kill()
    assert len(fake_sms.accepted_messages(provider)) == 3

    # 2. Killed before the provider accepted a message: it was claimed, never sent.
    second = worker("worker-2", "2:before")
    send_until(lambda: blocks() == 2, "the second worker takes the claims over and reaches a message")
    assert states() == {"sent": 3, "sending": REMINDERS - 3}
    second.kill()
    assert len(fake_sms.accepted_messages(provider)) == 3

    # 3. A worker that is not killed: every reminder ends sent.
    worker("worker-3", "")
    send_until(lambda: states() == {"sent": REMINDERS}, "every reminder is sent")

    accepted = fake_sms.accepted_messages(provider)
    tried = fake_sms.attempts(provider)
    keys = sorted(r.idempotency_key for r in reminders)
    # Exactly once per idempotency key, and so exactly one message on each citizen's phone.
    assert sorted(key for _, key, _ in accepted) == keys
    assert sorted(to for _, _, to in accepted) == sorted(f"+151455502{n:02d}" for n in range(REMINDERS))
    # The residual case: the 3rd message reached the provider twice (accepted, then the worker died
    # before recording it), with the same key; the 4th reached it twice (never accepted the first time).
    by_key = {key: sum(1 for k, _ in tried if k == key) for key in keys}
    ordered = [by_key[r.idempotency_key] for r in reminders]
    assert ordered == [1, 1, 2, 2, 1, 1, 1, 1], ordered
    # The provider id recorded is the one of the message the provider accepted (the first attempt).
    provider_ids = {key: provider_id for provider_id, key, _ in accepted}
    for reminder in Reminder.objects.all():
        assert reminder.provider_id == provider_ids[reminder.idempotency_key]
    attempts = [Reminder.objects.get(pk=r.pk).attempts for r in reminders]
    assert attempts == [1, 1, 2, 3, 3, 3, 3, 3], attempts
    print(f"reminders: {REMINDERS} delivered once each, {len(tried)} calls reached the provider")
