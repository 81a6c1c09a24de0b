"""The Celery worker's own metrics endpoint (config.worker_metrics): a real prefork worker whose tasks
run in child processes, scraped on its port; the access rules of the web's /metrics; and the worker
that refuses to start when its numbers could not be summed."""

import subprocess

import pytest
import requests
from celery import Celery
from prometheus_client.parser import text_string_to_metric_families

from config import metrics, worker_metrics
from tests.faults.conftest import (  # noqa: F401 - ``processes`` is a fixture
    BIN,
    ROOT,
    Process,
    RedisServer,
    django_env,
    free_port,
    processes,
    test_database_url,
    wait_until,
)

TOKEN = "t" * 40
TASK = "sync.tasks.feed_prune"


def samples(text: str) -> dict[tuple[str, frozenset], float]:
    return {
        (s.name, frozenset(s.labels.items())): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def tasks_done(text: str) -> float:
    return samples(text).get(
        ("rdv_celery_tasks_total", frozenset({"task": TASK, "state": "SUCCESS"}.items())), 0.0
    )


def call(environ: dict) -> tuple[str, bytes]:
    seen = {}

    def start_response(status, headers):
        seen["status"] = status

    body = b"".join(
        worker_metrics.app({"REQUEST_METHOD": "GET", "PATH_INFO": "/metrics", **environ}, start_response)
    )
    return seen["status"], body


def test_the_endpoint_applies_the_web_metrics_rules(settings):
    settings.METRICS_ALLOWED_IPS = ["10.1.0.0/16"]
    settings.METRICS_TOKEN = TOKEN
    metrics.TASKS.labels(task=TASK, state="SUCCESS").inc()

    status, body = call({"REMOTE_ADDR": "10.1.2.3"})
    assert status == "200 OK"
    assert tasks_done(body.decode()) >= 1
    assert b"rdv_outbox_notify_lag_seconds" not in body  # states stay on the web's /metrics
    assert call({"REMOTE_ADDR": "192.0.2.7"})[0] == "404 Not Found"
    assert call({"REMOTE_ADDR": "192.0.2.7", "HTTP_AUTHORIZATION": f"Bearer {TOKEN}"})[0] == "200 OK"
    assert call({"REMOTE_ADDR": "10.1.2.3", "HTTP_AUTHORIZATION": "Bearer wrong"})[0] == "403 Forbidden"
    assert call({"REMOTE_ADDR": "10.1.2.3", "PATH_INFO": "/"})[0] == "404 Not Found"
    assert call({"REMOTE_ADDR": "10.1.2.3", "REQUEST_METHOD": "POST"})[0] == "404 Not Found"


@pytest.mark.django_db(transaction=True)
def test_a_prefork_worker_serves_the_task_metrics_of_its_children(tmp_path, processes):  # noqa: F811
    redis_server = RedisServer(tmp_path / "redis")
    redis_server.start()
    processes.append(redis_server)
    metrics_dir = tmp_path / "metrics"
    metrics_dir.mkdir()
    port = free_port()
    env = django_env(
        DATABASE_URL=test_database_url(),
        REDIS_URL=redis_server.url,
        PROMETHEUS_MULTIPROC_DIR=str(metrics_dir),
        WORKER_METRICS_PORT=str(port),
        WORKER_METRICS_ADDR="127.0.0.1",
        METRICS_ALLOWED_IPS="192.0.2.0/24",  # not the loopback: the scrape below needs the token
        METRICS_TOKEN=TOKEN,
    )
    worker = Process(
        "celery-worker",
        [str(BIN / "celery"), "-A", "config", "worker", "--pool", "prefork", "--concurrency", "2"]
        + ["--without-heartbeat", "--without-gossip", "--without-mingle", "-l", "INFO"],
        log_dir=tmp_path,
        env=env,
    )
    worker.start()
    processes.append(worker)
    url = f"http://127.0.0.1:{port}/metrics"
    auth = {"Authorization": f"Bearer {TOKEN}"}
    wait_until(lambda: "ready" in worker.output(), timeout=90, what="the Celery worker is ready")

    assert requests.get(url, timeout=5).status_code == 404  # an address not allowed, no token
    assert requests.get(url, headers={"Authorization": "Bearer wrong"}, timeout=5).status_code == 403
    assert tasks_done(requests.get(url, headers=auth, timeout=5).text) == 0

    sender = Celery(broker=redis_server.url)
    for _ in range(4):
        sender.send_task(TASK)
    # Run in the pool's children, written to the directory, summed by the main process.
    wait_until(
        lambda: tasks_done(requests.get(url, headers=auth, timeout=5).text) == 4,
        timeout=60,
        what="four finished tasks on the worker's /metrics",
    )
    text = requests.get(url, headers=auth, timeout=5).text
    assert samples(text)[("rdv_celery_task_duration_seconds_count", frozenset({"task": TASK}.items()))] == 4
    assert len(list(metrics_dir.glob("counter_*.db"))) >= 1


def test_a_prefork_worker_with_a_port_but_no_multiprocess_directory_refuses_to_start():
    # Nothing is reached before the check: no broker listens on port 1, no database is read.
    env = django_env(REDIS_URL="redis://127.0.0.1:1/0", WORKER_METRICS_PORT=str(free_port()))
    done = subprocess.run(  # noqa: S603 - our own command line
        [str(BIN / "celery"), "-A", "config", "worker", "--pool", "prefork", "-c", "2", "-l", "INFO"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode != 0
    assert "set PROMETHEUS_MULTIPROC_DIR" in done.stdout + done.stderr
