"""The clinic personas (tests/clinics/conftest.py: staff signed in with a real TOTP code, a board
administrator) are reused as they are, so the personas here are the ones the rest of the suite
trusts. The EMR clients come from tests/sync/conftest.py's helpers (real OAuth tokens)."""

from tests.clinics.conftest import world

__all__ = ["world"]
