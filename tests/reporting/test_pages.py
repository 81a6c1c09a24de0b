"""The analysts' dashboard, its exports and API, and the clinic view: who may open them, what they
show (the hand-computed week of conftest.py), suppression, both languages, and the access audit."""

import csv
import io
import json
from datetime import timedelta

import pytest
from django.test import Client
from django.urls import reverse

from booking.models import ReportAccess
from booking.reporting.aggregate import reporting_aggregate
from clinics.models import BoardRole
from tests.clinics.conftest import make_account, sign_in
from tests.factories import ClinicFactory

from .conftest import WEEK, add_misses, build_fixture_week

pytestmark = pytest.mark.django_db

WEEKS = {"week_from": WEEK.isoformat(), "week_to": (WEEK + timedelta(days=6)).isoformat()}


@pytest.fixture
def analyst(db):
    user = make_account(with_totp=True)
    BoardRole.objects.create(user=user, role=BoardRole.Role.ANALYST)
    return user


@pytest.fixture
def analyst_client(analyst) -> Client:
    return sign_in(Client(), analyst)


@pytest.fixture
def figures(fixture_week):
    add_misses(
        region=fixture_week.clinic.region,
        fsa="H2X",
        reason="urgent",
        count=12,
        at=fixture_week.slots[0].start,
    )
    add_misses(
        region=fixture_week.clinic.region,
        fsa="H2X",
        reason="periodic",
        count=3,
        at=fixture_week.slots[0].start,
    )
    reporting_aggregate()
    return fixture_week


def test_the_analyst_sees_the_figures_of_the_hand_computed_week_in_french(analyst_client, analyst, figures):
    response = analyst_client.get(reverse("reporting:dashboard"), WEEKS)
    assert response.status_code == 200
    html = response.content.decode()
    assert '<html lang="fr">' in html
    assert "Information de gestion provinciale" in html
    assert "45,5 %" in html  # fill rate 5 / 11
    assert "30 h" in html  # median lead time
    assert "10 jours" in html  # 90th percentile
    assert "36,4 %" not in html  # EMR share 4 / 11: its numerator is under 5, so suppressed
    assert "&lt;5" in html  # 2 cancellations, 1 no-show among 3: suppressed
    assert "<svg" in html and "<table" in html
    assert response["Cache-Control"] == "no-store, private"
    access = ReportAccess.objects.get(user=analyst)
    assert access.what == "dashboard"
    assert access.filters["week_from"] == WEEK.isoformat()


def test_the_dashboard_renders_in_english(analyst_client, figures):
    analyst_client.post(reverse("set_language"), {"language": "en", "next": "/"})
    html = analyst_client.get(reverse("reporting:dashboard"), WEEKS).content.decode()
    assert '<html lang="en">' in html
    assert "Provincial management information" in html
    assert "45.5 %" in html
    assert "10 days" in html


def test_unmet_demand_is_ranked_by_region_and_small_counts_are_suppressed(analyst_client, figures):
    html = analyst_client.get(reverse("reporting:dashboard"), WEEKS).content.decode()
    demand = html[html.index("Demande non satisfaite") :]
    assert "H2X" in demand
    assert ">12<" in demand  # urgent searches
    assert "&lt;5" in demand  # the 3 searches for a periodic exam


def test_filters_by_gmf_and_clinic_read_the_clinic_rows(analyst_client, figures):
    other = build_fixture_week(ClinicFactory(region=figures.clinic.region))
    reporting_aggregate()
    everyone = analyst_client.get(reverse("reporting:export_json"), WEEKS).json()
    assert everyone["figures"]["slots_offered"] == 22
    one = analyst_client.get(reverse("reporting:export_json"), {**WEEKS, "gmf": figures.clinic.gmf_id}).json()
    assert one["figures"]["slots_offered"] == 11
    assert one["regions"] == []
    clinic = analyst_client.get(
        reverse("reporting:export_json"), {**WEEKS, "region": "06", "clinic": other.clinic.pk}
    ).json()
    assert clinic["figures"]["slots_booked"] == 5
    assert clinic["figures"]["fill_rate"] == 45.5


def test_a_reversed_week_range_is_refused_with_an_error_summary(analyst_client, figures):
    response = analyst_client.get(
        reverse("reporting:dashboard"), {"week_from": WEEKS["week_to"], "week_to": "2027-01-04"}
    )
    assert response.status_code == 400
    assert 'id="error-summary"' in response.content.decode()


def test_exports_and_api_refuse_a_reversed_week_range(analyst_client, figures):
    wrong = {"week_from": WEEKS["week_to"], "week_to": "2027-01-04"}
    assert analyst_client.get(reverse("reporting:export_csv"), wrong).status_code == 400
    response = analyst_client.get(reverse("reporting:export_json"), wrong)
    assert response.status_code == 400
    assert "week_to" in response.json()["errors"]
    assert analyst_client.get("/api/reporting/v1/figures", wrong).status_code == 400


def test_the_csv_export_has_the_same_figures_suppressed(analyst_client, analyst, figures):
    response = analyst_client.get(
        reverse("reporting:export_csv"), {**WEEKS, "clinic": figures.clinic.pk, "region": "06"}
    )
    assert response.status_code == 200
    assert response["Content-Type"].startswith("text/csv")
    rows = list(csv.DictReader(io.StringIO(response.content.decode().lstrip("\ufeff"))))
    assert len(rows) == 1
    row = rows[0]
    assert (row["week"], row["slots_offered"], row["slots_booked"], row["fill_rate"]) == (
        WEEK.isoformat(),
        "11",
        "5",
        "45.5",
    )
    assert row["lead_time_median_hours"] == "30"
    assert row["noshow_rate"] == "<5"
    assert row["offered_by_audience.public"] == "7"
    assert row["offered_by_audience.gmf_patients"] == "<5"
    assert "Julie" not in response.content.decode()  # no personal data (the fixture's citizens)
    assert ReportAccess.objects.filter(user=analyst, what="export.csv").count() == 1


def test_the_json_export_and_the_api_answer_the_same(analyst_client, figures):
    export = analyst_client.get(reverse("reporting:export_json"), WEEKS).json()
    api = analyst_client.get("/api/reporting/v1/figures", WEEKS).json()
    assert export == api
    assert export["figures"]["slots_offered"] == 11
    assert export["figures"]["lead_time_p90_hours"] == 240
    assert export["unmet_demand"]["total"] == 15
    rows = analyst_client.get("/api/reporting/v1/rows", WEEKS).json()["rows"]
    assert [r["region"] for r in rows] == ["06"]


def test_the_api_is_documented_in_the_openapi_schema(client):
    from drf_spectacular.generators import SchemaGenerator
    from drf_spectacular.validation import validate_schema

    assert (
        "/api/reporting/v1/figures"
        in client.get("/api/schema/", HTTP_ACCEPT="application/json").content.decode()
    )
    schema = SchemaGenerator().get_schema(request=None, public=True)
    validate_schema(schema)
    for url in ("/api/reporting/v1/figures", "/api/reporting/v1/rows"):
        operation = schema["paths"][url]["get"]
        assert operation["security"] == [{"cookieAuth": []}]  # an analyst's session, never a citizen token
        assert {"200", "400", "403"} <= set(operation["responses"])
        assert {p["name"] for p in operation["parameters"]} >= {
            "region",
            "gmf",
            "clinic",
            "week_from",
            "week_to",
        }


@pytest.mark.parametrize("persona", ["anonymous", "citizen_user", "admin_a", "board_admin"])
def test_only_analysts_open_the_dashboard_and_the_api(client_as, persona, figures):
    client = client_as(persona)
    assert client.get(reverse("reporting:dashboard")).status_code in (302, 403)
    assert client.get(reverse("reporting:export_csv")).status_code in (302, 403)
    assert client.get("/api/reporting/v1/figures").status_code == 403
    assert not ReportAccess.objects.exists()


def test_an_analyst_without_a_second_factor_in_this_session_is_refused_by_the_api(analyst, figures):
    client = Client()
    client.force_login(analyst)
    assert client.get("/api/reporting/v1/figures").status_code == 403


# --- sync health ---------------------------------------------------------------------------------


def test_sync_health_lists_emr_clinics_without_a_recent_synchronization(analyst_client, figures):
    from booking.models import Slot
    from sync.models import AgendaSnapshot, EmrClient
    from tests.sync.conftest import create_client

    quiet = ClinicFactory(name="Clinique Silencieuse", emr_product="ClinIQ")
    figures.clinic.emr_product = "ClinIQ"
    figures.clinic.save(update_fields=["emr_product"])
    client_id, _ = create_client("Vendeur|ClinIQ", figures.clinic)
    slot = Slot.objects.filter(clinic=figures.clinic).first()
    AgendaSnapshot.objects.create(
        emr_client=EmrClient.objects.get(application__client_id=client_id),
        role=slot.role,
        window_start=slot.start,
        window_end=slot.end,
        generation=1,
        status=AgendaSnapshot.Status.DONE,
        digest="0" * 64,
    )
    health = analyst_client.get(reverse("reporting:export_json"), WEEKS).json()["sync_health"]
    assert health["emr_clinics"] == 2
    assert [row["clinic"] for row in health["stale"]] == [quiet.pk]
    html = analyst_client.get(reverse("reporting:dashboard"), WEEKS).content.decode()
    assert "Clinique Silencieuse" in html


# --- the clinic view -----------------------------------------------------------------------------


def _region_peers(region, n):
    for _ in range(n):
        build_fixture_week(ClinicFactory(region=region))


def test_a_clinic_admin_sees_own_figures_without_the_region_when_it_has_under_five_clinics(client_as, world):
    build_fixture_week(world.clinic_a)
    reporting_aggregate()
    url = reverse("clinic_figures", args=[world.clinic_a.pk])
    html = client_as("admin_a").get(url, WEEKS).content.decode()
    assert "Clinique A" in html
    assert "45,5 %" in html  # its own fill rate
    assert "médiane" in html.lower() and "moins de 5" in html  # the notice, not the column
    assert "Médiane des cliniques de votre région" not in html


def test_the_region_median_is_shown_when_the_region_has_five_clinics(client_as, world, settings):
    build_fixture_week(world.clinic_a)
    _region_peers(world.clinic_a.region, 4)
    reporting_aggregate()
    settings.LANGUAGE_CODE = "fr"
    html = (
        client_as("admin_a").get(reverse("clinic_figures", args=[world.clinic_a.pk]), WEEKS).content.decode()
    )
    assert "Médiane des cliniques de votre région" in html
    assert "45,5 %" in html


def test_the_clinic_view_is_for_the_clinic_admin_only(client_as, world):
    url = reverse("clinic_figures", args=[world.clinic_a.pk])
    assert client_as("admin_b").get(url).status_code == 404
    assert client_as("receptionist_a").get(url).status_code == 404
    assert client_as("admin_a").get(url).status_code == 200


def test_json_export_carries_no_personal_data(analyst_client, figures):
    body = json.dumps(analyst_client.get(reverse("reporting:export_json"), WEEKS).json())
    for appointment in figures.appointments.values():
        assert appointment.citizen.nam not in body
        assert appointment.reference not in body


def test_the_staff_home_links_the_dashboard_for_analysts_and_the_figures_for_clinic_admins(
    analyst_client, client_as, world
):
    home = reverse("clinics:home")
    assert reverse("reporting:dashboard") in analyst_client.get(home).content.decode()
    admin_home = client_as("admin_a").get(home).content.decode()
    assert reverse("clinic_figures", args=[world.clinic_a.pk]) in admin_home
    assert reverse("reporting:dashboard") not in admin_home
    receptionist_home = client_as("receptionist_a").get(home).content.decode()
    assert reverse("clinic_figures", args=[world.clinic_a.pk]) not in receptionist_home


def test_docs_metrics_uses_the_words_of_the_dashboard(analyst_client, figures):
    from pathlib import Path

    doc = (Path(__file__).resolve().parents[2] / "docs" / "metrics.md").read_text()
    analyst_client.post(reverse("set_language"), {"language": "en", "next": "/"})
    page = analyst_client.get(reverse("reporting:dashboard"), WEEKS).content.decode().replace("&#x27;", "'")
    for label in (
        "Slots offered",
        "Slots booked",
        "Fill rate",
        "Median lead time",
        "90th percentile lead time",
        "Appointments",
        "Cancellations",
        "No-show rate",
        "Share of slots from the EMR",
        "Searches without result",
        "Waitlist length",
        "Sync health",
        "Slots offered by audience",
        "Slots offered by reason accepted",
        "Slots offered by modality",
        "Slots offered by source (EMR or web agenda)",
        "Appointments by booking channel",
        "Cancellations by reason",
        "Cancellations by timing",
        "Cancellations by who cancelled",
    ):
        assert f"| {label} (" in doc, label
        assert label in page, label
