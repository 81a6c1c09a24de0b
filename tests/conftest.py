"""Shared fixtures and personas. PostgreSQL and Redis are real; only e-mail and clocks are faked."""

import pytest
from django.core.cache import cache

from tests.factories import CitizenFactory, ClinicFactory, EnrolmentFactory, RoleFactory, SlotFactory


@pytest.fixture(autouse=True)
def _clean_cache():
    # Rate-limit counters live in Redis (database 15 for tests): each test starts from zero.
    cache.clear()
    yield


@pytest.fixture
def clinic(db):
    return ClinicFactory()


@pytest.fixture
def role(clinic):
    return RoleFactory(clinic=clinic)


@pytest.fixture
def citizen(db):
    return CitizenFactory()


@pytest.fixture
def enrolled_citizen(role):
    enrolment = EnrolmentFactory(practitioner=role.practitioner, gmf=role.clinic.gmf)
    return enrolment.citizen


@pytest.fixture
def colleague_role(clinic):
    """Another doctor of the same clinic, so of the same GMF."""
    return RoleFactory(clinic=clinic)


@pytest.fixture
def other_gmf_role(db):
    return RoleFactory(clinic=ClinicFactory())


@pytest.fixture
def slot(role):
    return SlotFactory(role=role)


def identify_payload(citizen, **overrides):
    data = {
        "first_name": citizen.first_name,
        "last_name": citizen.last_name,
        "nam": citizen.nam,
        "card_sequence": citizen.card_sequence,
        "birth_date": citizen.birth_date.isoformat(),
    }
    data.update(overrides)
    return data


@pytest.fixture
def sync_db_under_playwright():
    """Django's async-safety check lifted for a browser test (tests/browser_support.py says why)."""
    from tests.browser_support import sync_orm_allowed

    with sync_orm_allowed():
        yield


@pytest.fixture(scope="session")
def browser_server(django_db_setup, django_db_blocker, live_server):
    """The live server for browser tests. At the end of the session its request threads (daemons
    that close their database connection only when the browser's keep-alive socket closes) are
    waited for, so that the test database can be dropped; stragglers are ended after five seconds."""
    import time

    from django.db import connection

    yield live_server
    others = "datname = current_database() AND pid <> pg_backend_pid()"
    with django_db_blocker.unblock():
        for _ in range(50):
            with connection.cursor() as cursor:
                cursor.execute(f"SELECT count(*) FROM pg_stat_activity WHERE {others}")  # noqa: S608
                if cursor.fetchone()[0] == 0:
                    return
            time.sleep(0.1)
        with connection.cursor() as cursor:
            cursor.execute(f"SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE {others}")  # noqa: S608
