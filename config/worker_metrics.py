"""The Celery worker's own metrics endpoint, for workers on machines without a web process.

Task counts and durations, snapshot reconciliations, webhook failures and the bookings a worker
makes (EMR, waitlist) are counted in the worker's processes (config.observability). The web's
``/metrics`` reports them only when it shares ``PROMETHEUS_MULTIPROC_DIR`` with the worker on one
machine. With ``WORKER_METRICS_PORT`` set, the worker serves them itself at
``http://<host>:<port>/metrics``, under the same rules as the web's (``METRICS_ALLOWED_IPS`` or
``Authorization: Bearer $METRICS_TOKEN``; 403 for a wrong token, 404 for everyone else). The states
read at scrape time (queue depths, outbox lag…) stay on the web's ``/metrics``: one reading of
PostgreSQL and Redis per scrape, not one per worker.

Prefork (Celery's default pool) runs tasks in child processes: each child writes its counters to
files in ``PROMETHEUS_MULTIPROC_DIR`` and the main process, which serves the endpoint, sums them
(prometheus_client's multiprocess mode). A prefork worker with a port and no directory would report
nothing and refuses to start. The solo and thread pools run tasks in the main process and need no
directory. The port is bound before the pool starts, so a port in use stops the worker at once.
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Callable, Iterable
from socketserver import ThreadingMixIn
from typing import Any
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

from django.conf import settings
from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY, CollectorRegistry, generate_latest, multiprocess

from . import metrics

logger = logging.getLogger(__name__)

_server: WSGIServer | None = None


class _Server(ThreadingMixIn, WSGIServer):
    daemon_threads = True
    allow_reuse_address = True


class _QuietHandler(WSGIRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - the base class's name
        pass  # no access log: the scraper's requests are not news


def registry() -> CollectorRegistry:
    """Every process's counters (multiprocess mode) or this process's."""
    if metrics.multiprocess_dir():
        summed = CollectorRegistry()
        multiprocess.MultiProcessCollector(summed)
        return summed
    return REGISTRY


def app(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
    """The WSGI application: ``GET /metrics`` only."""
    if environ.get("PATH_INFO") != "/metrics" or environ.get("REQUEST_METHOD") not in ("GET", "HEAD"):
        start_response("404 Not Found", [("Content-Type", "text/plain")])
        return [b""]
    status = metrics.access_status(environ.get("REMOTE_ADDR", ""), environ.get("HTTP_AUTHORIZATION", ""))
    if status != 200:
        reason = "403 Forbidden" if status == 403 else "404 Not Found"
        start_response(reason, [("Content-Type", "text/plain")])
        return [b""]
    body = generate_latest(registry())
    start_response("200 OK", [("Content-Type", CONTENT_TYPE_LATEST), ("Cache-Control", "no-store")])
    return [body]


def serve(port: int, addr: str = "0.0.0.0") -> WSGIServer:  # noqa: S104 - the scraper is on another host
    """Bind now; answer in a daemon thread."""
    server = make_server(addr, port, app, server_class=_Server, handler_class=_QuietHandler)
    threading.Thread(target=server.serve_forever, name="rdv-worker-metrics", daemon=True).start()
    return server


def _is_prefork(pool_cls: Any) -> bool:
    from celery import concurrency
    from celery.concurrency.prefork import TaskPool

    implementation = concurrency.get_implementation(pool_cls or "prefork")
    return isinstance(implementation, type) and issubclass(implementation, TaskPool)


def _worker_init(sender: Any = None, **_: Any) -> None:
    """In the worker's main process, before the pool starts: check, bind, serve."""
    global _server
    port: int = settings.WORKER_METRICS_PORT
    if not port or _server is not None:
        return
    if _is_prefork(getattr(sender, "pool_cls", None)) and not metrics.multiprocess_dir():
        raise SystemExit(
            "WORKER_METRICS_PORT is set for a prefork worker, whose tasks run in child processes: set "
            "PROMETHEUS_MULTIPROC_DIR to an empty directory of this worker's own (docs/operations.md, "
            '"Metrics"), or use --pool solo/threads.'
        )
    try:
        _server = serve(port, settings.WORKER_METRICS_ADDR)
    except OSError as exc:
        raise SystemExit(f"WORKER_METRICS_PORT {port}: cannot listen ({exc.strerror}).") from None
    logger.info("worker metrics served", extra={"port": port})


def _worker_process_init(**_: Any) -> None:
    """A prefork child: the listening socket is the main process's to answer."""
    if _server is not None:
        _server.socket.close()


def _worker_process_shutdown(**_: Any) -> None:
    if metrics.multiprocess_dir():
        multiprocess.mark_process_dead(os.getpid())


def connect() -> None:
    from celery.signals import worker_init, worker_process_init, worker_process_shutdown

    worker_init.connect(_worker_init, weak=False, dispatch_uid="rdv-worker-metrics")
    worker_process_init.connect(_worker_process_init, weak=False, dispatch_uid="rdv-worker-metrics-child")
    worker_process_shutdown.connect(
        _worker_process_shutdown, weak=False, dispatch_uid="rdv-worker-metrics-child-exit"
    )
