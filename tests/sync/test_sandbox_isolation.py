"""Sandbox and production never meet, both ways (docs/vendors.md).

A vendor's sandbox is made the real way (request, board approval, secret shown once); production is
EMR client A (clinic A, ClinIQ) from the sync personas. Sandbox clinics must not appear in public
search, booking, open data, provincial figures or the help desk; a sandbox client gets exactly what
another clinic's client gets on production data (404 on reads and writes), and the reverse.
"""

import json
from dataclasses import dataclass
from datetime import timedelta

import pytest
from django.test import Client
from django.utils import timezone

from booking import errors
from booking.helpdesk import helpdesk_lookup
from booking.models import Appointment, Reason, Slot, WeekStat
from booking.reporting.aggregate import reporting_aggregate
from booking.reporting.opendata import opendata_publish
from booking.selectors import Path, SlotQuery, slot_search
from booking.services import appointment_book, slot_hold
from booking.waitlist.offers import waitlist_offer_next
from booking.waitlist.services import waitlist_request_create
from citizens.registry import TableRegistry
from clinics.models import PractitionerRole
from sync import vendors
from sync.models import EmrClient, EmrVendor
from sync.selectors import clinic_ids_for_emr_client
from tests.clinics.conftest import make_account
from tests.conftest import identify_payload
from tests.factories import CitizenFactory, FsaFactory, SlotFactory

from .conftest import FHIR, EmrPersona, create_client, get_token
from .test_slot_writes import _send, slot_body


@dataclass
class Sandbox:
    vendor: EmrVendor
    persona: EmrPersona
    fhir: Client
    slot: Slot
    synthetic: object


def _open_sandbox(company: str, product: str) -> Sandbox:
    board = make_account()
    from clinics.models import BoardRole

    BoardRole.objects.create(user=board, role=BoardRole.Role.BOARD_ADMIN)
    vendor = vendors.vendor_register(
        user=make_account(),
        company=company,
        product_name=product,
        technical_email="t@x.example",
        language="fr",
    )
    return sandbox_for(vendors.vendor_approve(vendor_id=vendor.pk, by=board))


def sandbox_for(vendor: EmrVendor) -> Sandbox:
    """An approved vendor's sandbox, with its first secret and a token (the conformance tests' EMR)."""
    client_id, secret, _until = vendors.vendor_credentials_issue(vendor=vendor)
    clinic = vendor.sandbox_clinics.order_by("pk").first()
    role = PractitionerRole.objects.filter(clinic=clinic).order_by("pk").first()
    persona = EmrPersona(client_id, secret, clinic, role)
    fhir = Client()
    fhir.defaults["HTTP_AUTHORIZATION"] = f"Bearer {get_token(Client(), persona)}"
    return Sandbox(
        vendor=vendor,
        persona=persona,
        fhir=fhir,
        # A fixed time, clear of what the tests publish (days 3 to 5): the factory's default start
        # moves with every slot created before in the run, and once fell on a conformance test's slot.
        slot=SlotFactory(
            role=role,
            external_id="SB-1",
            start=(timezone.now() + timedelta(days=6)).replace(hour=15, minute=0, second=0, microsecond=0),
        ),
        synthetic=vendor.synthetic_citizens.order_by("pk").first(),
    )


@pytest.fixture(autouse=True)
def _generous_rate(settings, tmp_path):
    settings.SYNC_API_RATE = "100000/m"
    settings.OPENDATA_ROOT = tmp_path / "opendata"


@pytest.fixture
def sandbox(db):
    return _open_sandbox("Logiciels Boréal inc.", "BorealDME")


def _fhir(persona: EmrPersona) -> Client:
    client = Client()
    client.defaults["HTTP_AUTHORIZATION"] = f"Bearer {get_token(Client(), persona)}"
    return client


# --- the EMR API, both ways ------------------------------------------------------------------------------


def test_a_sandbox_client_acts_for_its_sandbox_clinics_only(sandbox, persona_a):
    client = EmrClient.objects.get(application__client_id=sandbox.persona.client_id)
    assert clinic_ids_for_emr_client(client) == set(
        sandbox.vendor.sandbox_clinics.values_list("pk", flat=True)
    )
    production = EmrClient.objects.get(application__client_id=persona_a.client_id)
    assert clinic_ids_for_emr_client(production) == {persona_a.clinic.pk}


def test_sandbox_credentials_read_sandbox_data_and_get_404_on_production_data(sandbox, persona_a, slot_a):
    fhir = sandbox.fhir
    assert fhir.get(f"{FHIR}Location/{sandbox.persona.clinic.pk}").status_code == 200
    assert fhir.get(f"{FHIR}Slot/{sandbox.slot.pk}").status_code == 200
    assert fhir.get(f"{FHIR}Location/{persona_a.clinic.pk}").status_code == 404
    assert fhir.get(f"{FHIR}Slot/{slot_a.pk}").status_code == 404
    assert fhir.get(f"{FHIR}PractitionerRole/{persona_a.role.pk}").status_code == 404
    ids = {e["resource"]["id"] for e in fhir.get(f"{FHIR}Slot").json().get("entry", [])}
    assert ids == {str(sandbox.slot.pk)}


def test_sandbox_credentials_write_production_slots_exactly_as_another_clinics_client(
    sandbox, persona_a, persona_b, slot_a
):
    other_clinic = _fhir(persona_b)
    for client in (sandbox.fhir, other_clinic):
        assert _send(client, "put", f"{FHIR}Slot/{slot_a.pk}", slot_body(persona_a)).status_code == 404
        assert client.delete(f"{FHIR}Slot/{slot_a.pk}").status_code == 404
    created = [
        _send(client, "post", f"{FHIR}Slot", slot_body(persona_a)).status_code
        for client in (sandbox.fhir, other_clinic)
    ]
    assert created[0] == created[1] == 422  # not a schedule of your clinics
    slot_a.refresh_from_db()
    assert (slot_a.status, slot_a.version) == (Slot.Status.FREE, 1)
    assert not Slot.objects.filter(role=persona_a.role).exclude(pk=slot_a.pk).exists()


def test_production_credentials_cannot_touch_a_sandbox(sandbox, fhir_a, persona_a):
    assert fhir_a.get(f"{FHIR}Location/{sandbox.persona.clinic.pk}").status_code == 404
    assert fhir_a.get(f"{FHIR}Slot/{sandbox.slot.pk}").status_code == 404
    assert _send(fhir_a, "put", f"{FHIR}Slot/{sandbox.slot.pk}", slot_body(persona_a)).status_code == 404
    assert _send(fhir_a, "post", f"{FHIR}Slot", slot_body(sandbox.persona)).status_code == 422
    ids = {e["resource"]["id"] for e in fhir_a.get(f"{FHIR}Location").json().get("entry", [])}
    assert str(sandbox.persona.clinic.pk) not in ids


def test_a_production_client_of_the_same_product_never_sees_the_sandbox_nor_the_reverse(sandbox, db):
    """The vendor's product goes live: a certified version, a real clinic using it. Its production
    client has the real clinic only; the sandbox client still has its sandbox only."""
    from tests.factories import ClinicFactory

    real = ClinicFactory(emr_product="BorealDME")
    client_id, _secret = create_client("Logiciels Boréal inc.|BorealDME", real, version="5.0")
    production = EmrClient.objects.get(application__client_id=client_id)
    sandbox_client = EmrClient.objects.get(application__client_id=sandbox.persona.client_id)

    assert clinic_ids_for_emr_client(production) == {real.pk}
    assert real.pk not in clinic_ids_for_emr_client(sandbox_client)
    assert clinic_ids_for_emr_client(sandbox_client) == set(
        sandbox.vendor.sandbox_clinics.values_list("pk", flat=True)
    )


def test_one_vendors_sandbox_is_closed_to_another_vendors_sandbox(sandbox, db):
    other = _open_sandbox("Autre éditeur", "AutreDME")
    assert other.fhir.get(f"{FHIR}Location/{sandbox.persona.clinic.pk}").status_code == 404
    assert other.fhir.get(f"{FHIR}Slot/{sandbox.slot.pk}").status_code == 404
    assert sandbox.fhir.get(f"{FHIR}Slot/{other.slot.pk}").status_code == 404


# --- the citizen side ------------------------------------------------------------------------------------


def test_public_search_never_lists_sandbox_slots(sandbox, slot_a):
    FsaFactory()  # H2X, a few kilometres from both clinics
    citizen = CitizenFactory()
    for sort in ("soonest", "nearest"):
        result = slot_search(
            citizen=citizen, query=SlotQuery(path=Path.NEAR, fsa="H2X", radius_km=50, sort=sort)
        )
        ids = {item.slot.pk for item in result.items}
        assert slot_a.pk in ids and sandbox.slot.pk not in ids


def test_a_real_citizen_cannot_hold_or_book_a_sandbox_slot_by_its_id(sandbox):
    citizen = CitizenFactory()
    with pytest.raises(errors.SlotNotFound):
        slot_hold(slot_id=sandbox.slot.pk, citizen=citizen)
    with pytest.raises(errors.SlotNotFound):
        appointment_book(slot_id=sandbox.slot.pk, citizen=citizen, reason=Reason.FOLLOW_UP, channel="portal")
    portal = Client()
    assert portal.post("/identification/", identify_payload(citizen)).status_code == 302
    assert portal.post(f"/plages/{sandbox.slot.pk}/retenir/", {"reason": "follow_up"}).status_code == 404
    assert portal.get(f"/plages/{sandbox.slot.pk}/confirmer/").status_code == 404
    sandbox.slot.refresh_from_db()
    assert (sandbox.slot.status, sandbox.slot.holder_id) == (Slot.Status.FREE, None)


def test_a_synthetic_citizen_books_in_its_sandbox_only_and_cannot_identify_on_the_portal(sandbox, slot_a):
    booked = appointment_book(
        slot_id=sandbox.slot.pk, citizen=sandbox.synthetic, reason=Reason.FOLLOW_UP, channel="portal"
    )
    assert booked.clinic_id == sandbox.persona.clinic.pk
    with pytest.raises(errors.SlotNotFound):
        slot_hold(slot_id=slot_a.pk, citizen=sandbox.synthetic)
    assert TableRegistry().lookup(sandbox.synthetic.nam) is None
    assert TableRegistry().lookup(CitizenFactory().nam) is not None


def test_the_waitlist_never_offers_a_sandbox_slot(sandbox, persona_a):
    FsaFactory()
    today = timezone.localdate()
    waitlist_request_create(
        citizen=CitizenFactory(),
        path="near",
        reason=Reason.FOLLOW_UP,
        date_from=today,
        date_to=today + timedelta(days=10),
        fsa="H2X",
    )
    # Both at noon in Montréal the day after tomorrow, well inside the request's dates.
    start = (timezone.now() + timedelta(days=2)).replace(hour=17, minute=0, second=0, microsecond=0)
    in_sandbox = SlotFactory(role=sandbox.persona.role, start=start)
    assert waitlist_offer_next(slot_id=in_sandbox.pk) is None
    # The same request is offered a production slot at the same time.
    production = SlotFactory(role=persona_a.role, start=start)
    assert waitlist_offer_next(slot_id=production.pk) is not None


# --- figures, open data, help desk -----------------------------------------------------------------------


@pytest.fixture
def sandbox_booking(sandbox):
    return appointment_book(
        slot_id=sandbox.slot.pk, citizen=sandbox.synthetic, reason=Reason.FOLLOW_UP, channel="portal"
    )


def test_provincial_figures_leave_sandbox_clinics_out(sandbox, sandbox_booking, slot_a):
    appointment_book(slot_id=slot_a.pk, citizen=CitizenFactory(), reason=Reason.FOLLOW_UP, channel="portal")
    sandbox_ids = set(sandbox.vendor.sandbox_clinics.values_list("pk", flat=True))
    later = timezone.now() + timedelta(seconds=1)

    for full in (False, True):  # the incremental run (from the outbox) and the full rebuild
        reporting_aggregate(now=later, full=full)
        clinics = set(WeekStat.objects.filter(clinic__isnull=False).values_list("clinic_id", flat=True))
        assert slot_a.clinic_id in clinics and clinics.isdisjoint(sandbox_ids)
        region = WeekStat.objects.get(clinic__isnull=True, region_id=slot_a.clinic.region_id)
        assert region.clinics == 1  # the sandbox clinics share the region and are not counted


def test_open_data_never_publishes_a_sandbox_clinic_or_slot(sandbox, slot_a, settings):
    opendata_publish()
    resources = [
        json.loads(line)
        for path in settings.OPENDATA_ROOT.glob("*.ndjson")
        for line in path.read_text().splitlines()
    ]
    locations = {r["id"] for r in resources if r["resourceType"] == "Location"}
    slots = {r["id"] for r in resources if r["resourceType"] == "Slot"}
    assert str(slot_a.clinic_id) in locations and str(sandbox.persona.clinic.pk) not in locations
    assert str(slot_a.pk) in slots and str(sandbox.slot.pk) not in slots


def test_the_help_desk_never_finds_a_sandbox_appointment(sandbox, sandbox_booking, world_board):
    found = helpdesk_lookup(
        user=world_board, by="reference", value=sandbox_booking.reference, why="citizen_call", details="x"
    )
    assert found == []
    real = appointment_book(
        slot_id=SlotFactory().pk, citizen=CitizenFactory(), reason=Reason.FOLLOW_UP, channel="portal"
    )
    found = helpdesk_lookup(
        user=world_board, by="reference", value=real.reference, why="citizen_call", details="x"
    )
    assert [a.pk for a in found] == [real.pk]
    assert Appointment.objects.filter(pk=sandbox_booking.pk).exists()


@pytest.fixture
def world_board(db):
    return make_account()


def test_a_sandbox_emr_cannot_book_a_real_person_nor_a_production_emr_a_synthetic_one(
    sandbox, fhir_a, persona_a, slot_a
):
    from .test_appointments import _post, booking_body

    real = CitizenFactory()
    refused = _post(sandbox.fhir, booking_body(sandbox.persona, sandbox.slot, real.nam))
    assert refused.status_code == 422  # the same answer as a NAM that does not exist
    assert real.nam not in refused.content.decode()
    assert _post(fhir_a, booking_body(persona_a, slot_a, sandbox.synthetic.nam)).status_code == 422
    for slot, citizen in ((sandbox.slot, real), (slot_a, sandbox.synthetic)):  # every channel
        with pytest.raises(errors.SlotNotFound):
            appointment_book(slot_id=slot.pk, citizen=citizen, reason=Reason.FOLLOW_UP, channel="emr")
    assert not Appointment.objects.exists()

    booked = _post(sandbox.fhir, booking_body(sandbox.persona, sandbox.slot, sandbox.synthetic.nam))
    assert booked.status_code == 201, booked.json()
