"""Concurrent audit writers keep each chain one line: the advisory lock serializes the appends."""

import pytest

from clinics.audit import audit_staff_read
from clinics.audit_chain import chain_for_model, chain_verify
from clinics.models import StaffAuditEvent
from tests.factories import ClinicFactory, UserFactory

pytestmark = pytest.mark.django_db(transaction=True)


def test_sixteen_writers_appending_at_once_leave_one_intact_chain(concurrently):
    clinic = ClinicFactory()
    users = UserFactory.create_batch(16)

    def writer(user):
        def write() -> None:
            for batch in range(10):
                audit_staff_read(user=user, clinic=clinic, purpose="agenda", citizen_ids=[batch, batch + 100])

        return write

    outcomes = concurrently([writer(user) for user in users])
    assert not outcomes.errors_by_type()
    rows = list(StaffAuditEvent.objects.order_by("pk"))
    assert len(rows) == 16 * 10 * 2
    # One line: no two rows claim the same predecessor (a fork is what a lost race looks like).
    assert len({row.prev_hash for row in rows}) == len(rows)
    report = chain_verify(chain_for_model(StaffAuditEvent))
    assert report.ok and report.rows_checked == len(rows)
