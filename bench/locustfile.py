"""Locust users for bench/load_locust.py: citizens searching, holding and booking through the API.

Each user is one citizen (a token minted by the driver, read from ``BENCH_LOCUST_USERS``): search
near a place, hold one of the first results, book it, then cancel it so that the next journey is
allowed (the anti-hoarding limit stays on). The load grows in stages (``BENCH_LOCUST_STAGES`` users,
``BENCH_LOCUST_STAGE_SECONDS`` each) past the point where the service saturates; every request is
recorded with its stage and status code and written to ``BENCH_LOCUST_OUT`` when Locust quits.
"""

import json
import os
import random
import time
from collections import defaultdict
from typing import Any

from locust import HttpUser, LoadTestShape, between, events, task

STAGES = [int(n) for n in os.environ.get("BENCH_LOCUST_STAGES", "10,25,50,100,200").split(",")]
STAGE_SECONDS = float(os.environ.get("BENCH_LOCUST_STAGE_SECONDS", "20"))
with open(os.environ["BENCH_LOCUST_USERS"]) as f:
    PEOPLE: list[dict[str, Any]] = json.load(f)["users"]
DATE_FROM = os.environ["BENCH_LOCUST_DATE_FROM"]
_next_person = iter(range(10**9))
STARTED = time.monotonic()
# stage -> name -> list of (latency ms, status)
RECORDS: dict[int, dict[str, list[tuple[float, int]]]] = defaultdict(lambda: defaultdict(list))


def stage_now() -> int:
    return min(int((time.monotonic() - STARTED) / STAGE_SECONDS), len(STAGES) - 1)


@events.request.add_listener
def record(name: str, response_time: float, response: Any = None, exception: Any = None, **_kw: Any) -> None:
    status = getattr(response, "status_code", 0) or 0
    if exception is not None and not status:
        status = 0  # connection error or timeout
    RECORDS[stage_now()][name].append((response_time, status))


@events.quitting.add_listener
def write(**_kw: Any) -> None:
    out = {
        "stages": STAGES,
        "stage_seconds": STAGE_SECONDS,
        "records": {str(s): dict(names.items()) for s, names in RECORDS.items()},
    }
    with open(os.environ["BENCH_LOCUST_OUT"], "w") as f:
        json.dump(out, f)


class Stages(LoadTestShape):
    def tick(self) -> tuple[int, float] | None:
        elapsed = self.get_run_time()
        index = int(elapsed / STAGE_SECONDS)
        if index >= len(STAGES):
            return None
        return STAGES[index], max(STAGES[index], 10)


class Citizen(HttpUser):
    wait_time = between(0.2, 0.6)

    def on_start(self) -> None:
        person = PEOPLE[next(_next_person) % len(PEOPLE)]
        self.client.headers["Authorization"] = f"Bearer {person['token']}"
        self.postal_code = person["postal_code"]
        self.rng = random.Random(person["id"])

    @task
    def journey(self) -> None:
        params = {
            "path": "near",
            "postal_code": self.postal_code,
            "radius_km": 50,
            "reason": "follow_up",
            "date_from": DATE_FROM,
        }
        with self.client.get("/api/v1/slots", params=params, name="search", catch_response=True) as r:
            if r.status_code != 200:
                r.failure(f"search {r.status_code}")
                return
            results = r.json().get("results", [])
            r.success()
        if not results:
            return
        slot_id = self.rng.choice(results[:10])["id"]
        with self.client.post(
            "/api/v1/holds", json={"slot_id": slot_id}, name="hold", catch_response=True
        ) as r:
            if r.status_code == 409:
                r.success()  # another citizen was quicker: the expected answer under contention
                return
            if r.status_code != 201:
                r.failure(f"hold {r.status_code}")
                return
            hold_token = r.json()["hold_token"]
        body = {"slot_id": slot_id, "hold_token": hold_token, "reason": "follow_up"}
        with self.client.post("/api/v1/appointments", json=body, name="book", catch_response=True) as r:
            if r.status_code == 409:
                r.success()
                return
            if r.status_code != 201:
                r.failure(f"book {r.status_code}")
                return
            appointment_id = r.json()["id"]
        with self.client.post(
            f"/api/v1/appointments/{appointment_id}/cancel",
            json={"reason": "cannot_attend"},
            name="cancel",
            catch_response=True,
        ) as r:
            if r.status_code != 200:
                r.failure(f"cancel {r.status_code}")
