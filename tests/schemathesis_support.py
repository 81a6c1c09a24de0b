"""Our two OpenAPI descriptions fuzzed alike (schemathesis): the citizen API
(tests/security/test_hostile_input.py) and the FHIR API (tests/sync/test_fhir_schemathesis.py).

Every described operation gets a fixed number of generated cases, derandomized (the same cases on
every run), sent with a valid bearer token so that they reach the views. Checked: no 5xx, every status
code and content type documented, every body matching its schema.

The checks stay written out in each test's body, the same in both: with ``derandomize`` Hypothesis
seeds the cases from the test function's source (decorators and comments aside), so moving the call
here would change every generated case. Its decorators and fixtures are free to move, and have.
"""

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from django.core.signals import request_finished, request_started
from django.db import close_old_connections
from hypothesis import HealthCheck, Phase, settings


def fuzz_settings(examples: int) -> Callable[[Any], Any]:
    """Hypothesis's settings for one fuzzing test: ``examples`` cases per operation, the same on
    every run, no deadline, no example database, no shrinking."""
    return settings(
        max_examples=examples,
        derandomize=True,
        deadline=None,
        database=None,
        phases=[Phase.explicit, Phase.generate],
        suppress_health_check=list(HealthCheck),
    )


@contextmanager
def wsgi_keeps_the_test_connection() -> Iterator[None]:
    """As Django's test client does: the WSGI app must not close the test's transaction connection.
    (Not around a test-client request: the client reconnects the signals when it is done.)"""
    request_started.disconnect(close_old_connections)
    request_finished.disconnect(close_old_connections)
    try:
        yield
    finally:
        request_started.connect(close_old_connections)
        request_finished.connect(close_old_connections)
