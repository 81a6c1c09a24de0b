"""Every failure of the FHIR API is an OperationOutcome with the right status and issue code."""

import io
import json

import pytest
from django.test import override_settings
from rest_framework.exceptions import ParseError

from sync.fhir.errors import exception_handler
from sync.fhir.renderers import FhirJSONParser
from tests.factories import ClinicFactory

from .conftest import FHIR, EmrPersona, create_client, get_token


def _issue(response):
    body = response.json()
    assert body["resourceType"] == "OperationOutcome", body
    return body["issue"][0]


def test_without_a_token_the_answer_is_401_login_with_a_bearer_challenge(client, persona_a):
    response = client.get(f"{FHIR}Location/{persona_a.clinic.pk}")
    assert response.status_code == 401
    assert response["WWW-Authenticate"].startswith("Bearer")
    assert _issue(response)["code"] == "login"


def test_an_unknown_token_is_401(client, persona_a):
    response = client.get(f"{FHIR}Slot", HTTP_AUTHORIZATION="Bearer not-a-token")
    assert response.status_code == 401
    assert _issue(response)["code"] == "login"


def test_a_token_without_the_resource_scope_is_403_forbidden(client, db):
    clinic = ClinicFactory(emr_product="ClinIQ")
    client_id, secret = create_client("Vendeur A|ClinIQ", clinic, scopes=["system/Slot.read"])
    token = get_token(client, EmrPersona(client_id, secret, clinic, None))
    auth = {"HTTP_AUTHORIZATION": f"Bearer {token}"}
    assert client.get(f"{FHIR}Slot", **auth).status_code == 200
    response = client.get(f"{FHIR}Location/{clinic.pk}", **auth)
    assert response.status_code == 403
    assert _issue(response)["code"] == "forbidden"
    assert "system/Location.read" in _issue(response)["diagnostics"]


def test_a_write_without_the_write_scope_is_403_and_a_read_only_type_answers_405(client, persona_a, db):
    clinic = ClinicFactory(emr_product="ClinIQ")
    client_id, secret = create_client("Vendeur A|ClinIQ", clinic, scopes=["system/Slot.read"])
    token = get_token(client, EmrPersona(client_id, secret, clinic, None))
    body = json.dumps({"resourceType": "Slot"})
    response = client.post(
        f"{FHIR}Slot", body, content_type="application/fhir+json", HTTP_AUTHORIZATION=f"Bearer {token}"
    )
    assert response.status_code == 403

    full = get_token(client, persona_a)
    response = client.post(
        f"{FHIR}Location",
        json.dumps({"resourceType": "Location"}),
        content_type="application/fhir+json",
        HTTP_AUTHORIZATION=f"Bearer {full}",
    )
    assert response.status_code == 405
    assert _issue(response)["code"] == "not-supported"
    assert "GET" in response["Allow"]


def test_an_unsupported_accept_type_is_406_not_supported(fhir_a, persona_a):
    response = fhir_a.get(f"{FHIR}Location/{persona_a.clinic.pk}", HTTP_ACCEPT="application/fhir+xml")
    assert response.status_code == 406
    assert _issue(response)["code"] == "not-supported"
    assert fhir_a.get(f"{FHIR}Slot", {"_format": "xml"}).status_code == 406


@pytest.mark.parametrize(
    ("accept", "params", "expected"),
    [
        ("application/json", {}, "application/json"),
        ("application/fhir+json", {}, "application/fhir+json"),
        ("*/*", {}, "application/fhir+json"),
        ("application/json", {"_format": "json"}, "application/fhir+json"),
    ],
)
def test_json_is_served_as_asked(fhir_a, accept, params, expected):
    response = fhir_a.get(f"{FHIR}Slot", params, HTTP_ACCEPT=accept)
    assert response.status_code == 200
    assert response["Content-Type"].split(";")[0] == expected


def test_a_search_posted_with_a_json_body_is_415_not_supported(fhir_a):
    response = fhir_a.post(
        f"{FHIR}Slot/_search", json.dumps({"status": "free"}), content_type="application/json"
    )
    assert response.status_code == 415
    assert _issue(response)["code"] == "not-supported"


def test_a_search_posted_as_a_form_filters_like_get(fhir_a, slot_a):
    form = "application/x-www-form-urlencoded"
    response = fhir_a.post(f"{FHIR}Slot/_search", "status=busy", content_type=form)
    assert response.status_code == 200
    assert response.json()["total"] == 0
    assert fhir_a.post(f"{FHIR}Slot/_search", "status=free", content_type=form).json()["total"] == 1
    assert fhir_a.generic("POST", f"{FHIR}Slot/_search?status=free").json()["total"] == 1  # no body at all


def test_an_unknown_resource_type_is_404_not_supported(fhir_a):
    response = fhir_a.get(f"{FHIR}Patient/1")
    assert response.status_code == 404
    assert _issue(response)["code"] == "not-supported"


@pytest.mark.parametrize(
    ("params", "code"),
    [
        ({"start": "2026-05-01T08:00:00Z"}, "invalid"),  # no prefix
        ({"start": "ge2026-05-01T08:00:00"}, "invalid"),  # no offset
        ({"start": "eq2026-05-01"}, "invalid"),
        ({"status": "open"}, "code-invalid"),
        ({"_count": "many"}, "invalid"),
        ({"_cursor": "forged"}, "invalid"),
        ({"_include": "Schedule:actor"}, "not-supported"),
        ({"_lastUpdated": "le2026-05-01"}, "invalid"),
        ({"schedule": "Location/1"}, "invalid"),
        ({"service-type": "urgent"}, "not-supported"),
    ],
)
def test_bad_search_input_is_400_with_the_right_issue_code(fhir_a, params, code):
    response = fhir_a.get(f"{FHIR}Slot", params)
    assert response.status_code == 400
    assert _issue(response)["code"] == code


def test_beyond_the_clients_rate_the_answer_is_429_throttled_with_retry_after(fhir_a):
    with override_settings(SYNC_API_RATE="2/m"):
        assert fhir_a.get(f"{FHIR}Slot").status_code == 200
        assert fhir_a.get(f"{FHIR}Slot").status_code == 200
        response = fhir_a.get(f"{FHIR}Slot")
    assert response.status_code == 429
    assert _issue(response)["code"] == "throttled"
    assert int(response["Retry-After"]) >= 1


def test_the_rate_is_counted_per_client(client, fhir_a, persona_b):
    token_b = get_token(client, persona_b)
    with override_settings(SYNC_API_RATE="1/m"):
        assert fhir_a.get(f"{FHIR}Slot").status_code == 200
        assert fhir_a.get(f"{FHIR}Slot").status_code == 429
        assert client.get(f"{FHIR}Slot", HTTP_AUTHORIZATION=f"Bearer {token_b}").status_code == 200


def test_an_unexpected_error_is_a_500_that_tells_nothing_of_its_cause(caplog):
    response = exception_handler(RuntimeError("secret detail"), {"view": None})
    assert response.status_code == 500
    assert response.data["issue"][0]["code"] == "exception"
    assert "secret detail" not in json.dumps(response.data)
    assert "unexpected error" in caplog.text


def test_the_fhir_parser_wants_a_resource_object():
    parser = FhirJSONParser()
    assert parser.parse(io.BytesIO(b'{"resourceType": "Slot"}'))["resourceType"] == "Slot"
    for body in (b"[]", b'{"status": "free"}', b"{not json"):
        with pytest.raises(ParseError):
            parser.parse(io.BytesIO(body))
