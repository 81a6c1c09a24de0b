"""The audit logs are hash chains (clinics.audit_chain): a row changed or deleted in SQL is found,
at the right row, by the selector, the command and the board's page."""

import io

import pytest
from django.core.management import CommandError, call_command
from django.db import connection
from django.utils import timezone

from clinics.apps import STAFF_CHAIN_FIELDS
from clinics.audit import audit_staff_read
from clinics.audit_chain import GENESIS, chain_for_model, chain_relink, chain_verify, link_hash
from clinics.models import StaffAuditEvent
from sync.audit import audit_record
from sync.models import AuditEvent, EmrClient
from tests.clinics.conftest import sign_in
from tests.factories import CitizenFactory
from tests.sync.conftest import persona_a

__all__ = ["persona_a"]  # the fixture, used below

STAFF = chain_for_model(StaffAuditEvent)
EMR = chain_for_model(AuditEvent)


@pytest.fixture
def staff_rows(world):
    citizens = CitizenFactory.create_batch(4)
    for citizen in citizens:
        audit_staff_read(
            user=world.admin_a, clinic=world.clinic_a, purpose="agenda", citizen_ids=[citizen.pk]
        )
    audit_staff_read(
        user=world.admin_a, clinic=world.clinic_a, purpose="day-sheet", citizen_ids=[c.pk for c in citizens]
    )
    return list(StaffAuditEvent.objects.order_by("pk"))


def sql(statement: str, *params) -> None:
    with connection.cursor() as cursor:
        cursor.execute(statement, params)


def test_rows_written_by_the_audit_helpers_form_one_intact_chain(staff_rows):
    assert len(staff_rows) == 8
    assert staff_rows[0].prev_hash == GENESIS
    assert all(b.prev_hash == a.chain_hash for a, b in zip(staff_rows, staff_rows[1:], strict=False))
    report = chain_verify(STAFF)
    assert report.ok and report.rows_checked == 8
    assert (report.head_id, report.head_hash) == (staff_rows[-1].pk, staff_rows[-1].chain_hash)


def test_the_emr_log_is_a_chain_too(persona_a):
    client = EmrClient.objects.get(application__client_id=persona_a.client_id)
    audit_record(emr_client=client, action="read", resource_type="Appointment", ids=[7, 8])
    audit_record(emr_client=client, action="feed", resource_type="Appointment", ids=[9])
    assert chain_verify(EMR).rows_checked == 3 and chain_verify(EMR).ok
    sql("UPDATE sync_auditevent SET action = 'search' WHERE resource_id = 8")
    report = chain_verify(EMR)
    assert (report.broken_id, report.problem) == (AuditEvent.objects.get(resource_id=8).pk, "changed")


def test_an_empty_log_is_intact(db):
    report = chain_verify(STAFF)
    assert report.ok and report.rows_checked == 0 and report.head_hash == GENESIS


@pytest.mark.parametrize(
    ("statement", "problem"),
    [
        ("UPDATE clinics_staffauditevent SET resource_id = resource_id + 1 WHERE id = %s", "changed"),
        ("UPDATE clinics_staffauditevent SET purpose = 'phone' WHERE id = %s", "changed"),
        ("UPDATE clinics_staffauditevent SET at = at - interval '1 day' WHERE id = %s", "changed"),
        ("UPDATE clinics_staffauditevent SET clinic_id = NULL WHERE id = %s", "changed"),
    ],
)
def test_a_row_changed_in_sql_is_the_first_broken_link(staff_rows, statement, problem):
    victim = staff_rows[3]
    sql(statement, victim.pk)
    report = chain_verify(STAFF)
    assert (report.broken_id, report.problem, report.rows_checked) == (victim.pk, problem, 3)
    assert report.head_hash == staff_rows[2].chain_hash


def test_a_row_deleted_in_sql_breaks_the_link_of_the_next_one(staff_rows):
    sql("DELETE FROM clinics_staffauditevent WHERE id = %s", staff_rows[2].pk)
    report = chain_verify(STAFF)
    assert (report.broken_id, report.problem) == (staff_rows[3].pk, "unlinked")


def test_a_changed_row_whose_hash_was_recomputed_breaks_the_next_link(staff_rows):
    victim = StaffAuditEvent.objects.get(pk=staff_rows[1].pk)
    victim.resource_id += 1000
    chain = chain_for_model(StaffAuditEvent)
    sql(
        "UPDATE clinics_staffauditevent SET resource_id = %s, chain_hash = %s WHERE id = %s",
        victim.resource_id,
        link_hash(victim.prev_hash, victim, chain.fields),
        victim.pk,
    )
    report = chain_verify(STAFF)
    assert (report.broken_id, report.problem) == (staff_rows[2].pk, "unlinked")


def test_only_the_last_rows_deleted_leave_a_shorter_intact_chain_with_another_head(staff_rows):
    # Documented limit: truncating the tail is seen only by comparing with a head noted elsewhere.
    sql("DELETE FROM clinics_staffauditevent WHERE id = %s", staff_rows[-1].pk)
    report = chain_verify(STAFF)
    assert report.ok and report.head_hash != staff_rows[-1].chain_hash


def test_the_migration_links_rows_written_before_the_chain_existed(world):
    StaffAuditEvent.objects.bulk_create(
        StaffAuditEvent(
            user=world.admin_a, resource_type="Citizen", resource_id=i, purpose="agenda", at=timezone.now()
        )
        for i in range(5)
    )
    assert not chain_verify(STAFF).ok
    assert chain_relink(StaffAuditEvent, STAFF_CHAIN_FIELDS) == 5
    assert chain_verify(STAFF).ok


def test_the_command_reports_each_chain_and_fails_on_a_broken_one(staff_rows):
    out = io.StringIO()
    call_command("audit_verify", stdout=out)
    assert (
        f"staff: OK, 8 rows; head row {staff_rows[-1].pk} hash {staff_rows[-1].chain_hash}" in out.getvalue()
    )
    assert "emr: OK, 0 rows" in out.getvalue()
    sql("DELETE FROM clinics_staffauditevent WHERE id = %s", staff_rows[5].pk)
    out = io.StringIO()
    with pytest.raises(CommandError) as failure:
        call_command("audit_verify", "--chain", "staff", stdout=out)
    assert failure.value.returncode == 1
    assert f"staff: BROKEN at row {staff_rows[6].pk}" in out.getvalue()


def test_the_board_reads_the_verdict_and_clinic_staff_cannot(staff_rows, world, client):
    sign_in(client, world.board_admin)
    page = client.get("/clinique/registre/")
    assert page.status_code == 200
    assert "Intact" in page.content.decode() and staff_rows[-1].chain_hash in page.content.decode()
    sql("UPDATE clinics_staffauditevent SET user_id = %s WHERE id = %s", world.admin_b.pk, staff_rows[4].pk)
    page = client.get("/clinique/registre/", HTTP_ACCEPT_LANGUAGE="en")
    text = page.content.decode()
    assert f"The first broken link is row {staff_rows[4].pk}." in text, text
    assert "it was changed after it was written" in text
    home = client.get("/clinique/", HTTP_ACCEPT_LANGUAGE="en")
    assert b"/clinique/registre/" in home.content


def test_clinic_staff_do_not_see_the_audit_page(world, client):
    sign_in(client, world.admin_a)
    assert client.get("/clinique/registre/").status_code == 404
    assert b"/clinique/registre/" not in client.get("/clinique/").content
