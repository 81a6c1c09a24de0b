"""Time the analysts' dashboard on a seeded database (issue 6: first page under one second).

Usage, on a database seeded with ``seed_demo --clinics 2000 --days 60 --seed 1``:

    DJANGO_DEBUG=true DATABASE_URL=... .venv/bin/python bench/reporting_dashboard.py

Times the full aggregation (first run), an incremental run with nothing new, then the dashboard's
first page (default filters) through the whole Django stack (test client, no socket): the first
request and the median of ten more. The analyst is signed in with a TOTP authenticator and a session
that records the second factor, as allauth's sign-in leaves it.
"""

import os
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")

import django  # noqa: E402

django.setup()

from allauth.account.internal.flows import login as login_flows  # noqa: E402
from allauth.mfa.totp.internal.auth import TOTP, generate_totp_secret  # noqa: E402
from django.db import connection  # noqa: E402
from django.test import Client  # noqa: E402

from booking.models import Appointment, Slot, WeekStat  # noqa: E402
from booking.reporting.aggregate import reporting_aggregate  # noqa: E402
from citizens.models import User  # noqa: E402
from clinics.models import BoardRole, Clinic  # noqa: E402

USER_KEY = login_flows._AUTHENTICATION_METHODS_USER_SESSION_KEY


def analyst_client() -> Client:
    user, created = User.objects.get_or_create(email="analyste-banc@example.org")
    if created:
        TOTP.activate(user, generate_totp_secret())
        BoardRole.objects.create(user=user, role=BoardRole.Role.ANALYST)
    client = Client(HTTP_HOST="localhost")
    client.force_login(user)
    session = client.session
    # What allauth's sign-in with a TOTP code leaves in the session (its records belong to this user).
    session["account_authentication_methods"] = [{"method": "mfa", "type": "totp", "at": time.time()}]
    session[USER_KEY] = str(user.pk)
    session.save()
    return client


def main() -> None:
    print(
        f"clinics {Clinic.objects.count():,}, slots {Slot.objects.count():,}, "
        f"appointments {Appointment.objects.count():,}, database {connection.vendor}"
    )
    started = time.perf_counter()
    result = reporting_aggregate(full=True)
    print(f"full aggregation: {time.perf_counter() - started:.1f} s {result}")
    started = time.perf_counter()
    result = reporting_aggregate()
    print(f"incremental run, nothing new: {time.perf_counter() - started:.2f} s {result}")
    print(f"summary rows: {WeekStat.objects.count():,}")
    client = analyst_client()
    started = time.perf_counter()
    response = client.get("/analyses/")
    cold = time.perf_counter() - started
    assert response.status_code == 200, response.status_code
    times = []
    for _ in range(10):
        started = time.perf_counter()
        assert client.get("/analyses/").status_code == 200
        times.append(time.perf_counter() - started)
    median = statistics.median(times) * 1000
    print(
        f"dashboard first page: first request of a cold process {cold * 1000:.0f} ms (imports, template"
        f" compilation, first connection); then median {median:.0f} ms, max {max(times) * 1000:.0f} ms"
        f" over 10 requests ({len(response.content):,} bytes)"
    )


if __name__ == "__main__":
    main()
