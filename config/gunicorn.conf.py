"""gunicorn settings for production: ``gunicorn -c config/gunicorn.conf.py config.wsgi``.

Several workers and Prometheus: each worker writes its counters to files in
``PROMETHEUS_MULTIPROC_DIR`` (a directory of its own, emptied before gunicorn starts: see
docs/operations.md); whichever worker answers ``/metrics`` sums them. When a worker exits, its live
gauges are dropped from the sum here (our own gauges are read at scrape time and are not affected).
"""

import os

bind = os.environ.get("GUNICORN_BIND", "0.0.0.0:8000")
# One process per core, four threads each (gthread): a booking spends most of its time waiting on
# PostgreSQL (docs/benchmarks.md), which threads overlap; measured on 2 cores, 2 x 4 threads beat 4 sync
# workers (120 vs 70 bookings/s) and 2 x 8 threads (78/s). Each thread holds a database connection.
workers = int(os.environ.get("WEB_CONCURRENCY", str(os.cpu_count() or 2)))
threads = int(os.environ.get("GUNICORN_THREADS", "4"))
timeout = int(os.environ.get("GUNICORN_TIMEOUT", "30"))
graceful_timeout = 30
max_requests = 5000
max_requests_jitter = 500
# Our middleware logs one JSON line per request with its route name; gunicorn's access log would
# print raw paths (a cancellation link carries a token), so it stays off.
accesslog = None
errorlog = "-"


def child_exit(server, worker):  # noqa: ARG001 - gunicorn's hook signature
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        from prometheus_client import multiprocess

        multiprocess.mark_process_dead(worker.pid)
