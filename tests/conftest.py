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
