"""The FHIR API fuzzed from its own OpenAPI description (``/fhir/r4/openapi.json``; issue 8).

Every described operation, ``EXAMPLES`` generated cases each, derandomized (the same cases on every
run), with a valid bearer token of an EMR client whose clinic has slots and an appointment, so that
requests reach the views. Checked: no 5xx, every status code and content type documented, every body
matching its schema (so every error is an OperationOutcome). Not checked: that schema-valid writes
succeed (a slot overlapping another is schema-valid and refused by design).
"""

import pytest
import schemathesis
from schemathesis import checks

from booking.models import Appointment, Slot
from booking.services import appointment_book
from config.wsgi import application
from sync import webhooks
from sync.models import AgendaSnapshot, EmrClient, SyncConflict
from tests.factories import CitizenFactory, SlotFactory
from tests.schemathesis_support import fuzz_settings, wsgi_keeps_the_test_connection

from .conftest import FHIR, get_token

EXAMPLES = 15
schema = schemathesis.openapi.from_wsgi(f"{FHIR}openapi.json", application)

# Described since issue 3: Bundles, the feed, webhooks, snapshots, Patient lookup, the conditional
# upsert, POST _search and the public JSON documents; with $resolve, which needs a conflict to reach.
# Fuzzed on their own, with fewer cases each and the state they need (a subscription, a snapshot, a
# conflict, numbered feed events).
OPERATIONS = [
    "bundle",
    "feed",
    "historyAppointment",
    "searchSubscription",
    "createSubscription",
    "readSubscription",
    "updateSubscription",
    "deleteSubscription",
    "rotateSubscriptionSecret",
    "resolveTask",
    "snapshotSchedule",
    "snapshotStatus",
    "searchPatient",
    "upsertSlot",
    "smartConfiguration",
    "openapi",
]
OPERATIONS_REGEX = "^(" + "|".join(OPERATIONS) + r"|search\w+Post)$"
OPERATION_EXAMPLES = 10


@pytest.fixture
def token(client, persona_a, persona_b, settings):
    settings.SYNC_API_RATE = "100000/m"  # the fuzzing is one client sending hundreds of requests
    SlotFactory.create_batch(3, role=persona_a.role)
    SlotFactory(role=persona_b.role)  # another clinic's: never found
    booked = SlotFactory(role=persona_a.role, external_id="A-9")
    appointment_book(
        slot_id=booked.pk, citizen=CitizenFactory(), reason="urgent", channel=Appointment.Channel.PORTAL
    )
    bearer = get_token(client, persona_a)  # a test-client request: before the signals go
    with wsgi_keeps_the_test_connection():
        yield bearer


# The body as it is: its text seeds the cases (tests/schemathesis_support.py).
@schema.exclude(operation_id_regex=OPERATIONS_REGEX).parametrize()
@fuzz_settings(EXAMPLES)
def test_the_fhir_api_answers_fuzzed_requests_without_5xx_and_as_documented(case, token):
    case.call_and_validate(
        headers={"Authorization": f"Bearer {token}"},
        checks=[
            checks.not_a_server_error,
            checks.status_code_conformance,
            checks.content_type_conformance,
            checks.response_schema_conformance,
        ],
    )


def test_the_openapi_description_agrees_with_the_capability_statement(client, db):
    response = client.get(f"{FHIR}openapi.json")
    assert response.status_code == 200
    assert response["Content-Type"].startswith("application/json")
    document = response.json()
    flows = document["components"]["securitySchemes"]["emrClientCredentials"]["flows"]
    assert flows["clientCredentials"]["tokenUrl"] == "http://testserver/oauth/token/"
    assert "system/Slot.write" in flows["clientCredentials"]["scopes"]
    capability = client.get(f"{FHIR}metadata").json()
    for resource in capability["rest"][0]["resource"]:
        operation = document["paths"].get(f"/{resource['type']}", {}).get("get")
        if operation is None:  # Patient: POST _search only (no NAM in a URL)
            assert resource["type"] == "Patient"
            operation = document["paths"]["/Patient/_search"]["post"]
            assert operation["security"] == [{"emrClientCredentials": ["system/Patient.read"]}]
            continue
        described = {p["name"] for p in operation["parameters"]}
        assert {p["name"] for p in resource.get("searchParam", [])} <= described, resource["type"]
        if resource["type"] in ("CodeSystem", "ValueSet"):  # our vocabularies: public
            assert operation["security"] == []
            continue
        # A Subscription is a way of reading the feed: system/Appointment.read.
        scope = "Appointment" if resource["type"] == "Subscription" else resource["type"]
        assert operation["security"] == [{"emrClientCredentials": [f"system/{scope}.read"]}]


@pytest.fixture
def operations_state(token, persona_a, settings):
    """``token``'s clinic, plus a subscription, a snapshot and a conflict (Task), and a feed to read."""
    settings.SYNC_FEED_MIN_INTERVAL_SECONDS = 0  # the polling budget would answer 429 to most cases
    settings.SYNC_FEED_RELAY_INLINE = True  # number the booking's events: the feed has entries
    client = EmrClient.objects.get(application__client_id=persona_a.client_id)
    subscription, _secret = webhooks.subscription_create(
        emr_client=client, endpoint="https://emr-a.example.ca/hook", criteria="Appointment"
    )
    slot = Slot.objects.filter(role=persona_a.role).first()
    snapshot = AgendaSnapshot.objects.create(
        emr_client=client,
        role=persona_a.role,
        window_start=slot.start,
        window_end=slot.end,
        generation=1,
        status=AgendaSnapshot.Status.DONE,
        digest="0" * 64,
    )
    booked = Slot.objects.get(role=persona_a.role, external_id="A-9")
    conflict = SyncConflict.objects.create(
        clinic=persona_a.clinic,
        slot=booked,
        appointment=Appointment.objects.get(slot=booked),
        kind=SyncConflict.Kind.BOOKED_SLOT_REMOVED,
        snapshot=snapshot,
    )
    ids = {
        "Subscription": subscription.pk,
        "Schedule": persona_a.role.pk,
        "snapshot": snapshot.pk,
        "Task": conflict.pk,
    }
    return token, {name: str(pk) for name, pk in ids.items()}


@schema.include(operation_id_regex=OPERATIONS_REGEX).parametrize()
@fuzz_settings(OPERATION_EXAMPLES)
def test_the_fhir_operations_answer_fuzzed_requests_without_5xx_and_as_documented(case, operations_state):
    token, ids = operations_state
    # Half the cases (by a property of the generated id: deterministic) name the client's own
    # subscription, schedule or snapshot, so that fuzzed bodies reach the operations' validation.
    params = case.path_parameters or {}
    if "id" in params and len(params["id"]) % 2 == 0:
        params["id"] = ids[case.path.split("/")[1]]
        if "snapshot" in params:
            params["snapshot"] = ids["snapshot"]
    case.call_and_validate(
        headers={"Authorization": f"Bearer {token}"},
        checks=[
            checks.not_a_server_error,
            checks.status_code_conformance,
            checks.content_type_conformance,
            checks.response_schema_conformance,
        ],
    )
