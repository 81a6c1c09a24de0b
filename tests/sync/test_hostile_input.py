"""Hostile input on the FHIR API: odd search parameters and randomly shaped bodies get a 4xx
OperationOutcome, never a 500 (issue 8).

The regression cases are the 500s the fuzzing found; the hypothesis properties run derandomized (the
same cases on every run) with a bounded number of examples.
"""

import json

import pytest
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st

from booking.models import Slot
from tests.factories import CitizenFactory

from .conftest import FHIR
from .test_appointments import booking_body
from .test_slot_writes import slot_body

fuzz_settings = settings(
    max_examples=40,
    derandomize=True,
    deadline=None,
    database=None,
    phases=[Phase.explicit, Phase.generate],
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)


def assert_outcome_or_success(response):
    """No 5xx; an error is a FHIR OperationOutcome."""
    assert response.status_code < 500, response.content[:500]
    assert response["Content-Type"].startswith("application/fhir+json")
    if response.status_code >= 400:
        body = response.json()
        assert body["resourceType"] == "OperationOutcome", body
        assert body["issue"] and body["issue"][0]["severity"] == "error"


# --- regressions: each of these answered 500 before --------------------------------------------

# A non-numeric id matches nothing (an empty searchset), as any other unknown id.
MATCH_NOTHING = [
    ("Slot", {"_id": "²"}),  # str.isdigit accepts "²", int() does not
    ("Slot", {"schedule": "Schedule/²"}),
    ("Location", {"identifier": "²"}),
]


@pytest.mark.parametrize(("path", "params"), MATCH_NOTHING, ids=lambda v: repr(v))
def test_superscript_digits_in_ids_match_nothing(fhir_a, slot_a, path, params):
    response = fhir_a.get(FHIR + path, params)
    assert_outcome_or_success(response)
    assert response.status_code == 200
    assert response.json()["total"] == 0


REGRESSIONS = [
    ("Slot", {"_count": "²"}),
    ("Slot", {"start": "ge2026-02-30"}),  # well formed, not a day: parse_date raises ValueError
    ("Appointment", {"date": "lt2026-13-01"}),
    ("Slot", {"identifier": "a\x00b"}),  # PostgreSQL refuses NUL in text
    ("Appointment", {"identifier": "\x00"}),
    ("$feed", {"_count": "²"}),
    ("$feed", {"cursor": "²"}),
]


@pytest.mark.parametrize(("path", "params"), REGRESSIONS, ids=lambda v: repr(v))
def test_odd_search_values_are_a_400_operation_outcome(fhir_a, slot_a, path, params):
    response = fhir_a.get(FHIR + path, params)
    assert_outcome_or_success(response)
    assert response.status_code == 400


@pytest.mark.parametrize("path", ["Appointment/1%0A", "Slot/%C2%8A%0A", "%0A", "Slot%0A/1"])
def test_a_newline_in_the_path_is_a_fhir_404(fhir_a, slot_a, path):
    response = fhir_a.get(FHIR + path)  # found by schemathesis: the site's JSON 404 answered before
    assert response.status_code == 404
    assert_outcome_or_success(response)


def test_a_superscript_digit_in_a_body_reference_is_a_400(fhir_a, persona_a):
    body = slot_body(persona_a, schedule={"reference": "Schedule/²"})
    response = fhir_a.post(f"{FHIR}Slot", json.dumps(body), content_type="application/fhir+json")
    assert_outcome_or_success(response)
    assert response.status_code in (400, 422)


def test_a_nul_character_in_a_body_is_a_400_and_writes_nothing(fhir_a, persona_a):
    body = slot_body(persona_a, identifier="EMR\u00009")
    response = fhir_a.post(f"{FHIR}Slot", json.dumps(body), content_type="application/fhir+json")
    assert_outcome_or_success(response)
    assert response.status_code == 400
    assert not Slot.objects.filter(role=persona_a.role).exclude(external_id="A-1").exists()


# --- properties ---------------------------------------------------------------------------------

# Random text rarely hits what breaks parsers: these are drawn often, alone or joined by commas.
TRICKY = [
    "",
    " ",
    "²",
    "١٢",
    "①",
    "\x00",
    "a\x00b",
    "9" * 30,
    "-1",
    "0",
    "1e3",
    ",",
    "|",
    "/",
    "Slot/",
    "Schedule/²",
    "2026-02-30",
    "2026-13-01",
    "0000-01-01",
    "9999-12-31T23:59:59-23:59",
    "2026-05-01T08:00:00",
    "<script>alert(1)</script>",
    "' OR 1=1 --",
    "%00",
    "\u202e",
    "\\",
    "\ufeff1",
]
random_text = st.text(st.characters(codec="utf-8", exclude_categories=["Cs"]), max_size=40)
odd_text = st.one_of(
    st.sampled_from(TRICKY),
    random_text,
    st.lists(st.sampled_from(TRICKY) | random_text, min_size=2, max_size=3).map(",".join),
)
prefixed = st.tuples(st.sampled_from(["ge", "gt", "le", "lt", "eq", "", "ge-"]), odd_text).map("".join)
dates = st.one_of(
    prefixed,
    st.tuples(st.sampled_from(["ge", "gt", "le", "lt"]), st.sampled_from(TRICKY)).map("".join),
    st.tuples(st.sampled_from(["ge", "gt", "le", "lt"]), st.dates().map(str)).map("".join),
    st.tuples(
        st.sampled_from(["ge", "lt"]),
        st.datetimes(timezones=st.timezones(), allow_imaginary=False).map(lambda d: d.isoformat()),
    ).map("".join),
)
numbers = st.one_of(odd_text, st.integers(min_value=-(10**30), max_value=10**30).map(str))
identifiers = st.one_of(
    odd_text,
    st.tuples(
        st.sampled_from(["", "http://x", "https://rdv-sante.quebec/fhir/sid/clinic/1/slot"]), odd_text
    ).map("|".join),
)
SEARCHES = {
    "Slot": {
        "start": dates,
        "_lastUpdated": dates,
        "_count": numbers,
        "identifier": identifiers,
        "_id": numbers,
        "schedule": odd_text,
        "status": odd_text,
        "_cursor": odd_text,
    },
    "Appointment": {
        "date": dates,
        "_lastUpdated": dates,
        "_count": numbers,
        "identifier": identifiers,
        "slot": odd_text,
        "status": odd_text,
    },
    "Schedule": {"actor": odd_text, "_id": numbers},
    "Location": {"identifier": identifiers},
    "Practitioner": {"identifier": identifiers},
    "PractitionerRole": {"practitioner": odd_text, "location": odd_text},
}


@st.composite
def searches(draw):
    resource = draw(st.sampled_from(sorted(SEARCHES)))
    names = SEARCHES[resource]
    chosen = draw(st.lists(st.sampled_from(sorted(names)), min_size=1, max_size=3))
    params = [(name, draw(names[name])) for name in chosen]
    if draw(st.booleans()):
        params.append((draw(odd_text), draw(odd_text)))  # an unknown parameter, or a known one odd
    return resource, params


@fuzz_settings
@given(case=searches())
def test_random_search_parameters_never_answer_a_5xx(fhir_a, slot_a, case):
    resource, params = case
    query = {}
    for name, value in params:
        query.setdefault(name, []).append(value)
    assert_outcome_or_success(fhir_a.get(FHIR + resource, query))


json_leaf = st.one_of(st.none(), st.booleans(), st.integers(), st.floats(allow_nan=False), odd_text)
json_values = st.recursive(
    json_leaf,
    lambda children: st.one_of(
        st.lists(children, max_size=3), st.dictionaries(odd_text, children, max_size=3)
    ),
    max_leaves=8,
)
SLOT_KEYS = [
    "schedule",
    "status",
    "start",
    "end",
    "serviceType",
    "appointmentType",
    "extension",
    "identifier",
]


@st.composite
def slot_bodies(draw, persona):
    """A valid Slot body with a few of its fields replaced by random JSON (or removed)."""
    body = slot_body(persona, identifier=draw(st.text("ABC123-", min_size=1, max_size=8) | odd_text))
    for key in draw(st.lists(st.sampled_from(SLOT_KEYS), max_size=3, unique=True)):
        if draw(st.booleans()):
            body[key] = draw(json_values)
        else:
            body.pop(key)
    return body


@fuzz_settings
@given(data=st.data())
def test_random_slot_bodies_get_a_4xx_outcome_or_a_slot(fhir_a, persona_a, data):
    body = data.draw(slot_bodies(persona_a))
    response = fhir_a.post(f"{FHIR}Slot", json.dumps(body), content_type="application/fhir+json")
    assert_outcome_or_success(response)


@st.composite
def appointment_bodies(draw, persona, slot, nam):
    """A desk booking of a real citizen with a few of its fields replaced by random JSON (or removed)."""
    body = booking_body(persona, slot, draw(st.sampled_from([nam, "", "TREM04010100"]) | odd_text))
    for key in draw(st.lists(st.sampled_from(sorted(body)), max_size=3, unique=True)):
        if draw(st.booleans()):
            body[key] = draw(json_values)
        else:
            body.pop(key)
    return body


@fuzz_settings
@given(data=st.data())
def test_random_appointment_bodies_get_a_4xx_outcome_or_an_appointment(fhir_a, persona_a, slot_a, data):
    citizen = CitizenFactory()
    body = data.draw(appointment_bodies(persona_a, slot_a, citizen.nam))
    response = fhir_a.post(f"{FHIR}Appointment", json.dumps(body), content_type="application/fhir+json")
    assert_outcome_or_success(response)
    if response.status_code in (200, 201):
        update = dict(response.json(), status=data.draw(st.sampled_from(["cancelled", "noshow"]) | odd_text))
        if data.draw(st.booleans()):
            update[data.draw(st.sampled_from(sorted(update)))] = data.draw(json_values)
        pk = response.json()["id"]
        assert_outcome_or_success(
            fhir_a.put(f"{FHIR}Appointment/{pk}", json.dumps(update), content_type="application/fhir+json")
        )


@fuzz_settings
@given(body=json_values)
def test_any_json_document_as_a_body_is_a_4xx_outcome(fhir_a, slot_a, body):
    for method, path in (
        ("post", "Slot"),
        ("post", "Appointment"),
        ("post", ""),
        ("put", f"Slot/{slot_a.pk}"),
    ):
        response = getattr(fhir_a, method)(
            FHIR + path, json.dumps(body), content_type="application/fhir+json"
        )
        assert_outcome_or_success(response)
