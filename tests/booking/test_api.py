"""The citizen JSON API under /api/v1/: the whole journey, every error shape, the OpenAPI schema.

Personas: a citizen enrolled with a family doctor of a GMF (``enrolled_citizen``), a citizen with no
family doctor (``citizen``), and a stranger who must never see the others' appointments.
"""

import datetime as dt
import json
import time
from datetime import timedelta

import pytest
from django.conf import settings
from django.core import signing
from django.test import Client
from django.urls import include, path
from django.utils import timezone, translation
from drf_spectacular.drainage import GENERATOR_STATS
from drf_spectacular.generators import SchemaGenerator
from drf_spectacular.validation import validate_schema

from booking.api.auth import TOKEN_SALT, citizen_token_make
from booking.api.errors import exception_handler
from booking.models import Appointment, Audience, Slot
from tests.conftest import identify_payload
from tests.factories import CitizenFactory, FsaFactory, PractitionerFactory, RoleFactory, SlotFactory

pytestmark = pytest.mark.django_db

EN = {"HTTP_ACCEPT_LANGUAGE": "en"}
FR = {"HTTP_ACCEPT_LANGUAGE": "fr"}


def bearer(citizen) -> dict:
    token, _ = citizen_token_make(citizen)
    return {"HTTP_AUTHORIZATION": f"Bearer {token}"}


def post(client: Client, url: str, data: dict, **headers):
    return client.post(url, data=json.dumps(data), content_type="application/json", **headers)


def error(response) -> dict:
    body = response.json()
    assert set(body) == {"error"}, body
    return body["error"]


def assert_no_nam(response, citizen) -> None:
    text = response.content.decode()
    assert citizen.nam not in text
    assert f"{citizen.nam[:4]} {citizen.nam[4:8]}" not in text


@pytest.fixture
def client():
    return Client()


@pytest.fixture
def fsa(db):
    return FsaFactory()  # H2X, where the factories put clinics and citizens


# --- the journey ---------------------------------------------------------------------------------


def test_an_enrolled_citizen_identifies_searches_each_path_holds_books_lists_and_cancels(
    client, enrolled_citizen, role, fsa
):
    citizen = enrolled_citizen
    own = SlotFactory(role=role, audience=Audience.OWN_PATIENTS)
    colleague = RoleFactory(clinic=role.clinic, practitioner=PractitionerFactory(languages="fr"))
    gmf_slot = SlotFactory(role=colleague, audience=Audience.GMF_PATIENTS)
    public = SlotFactory(role=colleague, audience=Audience.PUBLIC)

    # identify
    response = post(client, "/api/v1/identify", identify_payload(citizen, nam=citizen.nam.lower()))
    assert response.status_code == 200, response.content
    body = response.json()
    assert body["citizen"] == {
        "first_name": citizen.first_name,
        "enrolled": True,
        "family_doctor": role.practitioner.display_name,
        "gmf": role.clinic.gmf.name,
    }
    assert body["expires_at"].endswith("Z")
    assert_no_nam(response, citizen)
    auth = {"HTTP_AUTHORIZATION": f"Bearer {body['token']}"}

    # search: my doctor, my GMF, near me
    mine = client.get("/api/v1/slots", {"path": "mine"}, **auth)
    assert mine.status_code == 200, mine.content
    assert [r["id"] for r in mine.json()["results"]] == [own.pk]
    result = mine.json()["results"][0]
    assert result["start"] == own.start.astimezone(dt.UTC).isoformat().replace("+00:00", "Z")
    assert result["local_start"] == own.start.astimezone(own.clinic.tz).isoformat()
    assert result["local_start"][-6:] in ("-05:00", "-04:00")
    assert result["time_zone"] == "America/Toronto"
    assert result["clinic"] == {
        "id": role.clinic.pk,
        "name": role.clinic.name,
        "address": role.clinic.address,
        "city": role.clinic.city,
        "postal_code": role.clinic.postal_code,
        "phone": role.clinic.phone,
    }
    assert result["practitioner"] == {"name": role.practitioner.display_name, "languages": ["fr", "en"]}
    assert result["modality"] == "in_person"
    assert "urgent" in result["reasons"]
    assert result["distance_km"] is None
    assert mine.json()["page"] == 1
    assert mine.json()["next_page"] is None
    assert mine.json()["suggestions"] == []

    gmf = client.get("/api/v1/slots", {"path": "gmf"}, **auth)
    assert gmf.status_code == 200, gmf.content
    assert {r["id"] for r in gmf.json()["results"]} == {gmf_slot.pk, public.pk}

    near = client.get("/api/v1/slots", {"path": "near", "postal_code": "h2x 1k4", "radius_km": "5"}, **auth)
    assert near.status_code == 200, near.content
    assert [r["id"] for r in near.json()["results"]] == [public.pk]
    assert near.json()["results"][0]["distance_km"] == 0.0

    # hold, then book with the hold
    hold = post(client, "/api/v1/holds", {"slot_id": own.pk}, **auth)
    assert hold.status_code == 201, hold.content
    assert hold.json()["slot_id"] == own.pk
    hold_token = hold.json()["hold_token"]
    booked = post(
        client,
        "/api/v1/appointments",
        {"slot_id": own.pk, "hold_token": hold_token, "reason": "follow_up"},
        **auth,
    )
    assert booked.status_code == 201, booked.content
    appointment = booked.json()
    assert appointment["status"] == "booked"
    assert appointment["channel"] == "api"
    assert appointment["reason"] == "follow_up"
    assert appointment["modality"] == "in_person"
    assert appointment["practitioner"] == {"name": role.practitioner.display_name}
    assert appointment["cancellable"] is True
    assert len(appointment["reference"]) == 10
    assert_no_nam(booked, citizen)
    assert Slot.objects.get(pk=own.pk).status == Slot.Status.BOOKED

    # the booked time has left the search
    assert client.get("/api/v1/slots", {"path": "mine"}, **auth).json()["results"] == []

    # list and read it
    listing = client.get("/api/v1/appointments", **auth)
    assert listing.status_code == 200
    assert [a["id"] for a in listing.json()["upcoming"]] == [appointment["id"]]
    assert listing.json()["past"] == []
    detail = client.get(f"/api/v1/appointments/{appointment['id']}", **auth)
    assert detail.status_code == 200
    assert detail.json() == appointment

    # cancel: the slot is free again and the appointment moves to the past
    cancelled = post(
        client, f"/api/v1/appointments/{appointment['id']}/cancel", {"reason": "feeling_better"}, **auth
    )
    assert cancelled.status_code == 200, cancelled.content
    assert cancelled.json()["status"] == "cancelled_by_citizen"
    assert cancelled.json()["cancellable"] is False
    assert Slot.objects.get(pk=own.pk).status == Slot.Status.FREE
    listing = client.get("/api/v1/appointments", **auth).json()
    assert listing["upcoming"] == []
    assert [a["id"] for a in listing["past"]] == [appointment["id"]]
    assert [r["id"] for r in client.get("/api/v1/slots", {"path": "mine"}, **auth).json()["results"]] == [
        own.pk
    ]


def test_a_citizen_can_book_without_a_hold(client, citizen, slot):
    response = post(
        client, "/api/v1/appointments", {"slot_id": slot.pk, "reason": "urgent"}, **bearer(citizen)
    )
    assert response.status_code == 201, response.content
    assert Appointment.objects.get(pk=response.json()["id"]).channel == Appointment.Channel.CITIZEN_API


def test_a_retried_booking_with_the_same_hold_returns_the_same_appointment_with_200(client, citizen, slot):
    auth = bearer(citizen)
    hold_token = post(client, "/api/v1/holds", {"slot_id": slot.pk}, **auth).json()["hold_token"]
    payload = {"slot_id": slot.pk, "hold_token": hold_token, "reason": "urgent"}
    first = post(client, "/api/v1/appointments", payload, **auth)
    retry = post(client, "/api/v1/appointments", payload, **auth)
    assert first.status_code == 201, first.content
    assert retry.status_code == 200, retry.content
    assert retry.json()["id"] == first.json()["id"]
    assert Appointment.objects.filter(slot=slot).count() == 1


def test_the_next_page_is_offered_when_there_are_more_results(client, citizen, role):
    for _ in range(11):
        SlotFactory(role=role)
    FsaFactory()
    auth = bearer(citizen)
    first = client.get("/api/v1/slots", {"path": "near"}, **auth).json()  # the citizen's own postal code
    assert len(first["results"]) == 10
    assert first["next_page"] == 2
    second = client.get("/api/v1/slots", {"path": "near", "page": 2}, **auth).json()
    assert len(second["results"]) == 1
    assert second["next_page"] is None


def test_an_empty_search_suggests_what_to_try_next(client, enrolled_citizen):
    response = client.get(
        "/api/v1/slots", {"path": "mine", "reason": "pregnancy"}, **bearer(enrolled_citizen), **EN
    )
    assert response.status_code == 200
    body = response.json()
    assert body["results"] == []
    codes = [s["code"] for s in body["suggestions"]]
    assert codes == ["near", "fewer_filters", "info_sante"]
    assert "811" in body["suggestions"][-1]["message"]


# --- identification errors -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("nam", "expected"),
    [
        ("", "Enter your health-insurance number."),
        ("TREM 555 2314", "4 letters and 8 digits, e.g. TREM 5551 2314"),
        ("TREM55131231", "date of birth encoded in this health-insurance number does not exist"),
    ],
)
def test_a_malformed_nam_gets_a_precise_message_on_the_nam_field(client, citizen, nam, expected):
    response = post(client, "/api/v1/identify", identify_payload(citizen, nam=nam), **EN)
    assert response.status_code == 400
    err = error(response)
    assert err["code"] == "invalid"
    assert list(err["fields"]) == ["nam"]
    assert expected in err["fields"]["nam"][0]


def test_an_impossible_birth_date_is_a_field_error(client, citizen):
    response = post(client, "/api/v1/identify", identify_payload(citizen, birth_date="1985-02-30"), **EN)
    assert response.status_code == 400
    assert list(error(response)["fields"]) == ["birth_date"]


@pytest.mark.parametrize(
    "overrides",
    [
        {"birth_date": "1985-03-15"},
        {"first_name": "Julia"},
        {"last_name": "Gagné"},
        {"card_sequence": "02"},
        {"nam": "ZZZZ85531499"},  # well formed, but no such card
    ],
)
def test_details_that_do_not_match_get_one_generic_message_that_names_no_field(client, citizen, overrides):
    reference = post(client, "/api/v1/identify", identify_payload(citizen, birth_date="1985-03-13"), **EN)
    response = post(client, "/api/v1/identify", identify_payload(citizen, **overrides), **EN)
    assert response.status_code == 403
    err = error(response)
    assert err == error(reference)
    assert err["code"] == "identification_failed"
    assert "fields" not in err
    assert "811" in err["message"]
    for word in ("birth", "name", "sequence", "number", "date"):
        assert word not in err["message"].lower()


def test_names_match_as_people_type_them(client, citizen):
    citizen.last_name = "Gagnon-Lévesque"
    citizen.save()
    response = post(client, "/api/v1/identify", identify_payload(citizen, last_name="gagnon levesque"))
    assert response.status_code == 200, response.content


def test_too_many_failures_for_one_card_get_429_with_retry_after(client, citizen, settings):
    settings.RATE_LIMITS = {**settings.RATE_LIMITS, "identify_nam": "3/3600"}
    wrong = identify_payload(citizen, birth_date="1985-03-15")
    for _ in range(3):
        assert post(client, "/api/v1/identify", wrong).status_code == 403
    response = post(client, "/api/v1/identify", wrong, **EN)
    assert response.status_code == 429
    retry_after = int(response["Retry-After"])
    assert 0 < retry_after <= 3600
    err = error(response)
    assert err["code"] == "rate_limited"
    assert err["retry_after"] == retry_after
    assert str(retry_after) in err["message"]
    # Another card from the same address is not slowed down.
    other = CitizenFactory(first_name="Marc", last_name="Roy", sex="M")
    assert post(client, "/api/v1/identify", identify_payload(other)).status_code == 200


def test_searching_too_often_gets_429(client, citizen, fsa, settings):
    settings.RATE_LIMITS = {**settings.RATE_LIMITS, "search": "2/3600"}
    auth = bearer(citizen)
    for _ in range(2):
        assert client.get("/api/v1/slots", {"path": "near"}, **auth).status_code == 200
    response = client.get("/api/v1/slots", {"path": "near"}, **auth)
    assert response.status_code == 429
    assert int(response["Retry-After"]) > 0
    # The limit is per citizen: someone else searches on.
    other = CitizenFactory(first_name="Marc", last_name="Roy", sex="M")
    assert client.get("/api/v1/slots", {"path": "near"}, **bearer(other)).status_code == 200


# --- tokens --------------------------------------------------------------------------------------


class _SignedAnHourAgo(signing.TimestampSigner):
    def timestamp(self):
        return signing.b62_encode(int(time.time()) - settings.CITIZEN_API_TOKEN_SECONDS - 60)


def test_an_expired_token_gets_401_with_a_bearer_challenge(client, citizen):
    token = _SignedAnHourAgo(salt=TOKEN_SALT).sign_object({"c": citizen.pk})
    response = client.get("/api/v1/appointments", HTTP_AUTHORIZATION=f"Bearer {token}", **EN)
    assert response.status_code == 401
    assert response["WWW-Authenticate"].startswith("Bearer")
    err = error(response)
    assert err["code"] == "token_expired"
    assert "expired" in err["message"]


@pytest.mark.parametrize(
    "authorization",
    [
        "Bearer not-a-token",
        "Bearer two parts",
        # A value we signed for something else (an e-mail cancel link) is not an API token.
        pytest.param("cancel-link", id="other-salt"),
    ],
)
def test_a_bad_token_gets_401(client, citizen, authorization):
    if authorization == "cancel-link":
        authorization = f"Bearer {signing.dumps({'c': citizen.pk}, salt='booking.cancel-link')}"
    response = client.get("/api/v1/appointments", HTTP_AUTHORIZATION=authorization)
    assert response.status_code == 401
    assert response["WWW-Authenticate"].startswith("Bearer")
    assert error(response)["code"] == "token_invalid"


def test_no_token_gets_401_and_a_valid_one_gets_in(client, citizen):
    response = client.get("/api/v1/appointments")
    assert response.status_code == 401
    assert response["WWW-Authenticate"].startswith("Bearer")
    assert error(response)["code"] == "not_authenticated"
    assert client.get("/api/v1/appointments", **bearer(citizen)).status_code == 200


def test_identifying_again_works_with_a_stale_token_in_the_header(client, citizen):
    response = post(client, "/api/v1/identify", identify_payload(citizen), HTTP_AUTHORIZATION="Bearer stale")
    assert response.status_code == 200


# --- scoping -------------------------------------------------------------------------------------


def test_a_citizen_sees_and_cancels_only_their_own_appointments(client, citizen, slot):
    stranger = CitizenFactory(first_name="Marc", last_name="Roy", sex="M")
    booked = post(client, "/api/v1/appointments", {"slot_id": slot.pk, "reason": "urgent"}, **bearer(citizen))
    appointment_id = booked.json()["id"]

    assert client.get(f"/api/v1/appointments/{appointment_id}", **bearer(citizen)).status_code == 200
    response = client.get(f"/api/v1/appointments/{appointment_id}", **bearer(stranger))
    assert response.status_code == 404
    assert error(response)["code"] == "appointment_not_found"
    cancel = post(
        client, f"/api/v1/appointments/{appointment_id}/cancel", {"reason": "other"}, **bearer(stranger)
    )
    assert cancel.status_code == 404
    assert Appointment.objects.get(pk=appointment_id).status == Appointment.Status.BOOKED
    assert client.get("/api/v1/appointments", **bearer(stranger)).json() == {"upcoming": [], "past": []}


def test_cancelling_after_the_cut_off_is_refused(client, citizen, role):
    soon = SlotFactory(role=role, start=timezone.now() + timedelta(hours=1, minutes=30))
    role.clinic.min_notice = timedelta(minutes=30)
    role.clinic.save()
    booked = post(client, "/api/v1/appointments", {"slot_id": soon.pk, "reason": "urgent"}, **bearer(citizen))
    assert booked.status_code == 201, booked.content
    assert booked.json()["cancellable"] is False  # the clinic's cut-off is 2 hours
    response = post(
        client, f"/api/v1/appointments/{booked.json()['id']}/cancel", {"reason": "other"}, **bearer(citizen)
    )
    assert response.status_code == 422
    assert error(response)["code"] == "cancel_too_late"


# --- conflicts -----------------------------------------------------------------------------------


def test_a_slot_taken_by_someone_else_gets_409_with_alternatives(client, citizen, role):
    taken = SlotFactory(role=role)
    later = SlotFactory(role=role)
    other = CitizenFactory(first_name="Marc", last_name="Roy", sex="M")
    first = post(client, "/api/v1/appointments", {"slot_id": taken.pk, "reason": "urgent"}, **bearer(other))
    assert first.status_code == 201

    response = post(
        client, "/api/v1/appointments", {"slot_id": taken.pk, "reason": "urgent"}, **bearer(citizen), **EN
    )
    assert response.status_code == 409
    err = error(response)
    assert err["code"] == "slot_unavailable"
    assert err["message"] == "Sorry, this time was just taken by someone else."
    assert [s["id"] for s in err["alternatives"]] == [later.pk]
    assert err["alternatives"][0]["clinic"]["name"] == role.clinic.name


def test_a_slot_held_by_someone_else_cannot_be_held(client, citizen, slot):
    other = CitizenFactory(first_name="Marc", last_name="Roy", sex="M")
    assert post(client, "/api/v1/holds", {"slot_id": slot.pk}, **bearer(other)).status_code == 201
    response = post(client, "/api/v1/holds", {"slot_id": slot.pk}, **bearer(citizen))
    assert response.status_code == 409
    assert error(response)["code"] == "slot_unavailable"
    assert error(response)["alternatives"] == []


def test_an_unknown_slot_gets_404(client, citizen):
    response = post(client, "/api/v1/holds", {"slot_id": 999999}, **bearer(citizen))
    assert response.status_code == 404
    assert error(response)["code"] == "slot_not_found"


# --- invalid parameters, in both languages -------------------------------------------------------


def test_invalid_search_parameters_get_field_messages_in_french_by_default(client, citizen):
    response = client.get(
        "/api/v1/slots",
        {"path": "partout", "radius_km": "7", "page": "0", "date_from": "demain"},
        **bearer(citizen),
    )
    assert response.status_code == 400
    assert response["Content-Language"] == "fr"
    err = error(response)
    assert err["code"] == "invalid"
    assert set(err["fields"]) == {"path", "radius_km", "page", "date_from"}
    assert err["fields"]["path"] == ["«\xa0partout\xa0» n'est pas un choix valide."]
    assert err["fields"]["page"] == ["Assurez-vous que cette valeur est supérieure ou égale à\xa01."]
    assert err["fields"]["date_from"][0].startswith("La date n'a pas le bon format.")


def test_invalid_search_parameters_get_field_messages_in_english_on_request(client, citizen):
    response = client.get(
        "/api/v1/slots",
        {"path": "partout", "radius_km": "7", "page": "0", "date_from": "demain"},
        **bearer(citizen),
        **EN,
    )
    assert response.status_code == 400
    assert response["Content-Language"] == "en"
    err = error(response)
    assert err["message"] == "Some fields are not valid. See the details for each one."
    assert err["fields"]["path"] == ['"partout" is not a valid choice.']
    assert err["fields"]["radius_km"] == ['"7" is not a valid choice.']
    assert err["fields"]["page"] == ["Ensure this value is greater than or equal to 1."]
    assert err["fields"]["date_from"][0].startswith("Date has wrong format.")


def test_a_required_field_is_named_in_both_languages(client, citizen):
    fr = post(client, "/api/v1/appointments", {"slot_id": 1}, **bearer(citizen), **FR)
    en = post(client, "/api/v1/appointments", {"slot_id": 1}, **bearer(citizen), **EN)
    assert error(fr)["fields"] == {"reason": ["Ce champ est obligatoire."]}
    assert error(en)["fields"] == {"reason": ["This field is required."]}


@pytest.mark.parametrize(
    ("params", "field", "message"),
    [
        ({"date_from": "2000-01-01"}, "date_from", "The first day cannot be in the past."),
        ({"date_from": "+2", "date_to": "+1"}, "date_to", "The last day cannot be before the first day."),
        ({"date_to": "+400"}, "date_to", "Search at most 90 days ahead."),
        ({"postal_code": "12345"}, "postal_code", "Unknown postal code; format A1A 1A1."),
        ({"postal_code": "X9X 9X9"}, "postal_code", "Unknown postal code; format A1A 1A1."),
        ({"language": "english"}, "language", "A two-letter language code, e.g. fr or en."),
    ],
)
def test_search_dates_and_places_are_checked(client, citizen, fsa, params, field, message):
    today = timezone.localdate()
    query = {"path": "near"}
    for key, value in params.items():
        query[key] = (today + timedelta(days=int(value))).isoformat() if value.startswith("+") else value
    response = client.get("/api/v1/slots", query, **bearer(citizen), **EN)
    assert response.status_code == 400, response.content
    assert error(response)["fields"] == {field: [message]}


def test_searching_my_doctor_without_one_says_to_search_near_me(client, citizen):
    response = client.get("/api/v1/slots", {"path": "mine"}, **bearer(citizen), **EN)
    assert response.status_code == 422
    err = error(response)
    assert err["code"] == "not_enrolled"
    assert "path=near" in err["message"]
    assert list(err["fields"]) == ["path"]


def test_searching_near_me_without_a_postal_code_asks_for_one(client, db):
    homeless = CitizenFactory(postal_code="")
    response = client.get("/api/v1/slots", {"path": "near"}, **bearer(homeless), **EN)
    assert response.status_code == 400
    assert list(error(response)["fields"]) == ["postal_code"]


def test_malformed_json_and_wrong_methods_keep_the_error_shape(client, citizen):
    bad = client.post("/api/v1/holds", data="{nope", content_type="application/json", **bearer(citizen))
    assert bad.status_code == 400
    assert error(bad)["code"] == "parse_error"
    wrong = client.delete("/api/v1/holds", **bearer(citizen))
    assert wrong.status_code == 405
    assert error(wrong)["code"] == "method_not_allowed"


def test_an_unexpected_exception_becomes_a_bare_500(caplog):
    response = exception_handler(RuntimeError("secret detail: TREM55512314"), {"view": None})
    assert response.status_code == 500
    assert response.data["error"]["code"] == "server_error"
    assert "secret" not in json.dumps(response.data)
    assert "TREM" not in json.dumps(response.data)
    assert "secret detail" in caplog.text


# --- OpenAPI schema ------------------------------------------------------------------------------


def test_the_schema_renders_and_validates(client):
    response = client.get("/api/schema/", HTTP_ACCEPT="application/json")
    assert response.status_code == 200
    rendered = json.loads(response.content)
    assert rendered["components"]["securitySchemes"]["citizenToken"]["scheme"] == "bearer"
    assert "/api/v1/appointments/{appointment_id}/cancel" in rendered["paths"]

    schema = SchemaGenerator().get_schema(request=None, public=True)
    validate_schema(schema)
    for url, operations in schema["paths"].items():
        if not url.startswith("/api/v1/"):
            continue
        assert "nam" not in url.lower()
        for method, operation in operations.items():
            expected = [] if url == "/api/v1/identify" else [{"citizenToken": []}]
            assert operation.get("security", []) == expected, (method, url)
            codes = set(operation["responses"])
            assert any(code.startswith("2") for code in codes), (method, url)
            assert any(code.startswith("4") for code in codes), (method, url)


def test_the_citizen_api_schema_has_no_generator_warnings():
    GENERATOR_STATS.reset()
    generator = SchemaGenerator(patterns=[path("api/v1/", include("booking.api.urls"))])
    schema = generator.get_schema(request=None, public=True)
    validate_schema(schema)
    assert not GENERATOR_STATS, "drf-spectacular warned while generating the citizen API schema"
    assert {"VisitReason", "CancelReason", "Error", "Slot", "Appointment"} <= set(
        schema["components"]["schemas"]
    )


def test_the_api_docs_page_renders(client):
    response = client.get("/api/docs/")
    assert response.status_code == 200
    assert b"swagger" in response.content.lower()


def test_our_own_messages_are_french_by_default_and_english_on_request(client, citizen):
    english = "The first day cannot be in the past."
    with translation.override("fr"):
        french = translation.gettext(english)
    if french == english:
        pytest.skip("locale/fr has no translation of this citizen API message yet")
    params = {"path": "near", "date_from": "2000-01-01"}
    fr = client.get("/api/v1/slots", params, **bearer(citizen))
    en = client.get("/api/v1/slots", params, **bearer(citizen), **EN)
    assert error(fr)["fields"]["date_from"] == [french]
    assert error(en)["fields"]["date_from"] == [english]
