"""The restore drill (ops/restore_drill.sh, docs/backups.md) against the local PostgreSQL: dump the
test database with committed data, restore it into a scratch database, compare row counts, check the
invariants, drop the scratch database."""

import os
import shutil
import subprocess
from pathlib import Path

import pytest
from django.db import connection

from booking.models import Reason, Slot
from booking.services import appointment_book, appointment_cancel
from sync import feed
from tests.factories import CitizenFactory, SlotFactory

ROOT = Path(__file__).resolve().parents[2]
DRILL = ROOT / "ops" / "restore_drill.sh"
BASH = str(shutil.which("bash"))

pytestmark = pytest.mark.django_db(transaction=True)


def database_url() -> str:
    s = connection.settings_dict
    auth = s["USER"] + (f":{s['PASSWORD']}" if s["PASSWORD"] else "")
    return f"postgres://{auth}@{s['HOST'] or '127.0.0.1'}:{s['PORT'] or 5432}/{s['NAME']}"


def run_drill(*args: str) -> subprocess.CompletedProcess:
    connection.close()  # the dump must not wait for this test's session
    return subprocess.run(
        [BASH, str(DRILL), *args], capture_output=True, text=True, timeout=300, env={**os.environ}
    )


def scratch_databases() -> list[str]:
    with connection.cursor() as cursor:
        cursor.execute("SELECT datname FROM pg_database WHERE datname LIKE 'rdv_restore_drill_%%'")
        return [row[0] for row in cursor.fetchall()]


def some_bookings() -> None:
    citizens = [CitizenFactory(), CitizenFactory(first_name="Paul", last_name="Roy", sex="M")]
    slots = [SlotFactory() for _ in range(4)]
    first = appointment_book(
        slot_id=slots[0].pk, citizen=citizens[0], reason=Reason.FOLLOW_UP, channel="portal"
    )
    appointment_book(slot_id=slots[1].pk, citizen=citizens[1], reason=Reason.URGENT, channel="api")
    appointment_cancel(appointment=first, reason="cannot_attend")
    appointment_book(slot_id=slots[0].pk, citizen=citizens[1], reason=Reason.FOLLOW_UP, channel="agenda")
    feed.feed_relay()


def test_the_drill_restores_every_row_and_the_invariants_hold():
    some_bookings()
    before = scratch_databases()
    result = run_drill(database_url())
    assert result.returncode == 0, result.stdout + result.stderr
    out = result.stdout
    assert "row counts: identical to the source" in out
    assert "restore drill: OK" in out
    assert "all invariants hold" in result.stderr  # psql prints NOTICEs on stderr
    restored = next(line for line in out.splitlines() if line.startswith("restored:"))
    assert int(restored.split()[3]) > 0  # "restored: N tables, M rows"
    assert scratch_databases() == before  # the scratch database is gone


def test_a_restore_that_breaks_an_invariant_fails_the_drill_and_still_drops_the_scratch_database():
    some_bookings()
    # A booked slot with no appointment: what a restore mixing two points in time could produce.
    # Written directly on purpose: no service would ever do it.
    lonely = SlotFactory()
    Slot.objects.filter(pk=lonely.pk).update(status=Slot.Status.BOOKED)
    before = scratch_databases()
    result = run_drill(database_url())
    assert result.returncode != 0
    assert "1 booked slots without exactly one occupying appointment" in result.stderr
    assert scratch_databases() == before


def test_an_existing_dump_file_can_be_drilled(tmp_path):
    some_bookings()
    dump = tmp_path / "nightly.dump"
    connection.close()
    subprocess.run(
        [str(shutil.which("pg_dump")), "--format=custom", f"--file={dump}", database_url()],
        check=True,
        timeout=120,
    )
    result = run_drill("--dump", str(dump), database_url())
    assert result.returncode == 0, result.stdout + result.stderr
    assert "restore drill: OK" in result.stdout
    assert "row counts" not in result.stdout  # no source counts to compare with a dump file
