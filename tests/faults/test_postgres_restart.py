"""PostgreSQL restarted under the web app: /readyz reports the outage (503) at once, /healthz stays
up (the orchestrator must not kill the app for it), and the app recovers by itself: the first
requests after the restart succeed, on the same gunicorn worker, with no restart of ours.

A private PostgreSQL cluster (initdb in a temporary directory, another port) is stopped and started;
the shared one on 5432 is never touched. Production's persistent connections (CONN_MAX_AGE 60) and
health checks (CONN_HEALTH_CHECKS) are what must notice the dead connections.
"""

import time

from .conftest import PostgresCluster, WebApp, django_env

REDIS_DB = "redis://127.0.0.1:6379/7"  # the shared Redis, only read and written here, never stopped


def test_readyz_reports_a_postgresql_restart_and_the_app_recovers_by_itself(tmp_path, processes):
    cluster = PostgresCluster(tmp_path / "pg")
    cluster.init()
    cluster.start()
    try:
        web = WebApp(tmp_path, django_env(DATABASE_URL=cluster.url(), REDIS_URL=REDIS_DB))
        web.start()
        processes.append(web)
        # Every thread of the worker opens its persistent connection.
        for _ in range(8):
            ready = web.get("/readyz")
            assert ready.status_code == 200, ready.text
        worker_pid = web.process.pid

        cluster.stop()
        started = time.monotonic()
        down = web.get("/readyz")
        took = time.monotonic() - started
        assert down.status_code == 503
        assert down.json()["checks"] == {"database": "unavailable", "redis": "ok"}
        assert took < 5, f"/readyz took {took:.1f} s to report the outage"
        assert web.get("/healthz").status_code == 200
        for _ in range(4):  # every thread finds its connection dead and says so
            assert web.get("/readyz").status_code == 503

        cluster.start()
        after = [web.get("/readyz") for _ in range(12)]
        assert [r.status_code for r in after] == [200] * 12, [r.text for r in after]
        assert web.process.pid == worker_pid and web.process.proc.poll() is None
        # The whole log: output() keeps its end only, and each request now logs a JSON access line.
        log = web.process.log.read_text(errors="replace")
        assert log.count("Booting worker") == 1  # the worker was never replaced
        print(f"/readyz answered the outage in {took:.2f} s")
    finally:
        cluster.stop_and_remove()
