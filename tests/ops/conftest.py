"""Fixtures shared with the sync and clinic tests: the EMR personas, the clinic staff and board."""

from tests.clinics.conftest import client_as, world  # noqa: F401
from tests.sync.conftest import fhir_a, persona_a  # noqa: F401
