"""Production settings: `manage.py check --deploy` is clean with the production variables set, and
the settings refuse to start without a secret key."""

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

PRODUCTION_ENV = {
    "DJANGO_SETTINGS_MODULE": "config.settings",
    "SECRET_KEY": "x7!Kq2#vLr9@Tz4$Wm8^Pn6&Hb3*Jd5(Fs1)Gc0-Yt_Ue+Ra=Io%Ql",
    "DATABASE_URL": "postgres://postgres@127.0.0.1:5432/rdv",
    "REDIS_URL": "redis://127.0.0.1:6379/15",
    "ALLOWED_HOSTS": "rdv.example.ca",
    "DJANGO_DEBUG": "false",
    "EMAIL_URL": "smtp+tls://rdv:secret@smtp.example.ca:587",
    "SITE_URL": "https://rdv.example.ca",
}


def _run(*args, env):
    # Only what a process needs to run: none of the test run's own settings leak in.
    clean = {k: os.environ[k] for k in ("PATH", "HOME", "LANG") if k in os.environ}
    return subprocess.run(
        [sys.executable, "manage.py", *args],
        cwd=ROOT,
        env={**clean, **env},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_check_deploy_is_clean_with_production_variables():
    result = _run("check", "--deploy", "--fail-level", "WARNING", env=PRODUCTION_ENV)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "no issues" in result.stdout


def test_production_settings_refuse_to_start_without_a_secret_key():
    env = {k: v for k, v in PRODUCTION_ENV.items() if k != "SECRET_KEY"}
    result = _run("check", env=env)
    assert result.returncode != 0
    assert "SECRET_KEY must be set" in result.stderr


def test_production_settings_refuse_to_start_without_e_mail_or_site_url():
    for missing in ("EMAIL_URL", "SITE_URL"):
        env = {k: v for k, v in PRODUCTION_ENV.items() if k != missing}
        result = _run("check", env=env)
        assert result.returncode != 0
        assert f"{missing} must be set" in result.stderr


@pytest.mark.parametrize("missing", ["DATABASE_URL", "REDIS_URL"])
def test_production_settings_refuse_to_start_without_the_database_or_redis(missing):
    """Without them the demo's fallbacks (a SQLite file under var/, tasks run inline with a cache per
    process) would serve production quietly."""
    env = {k: v for k, v in PRODUCTION_ENV.items() if k != missing}
    result = _run("check", env=env)
    assert result.returncode != 0
    assert "ImproperlyConfigured" in result.stderr
    assert f"{missing} must be set when DJANGO_DEBUG is off" in result.stderr
    assert "docs/operations.md" in result.stderr
    # Given as a file (Docker/Kubernetes secrets), it counts as set.
    assert (
        _run("check", env={**env, f"{missing}_FILE": "/nonexistent"}).stderr.count(
            f"{missing}_FILE: cannot read"
        )
        == 1
    )


def test_the_demo_still_starts_with_no_configuration_at_all():
    """`make run` sets only DJANGO_DEBUG=true: the embedded SQLite file and inline tasks."""
    shown = _run(
        "shell",
        "-c",
        "from django.conf import settings as s;"
        " print(s.DATABASES['default']['ENGINE'], s.CELERY_TASK_ALWAYS_EAGER)",
        env={"DJANGO_SETTINGS_MODULE": "config.settings", "DJANGO_DEBUG": "true"},
    )
    assert shown.returncode == 0, shown.stderr
    assert shown.stdout.strip().splitlines()[-1].split() == ["django.db.backends.sqlite3", "True"]


def test_probes_and_metrics_are_not_redirected_to_https_but_pages_are(client, settings):
    settings.SECURE_SSL_REDIRECT = True
    assert client.get("/healthz").status_code == 200
    assert client.get("/readyz").status_code in (200, 503)  # answered here, whatever the database
    assert client.get("/metrics").status_code != 301
    assert client.get("/").status_code == 301


@pytest.fixture(scope="module")
def seeded_demo(tmp_path_factory):
    """The embedded SQLite file as `make run` makes it (migrated, seeded), once for this module;
    ``demo_env`` gives each test a copy of its own."""
    path = tmp_path_factory.mktemp("demo") / "demo.sqlite3"
    env = {
        "DJANGO_SETTINGS_MODULE": "config.settings",
        "DJANGO_DEBUG": "true",
        "DATABASE_URL": f"sqlite:///{path}",
    }
    migrated = _run("migrate", "--no-input", "-v", "0", env=env)
    seeded = _run("seed_demo", "--clinics", "2", "--days", "4", "--seed", "1", env=env)
    return path, migrated, seeded


@pytest.fixture
def demo_env(seeded_demo, tmp_path):
    path, migrated, seeded = seeded_demo
    assert migrated.returncode == 0 and seeded.returncode == 0, (migrated.stderr + seeded.stderr)[-2000:]
    copy = tmp_path / "demo.sqlite3"
    shutil.copyfile(path, copy)
    return {
        "DJANGO_SETTINGS_MODULE": "config.settings",
        "DJANGO_DEBUG": "true",
        "DATABASE_URL": f"sqlite:///{copy}",
    }


def test_the_demo_database_migrates_and_seeds_on_sqlite(seeded_demo):
    """`make run` on a fresh machine: every migration must also apply to the embedded SQLite file
    (a PostgreSQL-only column type once broke it), and the demo data must load into it."""
    _path, migrated, seeded = seeded_demo
    assert migrated.returncode == 0, migrated.stderr[-2000:]
    assert seeded.returncode == 0, seeded.stderr[-2000:]
    assert "Demo data: 2 clinics" in seeded.stdout


_DEMO_SNAPSHOT = """
import json
from datetime import UTC, datetime, timedelta
from clinics.models import PractitionerRole
from sync.models import EmrClient
from sync import snapshots
role = PractitionerRole.objects.order_by("pk").first()
from oauth2_provider.models import Application
from sync.models import EmrProduct
app = Application.objects.create(
    name="demo EMR", client_type="confidential", authorization_grant_type="client-credentials"
)
product = EmrProduct.objects.create(vendor="Demo", name="Demo EMR")
EMR = EmrClient.objects.create(product=product, application=app, name="demo EMR", scopes="system/Slot.write")
system = f"https://rdv-sante.quebec/fhir/sid/clinic/{role.clinic_id}/slot"
day = datetime.now(UTC).replace(hour=14, minute=0, second=0, microsecond=0) + timedelta(days=20)
def z(t):
    return t.strftime("%Y-%m-%dT%H:%M:%SZ")
def body(generation, order):
    slots = []
    for ident, k in zip(("A", "B", "C"), order):
        start = day + timedelta(minutes=30 * k)
        slots.append({"name": "slot", "resource": {
            "resourceType": "Slot", "schedule": {"reference": f"Schedule/{role.pk}"}, "status": "free",
            "start": z(start), "end": z(start + timedelta(minutes=15)),
            "serviceType": [{"coding": [{"system": "https://rdv-sante.quebec/fhir/CodeSystem/reason",
                                         "code": "follow_up"}]}],
            "identifier": [{"system": system, "value": ident}]}})
    return {"resourceType": "Parameters", "parameter": [
        {"name": "start", "valueInstant": z(day - timedelta(hours=1))},
        {"name": "end", "valueInstant": z(day + timedelta(hours=3))},
        {"name": "generation", "valueInteger": generation}] + slots}
reports = []
for generation, order in ((1, (0, 1, 2)), (2, (1, 0, 2))):  # then A and B trade times
    data = snapshots.snapshot_input(body(generation, order), role=role, clinic_ids=[role.clinic_id])
    snapshot, _retry = snapshots.snapshot_accept(emr_client=EMR, data=data)
    done = snapshots.snapshot_reconcile(snapshot.pk)
    reports.append(done.counts)
from booking.models import Slot
print(json.dumps({"reports": reports, "slots": sorted(
    (s.external_id, (s.start - day).seconds // 60, s.status)
    for s in Slot.objects.filter(role=role, external_id__in=["A", "B", "C"]))}, default=str))
"""


def test_the_demo_reconciles_an_agenda_snapshot_on_sqlite(demo_env):
    """The snapshot's store reads and the moves of slots trading times have a SQLite path, so that
    the curl examples of docs/sync-api.md work against `make run`."""
    result = _run("shell", "-c", _DEMO_SNAPSHOT, env=demo_env)
    assert result.returncode == 0, result.stderr[-3000:]
    shown = json.loads(result.stdout.strip().splitlines()[-1])
    first, swapped = shown["reports"]
    assert (first["created"], swapped["updated"], swapped["withdrawn"], swapped["unchanged"]) == (3, 2, 0, 1)
    assert shown["slots"] == [["A", 30, "free"], ["B", 0, "free"], ["C", 60, "free"]]


_DEMO_JOURNEY = """
import json
from django.test import Client
from booking.api.auth import citizen_token_make
from citizens.models import Citizen
citizen = Citizen.objects.filter(enrolments__is_active=True, is_synthetic=False).order_by("pk").first()
other = Citizen.objects.filter(is_synthetic=False).exclude(pk=citizen.pk).order_by("pk").first()
def auth(who):
    return {"HTTP_AUTHORIZATION": "Bearer " + citizen_token_make(who)[0]}
client = Client(SERVER_NAME="127.0.0.1")
out = {}
found = client.get("/api/v1/slots", {"path": "mine"}, **auth(citizen))
out["search"] = found.status_code
slot = found.json()["results"][0]
held = client.post("/api/v1/holds", {"slot_id": slot["id"]}, content_type="application/json", **auth(citizen))
out["hold"] = held.status_code
out["hidden_from_others"] = slot["id"] not in [
    s["id"] for s in client.get("/api/v1/slots", {"path": "near", "postal_code": other.fsa or "H2X"},
                                **auth(other)).json().get("results", [])]
body = {"slot_id": slot["id"], "hold_token": held.json()["hold_token"], "reason": slot["reasons"][0]}
booked = client.post("/api/v1/appointments", body, content_type="application/json", **auth(citizen))
again = client.post("/api/v1/appointments", body, content_type="application/json", **auth(citizen))
taken = client.post("/api/v1/appointments", {"slot_id": slot["id"], "reason": slot["reasons"][0]},
                    content_type="application/json", **auth(other))
out["book"], out["retry"], out["other"] = booked.status_code, again.status_code, taken.status_code
out["same"] = booked.json()["id"] == again.json()["id"]
cancelled = f"/api/v1/appointments/{booked.json()['id']}/cancel"
cancel = client.post(cancelled, {"reason": "cannot_attend"}, content_type="application/json", **auth(citizen))
out["cancel"] = cancel.status_code
print(json.dumps(out))
"""


def test_the_demo_books_on_sqlite(demo_env):
    """`make run`: a citizen searches, holds, books (a retry gives the same appointment, someone else
    gets 409) and cancels through the citizen API on the embedded SQLite database. The booking's
    hot path is PostgreSQL SQL; its ORM twin serves the demo."""
    result = _run("shell", "-c", _DEMO_JOURNEY, env=demo_env)
    assert result.returncode == 0, result.stderr[-3000:]
    shown = json.loads(result.stdout.strip().splitlines()[-1])
    assert shown == {
        "search": 200,
        "hold": 201,
        "hidden_from_others": True,
        "book": 201,
        "retry": 200,
        "other": 409,
        "same": True,
        "cancel": 200,
    }
