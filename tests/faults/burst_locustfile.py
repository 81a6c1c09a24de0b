"""Locust users of tests/faults/test_waiting_room_burst.py (not a benchmark: a bounded burst).

Each user is one citizen (a bearer token from ``BURST_TOKENS``) who searches until the waiting room
admits them (503 + Retry-After while they wait), then searches quickly until the rate limit answers
429, waits the Retry-After, searches once more and leaves. Every response is written as one JSON
line to ``BURST_LOG`` for the test to check (a request that got no answer has status 0).
"""

import itertools
import json
import os
import time

from locust import HttpUser, task
from locust.exception import StopUser

TOKENS = os.environ["BURST_TOKENS"].split(",")
LOG = os.environ["BURST_LOG"]
SEARCH = "/api/v1/slots?path=near"
_numbers = itertools.count()


class Citizen(HttpUser):
    def on_start(self) -> None:
        self.number = next(_numbers)
        # A new connection for each request: between polls a citizen waits longer than gunicorn keeps
        # an idle connection open (2 s), and reusing one it has just closed fails on the client side.
        self.headers = {"Authorization": f"Bearer {TOKENS[self.number]}", "Connection": "close"}

    def _search(self, step: str) -> tuple[int, dict]:
        sent = time.time()
        with self.client.get(SEARCH, headers=self.headers, name=step, catch_response=True) as response:
            received = time.time()
            try:
                body = response.json()
            except ValueError:
                body = {}
            error = body.get("error", {}) if isinstance(body, dict) else {}
            line = {
                "user": self.number,
                "step": step,
                "status": response.status_code,
                "sent": sent,
                "received": received,
                "retry_after": response.headers.get("Retry-After"),
                "code": error.get("code"),
                "position": error.get("position"),
            }
            with open(LOG, "a") as log:
                log.write(json.dumps(line) + "\n")
            if response.status_code in (200, 429, 503):
                response.success()
            return response.status_code, line

    @task
    def visit(self) -> None:
        while True:  # the waiting room
            status, line = self._search("queue")
            if status != 503:
                break
            time.sleep(int(line["retry_after"] or 1))
        if status == 200:
            for _ in range(10):  # the rate limit
                status, line = self._search("burst")
                if status == 429:
                    time.sleep(int(line["retry_after"]) + 0.05)
                    self._search("after_window")
                    break
        with open(LOG, "a") as log:
            log.write(json.dumps({"user": self.number, "step": "done", "received": time.time()}) + "\n")
        raise StopUser()
