"""Fixtures shared with the sync tests: the EMR personas."""

from tests.sync.conftest import fhir_a, persona_a  # noqa: F401
