"""Hostile input: the citizen API fuzzed from its own OpenAPI description (schemathesis, fixed seed,
bounded), and markup and SQL typed into text fields coming back escaped and inert.

The fuzzing runs every operation of ``/api/schema/`` with a valid citizen token (so that it reaches
the views, not only the authentication), ``EXAMPLES`` generated cases each, derandomized: the same
cases on every run. It checks: no 5xx, every status code and content type documented, every body
matching its documented schema. Not checked: that every schema-valid request is accepted (an unknown
card is schema-valid and refused by design) nor that every schema-invalid one is refused.
"""

import json

import pytest
import schemathesis
from schemathesis import checks

from booking.api.auth import citizen_token_make
from citizens.models import Citizen
from config.wsgi import application
from tests.conftest import identify_payload
from tests.factories import CitizenFactory, SlotFactory
from tests.schemathesis_support import fuzz_settings, wsgi_keeps_the_test_connection

EXAMPLES = 20
schema = schemathesis.openapi.from_wsgi("/api/schema/", application)

MARKUP = '<script>alert("x")</script><img src=x onerror=alert(1)>'
SQL = "Robert'); DROP TABLE citizens_citizen; --"


@pytest.fixture
def token(db):
    with wsgi_keeps_the_test_connection():
        SlotFactory.create_batch(3)
        yield citizen_token_make(CitizenFactory())[0]


# The body as it is: its text seeds the cases (tests/schemathesis_support.py).
@schema.parametrize()
@fuzz_settings(EXAMPLES)
def test_the_citizen_api_answers_fuzzed_requests_without_5xx_and_as_documented(case, token):
    case.call_and_validate(
        headers={"Authorization": f"Bearer {token}"},
        checks=[
            checks.not_a_server_error,
            checks.status_code_conformance,
            checks.content_type_conformance,
            checks.response_schema_conformance,
        ],
    )


@pytest.mark.parametrize("hostile", [MARKUP, SQL])
def test_markup_and_sql_typed_into_the_card_form_come_back_escaped(client, db, hostile):
    citizen = CitizenFactory()
    before = Citizen.objects.count()
    data = identify_payload(citizen, first_name=hostile, last_name=hostile, nam=hostile[:20])
    response = client.post("/identification/", data, HTTP_ACCEPT_LANGUAGE="en")
    html = response.content.decode()
    assert response.status_code == 400  # the form again, with its errors
    assert "<script>alert" not in html and "<img src=x" not in html
    assert "Robert')" not in html
    escaped = "&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt;" if hostile == MARKUP else "Robert&#x27;)"
    assert escaped in html  # shown back to the citizen, as text
    assert Citizen.objects.count() == before


@pytest.mark.parametrize("hostile", [MARKUP, SQL])
def test_markup_and_sql_in_the_search_come_back_escaped(client, db, hostile):
    response = client.get(
        "/recherche/", {"postal_code": hostile, "reason": hostile}, HTTP_ACCEPT_LANGUAGE="en"
    )
    assert response.status_code in (200, 302)
    assert "<script>alert" not in response.content.decode()


@pytest.mark.parametrize("hostile", [MARKUP, SQL])
def test_the_api_answers_hostile_text_with_inert_json(client, db, hostile):
    citizen = CitizenFactory()
    before = Citizen.objects.count()
    response = client.post(
        "/api/v1/identify",
        json.dumps(identify_payload(citizen, first_name=hostile, last_name=hostile)),
        content_type="application/json",
    )
    assert response.status_code in (400, 403)  # refused: not a card of the registry
    assert response["Content-Type"].startswith("application/json")
    assert response["X-Content-Type-Options"] == "nosniff"
    response.json()  # a JSON document, whatever it echoes
    token = citizen_token_make(citizen)[0]
    search = client.get(
        "/api/v1/slots", {"postal_code": hostile, "reason": hostile}, HTTP_AUTHORIZATION=f"Bearer {token}"
    )
    assert search.status_code == 400
    assert search["Content-Type"].startswith("application/json")
    assert Citizen.objects.count() == before
