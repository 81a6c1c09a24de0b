"""Two publishes of overlapping templates for one practitioner at the same moment: one wins entirely,
the other creates nothing (PostgreSQL, real threads, committed rows)."""

import threading
from datetime import datetime, timedelta

import pytest
from django.db import connection, connections

from booking import errors
from booking.models import Audience, Modality, OutboxEvent, Reason, Slot
from booking.services import slots_publish
from tests.factories import NOW, ClinicFactory, RoleFactory, UserFactory

pytestmark = pytest.mark.django_db(transaction=True)


def _race(calls):
    barrier = threading.Barrier(len(calls))
    outcomes: list[object] = [None] * len(calls)

    def worker(index, call):
        try:
            connection.ensure_connection()
            barrier.wait(timeout=30)
            outcomes[index] = call()
        except BaseException as exc:  # noqa: BLE001 - inspected below
            outcomes[index] = exc
        finally:
            connections.close_all()

    threads = [threading.Thread(target=worker, args=(i, c), daemon=True) for i, c in enumerate(calls)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert not any(t.is_alive() for t in threads)
    return outcomes


def _template(role, first: datetime, count: int, user):
    starts = [first + timedelta(minutes=15 * i) for i in range(count)]
    return lambda: slots_publish(
        role=role,
        starts_local=starts,
        minutes=15,
        reasons=[Reason.FOLLOW_UP],
        audience=Audience.PUBLIC,
        modality=Modality.IN_PERSON,
        created_by=user,
        now=NOW,
    )


@pytest.mark.parametrize("run", range(3))
def test_two_overlapping_templates_published_at_once_one_wins_entirely(run):
    role = RoleFactory()
    elsewhere = RoleFactory(practitioner=role.practitioner, clinic=ClinicFactory())
    user = UserFactory()
    # Mondays 08:00–12:00 at one clinic, 10:00–14:00 at another: 08:00–10:00 and 10:00–12:00 clash.
    outcomes = _race(
        [
            _template(role, datetime(2027, 3, 15, 8, 0), 16, user),
            _template(elsewhere, datetime(2027, 3, 15, 10, 0), 16, user),
        ]
    )

    winners = [o for o in outcomes if isinstance(o, list)]
    losers = [o for o in outcomes if isinstance(o, BaseException)]
    assert len(winners) == 1 and len(losers) == 1, outcomes
    assert isinstance(losers[0], errors.PractitionerOverlap)
    assert losers[0].extra.get("local_start")
    created = Slot.objects.filter(practitioner=role.practitioner)
    assert created.count() == 16
    assert len({s.role_id for s in created}) == 1  # all from the winner
    assert OutboxEvent.objects.filter(kind="slot.created").count() == 16
