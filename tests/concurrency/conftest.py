"""Run callables in real threads that start together, each on its own PostgreSQL connection.

Tests here use ``@pytest.mark.django_db(transaction=True)``: rows are committed, so that every
thread sees them, and the tables are emptied after each test.
"""

import threading
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pytest
from django.db import connection, connections


@dataclass
class Outcome:
    value: Any = None
    error: BaseException | None = None

    @property
    def ok(self) -> bool:
        return self.error is None


class Outcomes(list):
    @property
    def winners(self) -> list[Outcome]:
        return [o for o in self if o.ok]

    def errors_by_type(self) -> Counter:
        return Counter(type(o.error).__name__ for o in self if not o.ok)


def run_concurrently(callables: list[Callable[[], Any]], *, timeout: float = 60) -> Outcomes:
    """Start every callable at the same moment (a Barrier, after each has connected) and wait."""
    barrier = threading.Barrier(len(callables))
    outcomes = Outcomes(Outcome() for _ in callables)

    def worker(index: int, call: Callable[[], Any]) -> None:
        try:
            connection.ensure_connection()  # connect first, so that the race is in the queries
            barrier.wait(timeout=timeout)
            outcomes[index].value = call()
        except BaseException as exc:  # noqa: BLE001 - the test inspects every outcome
            outcomes[index].error = exc
        finally:
            connections.close_all()  # this thread's connections only: they are thread-local

    threads = [threading.Thread(target=worker, args=(i, c), daemon=True) for i, c in enumerate(callables)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout)
    stuck = [t for t in threads if t.is_alive()]
    assert not stuck, f"{len(stuck)} threads did not finish within {timeout}s"
    return outcomes


@pytest.fixture
def concurrently():
    return run_concurrently
