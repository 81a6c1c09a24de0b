"""The waiting room and the rate limits under a burst from a real load tool (Locust, headless) on
loopback, against the app under gunicorn (bounded: 9 users, a hard run time, about 15 s).

The room admits 3 citizens; 9 arrive at once. Checked: no 5xx but the room's 503 (with Retry-After
and the place in line); the 6 beyond the capacity wait, and are admitted in the order they joined as
seats free (a seat lapses ``WAITING_ROOM_IDLE_SECONDS`` after its citizen's last request); the
per-citizen search limit answers 429 with Retry-After, and the search after that wait goes through.
The admitted rate and the counts are printed (docs/scaling.md quotes them).
"""

import json
from collections import Counter

import pytest

from booking.api.auth import citizen_token_make
from tests.factories import CitizenFactory, FsaFactory

from .conftest import BIN, Process, RedisServer, WebApp, django_env, test_database_url, wait_until

pytestmark = pytest.mark.django_db(transaction=True)

USERS, CAPACITY, IDLE = 9, 3, 3


def test_a_burst_is_queued_fairly_and_rate_limited_without_errors(tmp_path, processes):
    FsaFactory()
    tokens = [citizen_token_make(CitizenFactory())[0] for _ in range(USERS)]
    redis_server = RedisServer(tmp_path / "redis")
    redis_server.start()
    processes.append(redis_server)
    env = django_env(
        DATABASE_URL=test_database_url(),
        REDIS_URL=redis_server.url,
        WAITING_ROOM_ENABLED="true",
        WAITING_ROOM_CAPACITY=str(CAPACITY),
        WAITING_ROOM_IDLE_SECONDS=str(IDLE),
        WAITING_ROOM_STALE_SECONDS="10",
        WAITING_ROOM_REFRESH_SECONDS="1",
        RATE_LIMIT_ENABLED="true",
        RATE_LIMIT_SEARCH="3/2",
    )
    web = WebApp(tmp_path, env)
    web.start()
    processes.append(web)
    log = tmp_path / "burst.jsonl"
    locust = Process(
        "locust",
        [str(BIN / "locust"), "-f", "tests/faults/burst_locustfile.py", "--headless", "--only-summary"]
        + ["-u", str(USERS), "-r", "100", "--run-time", "40s", "--host", web.url("")],
        log_dir=tmp_path,
        env={**django_env(), "BURST_TOKENS": ",".join(tokens), "BURST_LOG": str(log)},
    )
    locust.start()
    processes.append(locust)

    def lines() -> list[dict]:
        return [json.loads(line) for line in log.read_text().splitlines()] if log.exists() else []

    wait_until(lambda: sum(e["step"] == "done" for e in lines()) == USERS, timeout=45, what="every user done")
    locust.stop()
    events = [e for e in lines() if e["step"] != "done"]
    by_user = {u: [e for e in events if e["user"] == u] for u in range(USERS)}

    # No server error but the room's own 503, which says when to come back and the place in line.
    statuses = Counter(e["status"] for e in events)
    assert set(statuses) <= {200, 429, 503}, statuses
    for e in events:
        if e["status"] == 503:
            assert e["code"] == "waiting_room" and int(e["retry_after"]) == 1 and e["position"] >= 1
        if e["status"] == 429:
            assert 1 <= int(e["retry_after"]) <= 2

    # At most the capacity walked straight in; everyone else waited and was admitted in the end.
    straight_in = [u for u, es in by_user.items() if es[0]["status"] == 200]
    waited = [u for u, es in by_user.items() if es[0]["status"] == 503]
    assert len(straight_in) <= CAPACITY and len(straight_in) + len(waited) == USERS
    admitted = {u: next(e for e in es if e["status"] != 503) for u, es in by_user.items()}
    assert all(a["status"] == 200 for a in admitted.values())

    # First come, first served: a citizen who had joined the line before another was sent on first.
    joined = {u: by_user[u][0] for u in waited}
    for a in waited:
        for b in waited:
            if joined[a]["received"] < joined[b]["sent"]:
                assert admitted[a]["sent"] < admitted[b]["received"], (a, b)

    # The rate limit slowed each citizen down and let them in again after Retry-After.
    for u, es in by_user.items():
        steps = [e["step"] for e in es]
        assert "after_window" in steps, (u, steps)
        assert es[-1]["status"] == 200
        assert [e["status"] for e in es if e["step"] == "burst"][-1] == 429

    first_wait = min(joined[u]["received"] for u in waited)
    last_admission = max(admitted[u]["received"] for u in waited)
    rate = len(waited) / (last_admission - first_wait)
    print(
        f"burst: {USERS} citizens, capacity {CAPACITY}, idle {IDLE} s: {len(waited)} queued, "
        f"admitted at {rate:.2f}/s over {last_admission - first_wait:.1f} s; responses {dict(statuses)}"
    )
    assert rate > 0
