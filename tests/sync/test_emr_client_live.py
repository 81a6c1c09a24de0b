"""A test EMR: a real FHIR HTTP client (fhirpy's SyncFHIRClient) driving the API on a live server.

What an EMR vendor's integration does, over real HTTP to pytest-django's live server (a real WSGI
server in a thread, on the test database): get a token with client credentials, publish an agenda
by conditional update, book at the clinic's desk (and get the 409 OperationOutcome when a citizen
was first on the portal), receive portal bookings through the feed and through a signed webhook,
and retry after a network failure without creating a duplicate.

Only the network is faked: a small TCP proxy between fhirpy and the server that forwards a request
and cuts the connection before the response reaches the client, once. Our code runs as in
production; the webhook is delivered by calling the relay and delivery tasks, as the beat does.
"""

import contextlib
import hashlib
import hmac
import json
import socket
import threading
from datetime import UTC, datetime, timedelta

import pytest
import requests
from django.utils import timezone
from fhirpy import SyncFHIRClient
from fhirpy.base.exceptions import OperationOutcome

from booking.api.auth import citizen_token_make
from booking.models import Appointment, Slot
from booking.services import appointment_book
from sync import feed, webhooks
from sync.models import EmrClient
from tests.factories import CitizenFactory, ClinicFactory, EnrolmentFactory, RoleFactory

from .conftest import EmrPersona, create_client
from .test_webhooks import SECRET_URL, Receiver, seq_of

REASONS = "https://rdv-sante.quebec/fhir/CodeSystem/reason"
MODALITY = "https://rdv-sante.quebec/fhir/CodeSystem/modality"
AUDIENCE = "https://rdv-sante.quebec/fhir/StructureDefinition/slot-audience"
NAM_SYSTEM = "https://fhir.infoway-inforoute.ca/NamingSystem/ca-qc-patient-healthcare-id"
FHIR_JSON = {"Content-Type": "application/fhir+json"}


@pytest.fixture(autouse=True)
def _test_settings(settings):
    settings.SYNC_API_RATE = "100000/m"
    settings.SYNC_FEED_MIN_INTERVAL_SECONDS = 0
    settings.SYNC_WEBHOOK_ALLOW_LOOPBACK = True  # the EMR's receiver runs in the test, on 127.0.0.1


@pytest.fixture
def emr(live_server):
    """An EMR client of a clinic (created with the real command), its token from /oauth/token/."""
    clinic = ClinicFactory(emr_product="ClinIQ")
    role = RoleFactory(clinic=clinic)
    client_id, secret = create_client("Vendeur A|ClinIQ", clinic)
    persona = EmrPersona(client_id, secret, clinic, role)
    answer = requests.post(
        f"{live_server.url}/oauth/token/",
        data={"grant_type": "client_credentials"},
        auth=(client_id, secret),
        timeout=10,
    )
    assert answer.status_code == 200, answer.text
    persona.token = answer.json()["access_token"]  # type: ignore[attr-defined]
    return persona


def fhir_client(base: str, persona) -> SyncFHIRClient:
    return SyncFHIRClient(
        f"{base}/fhir/r4/",
        authorization=f"Bearer {persona.token}",
        extra_headers=FHIR_JSON,
        requests_config={"timeout": 10},
    )


def _z(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def slot_system(persona) -> str:
    return f"https://rdv-sante.quebec/fhir/sid/clinic/{persona.clinic.pk}/slot"


def agenda_slot(persona, value: str, start: datetime, *, minutes: int = 20) -> dict:
    return {
        "resourceType": "Slot",
        "schedule": {"reference": f"Schedule/{persona.role.pk}"},
        "status": "free",
        "start": _z(start),
        "end": _z(start + timedelta(minutes=minutes)),
        "serviceType": [{"coding": [{"system": REASONS, "code": "follow_up"}]}],
        "appointmentType": {"coding": [{"system": MODALITY, "code": "in_person"}]},
        "extension": [{"url": AUDIENCE, "valueCode": "public"}],
        "identifier": [{"system": slot_system(persona), "value": value}],
    }


def publish(fhir: SyncFHIRClient, persona, value: str, start: datetime) -> tuple[dict, bool]:
    """``PUT Slot?identifier=system|value``: the idempotent upsert (True when it created the slot)."""
    search = fhir.resources("Slot").search(identifier=f"{slot_system(persona)}|{value}")
    return search.update(fhir.resource("Slot", **agenda_slot(persona, value, start)))


def desk_booking(persona, slot: dict, nam: str, identifier: str) -> dict:
    product_id = EmrClient.objects.get(application__client_id=persona.client_id).product_id
    return {
        "resourceType": "Appointment",
        "status": "booked",
        "slot": [{"reference": f"Slot/{slot['id']}"}],
        "start": slot["start"],
        "end": slot["end"],
        "appointmentType": {"coding": [{"system": REASONS, "code": "follow_up"}]},
        "participant": [
            {
                "actor": {"type": "Patient", "identifier": {"system": NAM_SYSTEM, "value": nam}},
                "status": "accepted",
            },
            {"actor": {"reference": f"PractitionerRole/{persona.role.pk}"}, "status": "accepted"},
        ],
        "identifier": [
            {"system": f"https://rdv-sante.quebec/fhir/sid/emr/{product_id}/appointment", "value": identifier}
        ],
    }


def day_ahead(days: int, hour: int) -> datetime:
    return (timezone.now() + timedelta(days=days)).replace(hour=hour, minute=0, second=0, microsecond=0)


def portal_booking(slot_id: int) -> Appointment:
    """A citizen books through the portal's booking service (the same compare-and-set as the portal)."""
    return appointment_book(
        slot_id=slot_id, citizen=CitizenFactory(), reason="follow_up", channel=Appointment.Channel.PORTAL
    )


# --- a) publish an agenda, b) book at the desk and lose to the portal ----------------------------------


def test_the_emr_publishes_its_agenda_and_books_at_the_desk(live_server, emr):
    fhir = fhir_client(live_server.url, emr)
    assert fhir.execute("metadata", method="get")["fhirVersion"] == "4.0.1"

    values = [f"AG-{i}" for i in range(4)]
    published = {}
    for i, value in enumerate(values):
        slot, created = publish(fhir, emr, value, day_ahead(9, 13) + timedelta(minutes=30 * i))
        assert created, value
        published[value] = slot
    # The same agenda again: nothing created, nothing changed (same versions).
    for i, value in enumerate(values):
        slot, created = publish(fhir, emr, value, day_ahead(9, 13) + timedelta(minutes=30 * i))
        assert not created and slot["meta"]["versionId"] == published[value]["meta"]["versionId"]

    # They are searchable by the EMR, and bookable by citizens (the citizen search sees them).
    found = fhir.resources("Slot").search(schedule=f"Schedule/{emr.role.pk}", status="free").fetch_all()
    assert {s["identifier"][0]["value"] for s in found} == set(values)
    enrolled = EnrolmentFactory(practitioner=emr.role.practitioner).citizen  # the doctor's patient
    token, _ = citizen_token_make(enrolled)
    citizen_search = requests.get(
        f"{live_server.url}/api/v1/slots",
        params={"path": "mine", "date_from": day_ahead(9, 0).date().isoformat()},
        headers={"Authorization": f"Bearer {token}"},
        timeout=10,
    )
    assert citizen_search.status_code == 200, citizen_search.text
    listed = {str(r["id"]) for r in citizen_search.json()["results"]}
    assert {s["id"] for s in published.values()} <= listed
    assert set(
        Slot.objects.filter(clinic=emr.clinic, status=Slot.Status.FREE).values_list("external_id", flat=True)
    ) == set(values)

    # b) A desk booking on a free slot: 201, booked in the central store for that patient.
    patient = CitizenFactory()
    booked = fhir.resource(
        "Appointment", **desk_booking(emr, published["AG-0"], patient.nam, "DESK-1")
    ).create()
    assert booked["status"] == "booked"
    assert [ref.reference for ref in booked["slot"]] == [f"Slot/{published['AG-0']['id']}"]
    assert Appointment.objects.get(pk=booked["id"]).channel == Appointment.Channel.EMR

    # A citizen took AG-1 on the portal first: the desk booking gets 409 + OperationOutcome.
    portal = portal_booking(int(published["AG-1"]["id"]))
    with pytest.raises(OperationOutcome) as refused:
        fhir.resource("Appointment", **desk_booking(emr, published["AG-1"], patient.nam, "DESK-2")).create()
    outcome = refused.value.resource
    assert outcome["resourceType"] == "OperationOutcome"
    assert outcome["issue"][0]["code"] == "conflict" and outcome["issue"][0]["severity"] == "error"
    assert f"Appointment/{portal.pk}" in outcome["issue"][0]["diagnostics"]
    assert list(Appointment.objects.filter(slot_id=published["AG-1"]["id"]).values_list("pk", flat=True)) == [
        portal.pk
    ]
    assert not Appointment.objects.filter(external_id="DESK-2").exists()


# --- c) portal bookings reach the EMR: the feed and a signed webhook ---------------------------------


class SigningReceiver(Receiver):
    """The EMR's webhook endpoint, verifying as docs/sync-api.md tells vendors to: the HMAC-SHA256 of the
    raw body with the subscription's secret, compared in constant time, and a fresh Bundle.timestamp."""

    secret = b""

    def verified(self) -> list[dict]:
        bundles = []
        for delivery in self.received:
            raw, signature = delivery["body"], delivery["headers"].get("X-RDV-Signature", "")
            expected = "sha256=" + hmac.new(self.secret, raw, hashlib.sha256).hexdigest()
            assert hmac.compare_digest(expected, signature), "bad signature"
            bundle = json.loads(raw)
            sent = datetime.fromisoformat(bundle["timestamp"].replace("Z", "+00:00"))
            assert datetime.now(UTC) - sent < timedelta(minutes=5), "stale delivery"
            bundles.append(bundle)
        return bundles


@pytest.fixture
def signing_receiver():
    server = SigningReceiver()
    yield server
    server.stop()


def test_portal_bookings_reach_the_emr_through_the_feed_and_a_signed_webhook(
    live_server, emr, signing_receiver
):
    fhir = fhir_client(live_server.url, emr)
    since = _z(timezone.now() - timedelta(seconds=1))
    head = fhir.execute("$feed", method="get")
    cursor = head["meta"]["extension"][0]["valueString"]

    subscription = fhir.resource(
        "Subscription",
        status="requested",
        reason="Portal bookings to our agenda",
        criteria="Appointment",
        channel={"type": "rest-hook", "endpoint": signing_receiver.url, "payload": "application/fhir+json"},
    ).create()
    assert subscription["status"] == "active"
    signing_receiver.secret = next(
        e["valueString"] for e in subscription["extension"] if e["url"] == SECRET_URL
    ).encode()

    slots = [
        publish(fhir, emr, f"FEED-{i}", day_ahead(10, 14) + timedelta(minutes=30 * i))[0] for i in range(2)
    ]
    portal = [portal_booking(int(slot["id"])) for slot in slots]
    mine = {str(a.pk) for a in portal}
    feed.feed_relay()  # the beat's relay numbers the committed changes

    # The cursor endpoint: each portal booking once, in order; our own slot writes are not echoed.
    page = fhir.execute("$feed", method="get", params={"cursor": cursor, "_count": 100})
    entries = [e for e in page.get("entry", []) if e["resource"]["resourceType"] == "Appointment"]
    assert [e["resource"]["id"] for e in entries] == [str(a.pk) for a in portal]
    assert {e["resource"]["status"] for e in entries} == {"booked"}
    next_cursor = page["meta"]["extension"][0]["valueString"]
    assert fhir.execute("$feed", method="get", params={"cursor": next_cursor}).get("entry", []) == []

    # _history?_since: the same changes, by time.
    history = fhir.execute("Appointment/_history", method="get", params={"_since": since})
    assert {e["resource"]["id"] for e in history.get("entry", [])} == mine

    # The webhook: the same changes, signed; a tampered body would not verify.
    deliveries = webhooks.webhooks_deliver()
    assert [d.outcome for d in deliveries] == ["delivered"]
    (bundle,) = signing_receiver.verified()
    assert bundle["type"] == "history"
    assert [
        e["resource"]["id"] for e in bundle["entry"] if e["resource"]["resourceType"] == "Appointment"
    ] == [str(a.pk) for a in portal]
    assert sorted(seq_of(e) for e in bundle["entry"]) == [seq_of(e) for e in bundle["entry"]]
    tampered = dict(
        signing_receiver.received[0], body=signing_receiver.received[0]["body"].replace(b"booked", b"cancel")
    )
    signing_receiver.received.append(tampered)
    with pytest.raises(AssertionError, match="bad signature"):
        signing_receiver.verified()


# --- d) a network failure after the server acted, and the retry ------------------------------------


class CuttingProxy:
    """A TCP proxy on 127.0.0.1: forwards each connection to ``upstream``; when armed, it waits for the
    server's first response bytes (so the server has acted) and closes the client's connection
    instead of forwarding them, once."""

    def __init__(self, upstream: tuple[str, int]) -> None:
        self.upstream = upstream
        self.armed = threading.Event()
        self.cuts = 0
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self.closed = False
        threading.Thread(target=self._accept, daemon=True).start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def _accept(self) -> None:
        while not self.closed:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            server = socket.create_connection(self.upstream, timeout=30)
            threading.Thread(target=self._pipe, args=(client, server, False), daemon=True).start()
            threading.Thread(target=self._pipe, args=(server, client, True), daemon=True).start()

    def _pipe(self, source: socket.socket, target: socket.socket, response: bool) -> None:
        try:
            while data := source.recv(65536):
                if response and self.armed.is_set():
                    self.armed.clear()
                    self.cuts += 1
                    break  # the answer is lost: the client sees its connection closed
                target.sendall(data)
        except OSError:
            pass
        finally:
            for sock in (source, target):
                with contextlib.suppress(OSError):
                    sock.shutdown(socket.SHUT_RDWR)
                sock.close()

    def close(self) -> None:
        self.closed = True
        self.listener.close()


@pytest.fixture
def proxy(live_server):
    host, port = live_server.url.removeprefix("http://").split(":")
    cutting = CuttingProxy((host, int(port)))
    yield cutting
    cutting.close()


def test_a_retry_after_a_lost_answer_creates_no_duplicate(live_server, emr, proxy):
    fhir = fhir_client(proxy.url, emr)  # every request goes through the proxy

    # The conditional PUT of a slot: the server creates it, the answer is lost, fhirpy raises.
    start = day_ahead(11, 13)
    proxy.armed.set()
    with pytest.raises(requests.exceptions.ConnectionError):
        publish(fhir, emr, "NET-1", start)
    assert proxy.cuts == 1
    assert Slot.objects.filter(clinic=emr.clinic, external_id="NET-1").count() == 1  # it was made
    first_version = Slot.objects.get(clinic=emr.clinic, external_id="NET-1").version
    slot, created = publish(fhir, emr, "NET-1", start)  # the EMR retries the same request
    assert not created  # 200: the first result, not a second slot
    assert Slot.objects.filter(clinic=emr.clinic, external_id="NET-1").count() == 1
    assert slot["meta"]["versionId"] == str(first_version)  # nothing changed: no version bump

    # An Appointment create with the EMR's identifier: booked, the answer lost, the retry answers it.
    patient = CitizenFactory()
    body = desk_booking(emr, slot, patient.nam, "DESK-NET-1")
    proxy.armed.set()
    with pytest.raises(requests.exceptions.ConnectionError):
        fhir.resource("Appointment", **body).create()
    assert proxy.cuts == 2
    (made,) = Appointment.objects.filter(external_id="DESK-NET-1")
    retried = fhir.resource("Appointment", **body).create()  # 200 with the first result, never a 409
    assert retried["id"] == str(made.pk) and retried["status"] == "booked"
    assert Appointment.objects.filter(external_id="DESK-NET-1").count() == 1
    assert Appointment.objects.filter(slot_id=slot["id"]).count() == 1
