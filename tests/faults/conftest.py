"""Fault tests: real processes on loopback, stopped and started by the test; every wait is bounded.

- ``RedisServer``: a private ``redis-server`` on a free port in a temporary directory (never the
  shared one on 6379, which other test runs use);
- ``PostgresCluster``: a private PostgreSQL cluster (``initdb`` in a temporary directory, another
  port; run as the ``postgres`` system user when the tests run as root, as initdb requires);
- ``DjangoProcess``: the web app under gunicorn, a Celery worker or beat, with
  ``tests.faults.fault_settings`` and the environment the test gives it.

Processes write their output to files in the test's temporary directory, printed when a test fails.
"""

import contextlib
import glob
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import redis
import requests
from django.db import connection

ROOT = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_until(predicate: Callable[[], Any], *, timeout: float, what: str, interval: float = 0.2) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with contextlib.suppress(Exception):
            value = predicate()
            if value:
                return value
        time.sleep(interval)
    raise AssertionError(f"not within {timeout:.0f} s: {what}")


class Process:
    def __init__(
        self, name: str, args: list[str], *, log_dir: Path, env: dict[str, str], user: str = ""
    ) -> None:
        self.name, self.args, self.env, self.user = name, args, env, user
        self.log = log_dir / f"{name}.log"
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        args = ["runuser", "-u", self.user, "--", *self.args] if self.user else self.args
        with self.log.open("ab") as log:
            self.proc = subprocess.Popen(  # noqa: S603 - our own command line
                args, cwd=ROOT, env=self.env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
            )

    def stop(self) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.terminate()
        try:
            self.proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(timeout=5)

    def kill(self) -> None:
        """SIGKILL, the whole process group (a prefork worker's children too): no cleanup runs."""
        assert self.proc is not None and self.proc.poll() is None, f"{self.name} is not running"
        os.killpg(self.proc.pid, signal.SIGKILL)
        self.proc.wait(timeout=10)

    @property
    def pid(self) -> int | None:
        return self.proc.pid if self.proc else None

    def output(self) -> str:
        return self.log.read_text(errors="replace")[-4000:] if self.log.exists() else ""


class RedisServer:
    def __init__(self, workdir: Path) -> None:
        workdir.mkdir(parents=True, exist_ok=True)
        self.port = free_port()
        # No persistence: Redis holds nothing that cannot be lost (ARCHITECTURE.md).
        self.process = Process(
            f"redis-{self.port}",
            ["redis-server", "--port", str(self.port), "--bind", "127.0.0.1", "--dir", str(workdir)]
            + ["--save", "", "--appendonly", "no"],
            log_dir=workdir,
            env={"PATH": os.environ["PATH"]},
        )

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def ping(self) -> bool:
        return bool(redis.Redis(host="127.0.0.1", port=self.port, socket_timeout=1).ping())

    def start(self) -> None:
        self.process.start()
        wait_until(self.ping, timeout=15, what="redis-server answers PING")

    def stop(self) -> None:
        self.process.stop()


class PostgresCluster:
    def __init__(self, workdir: Path) -> None:
        found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"))
        if not found:
            pytest.skip("initdb is not installed (/usr/lib/postgresql/*/bin): no private PostgreSQL cluster")
        self.bin = Path(found[-1]).parent
        self.user = "postgres" if os.geteuid() == 0 else ""
        if self.user and shutil.which("runuser") is None:
            pytest.skip("running as root without runuser: initdb refuses to run as root")
        self.port = free_port()
        # Its own directory under /tmp: pytest's are private to root, and the server runs as postgres.
        self.dir = Path(tempfile.mkdtemp(prefix="rdv-fault-pg-"))
        self.data = self.dir / "data"
        if self.user:
            shutil.chown(self.dir, self.user)
        self.env = {"PATH": os.environ["PATH"], "LANG": "C.UTF-8"}

    def _run(self, *args: str) -> None:
        cmd = [str(self.bin / args[0]), *args[1:]]
        if self.user:
            cmd = ["runuser", "-u", self.user, "--", *cmd]
        result = subprocess.run(  # noqa: S603 - our own command line
            cmd, cwd=self.dir, env=self.env, capture_output=True, text=True, timeout=90, check=False
        )
        assert result.returncode == 0, f"{args[0]}: {result.stdout}{result.stderr}"

    def init(self) -> None:
        self._run("initdb", "-D", str(self.data), "-U", "postgres", "--auth=trust", "-E", "UTF8", "--no-sync")

    def start(self) -> None:
        options = f"-p {self.port} -c listen_addresses=127.0.0.1 -k {self.dir} -c fsync=off"
        self._run(
            "pg_ctl",
            "-D",
            str(self.data),
            "-o",
            options,
            "-l",
            str(self.dir / "pg.log"),
            "-w",
            "-t",
            "30",
            "start",
        )

    def stop(self) -> None:
        self._run("pg_ctl", "-D", str(self.data), "-m", "fast", "-w", "-t", "30", "stop")

    def stop_and_remove(self) -> None:
        with contextlib.suppress(Exception):
            self.stop()
        shutil.rmtree(self.dir, ignore_errors=True)

    def url(self, database: str = "postgres") -> str:
        return f"postgres://postgres@127.0.0.1:{self.port}/{database}"


def test_database_url() -> str:
    """The test database of this run (pytest-django's), for processes that must see its rows."""
    settings = connection.settings_dict
    return f"postgres://{settings['USER']}@{settings['HOST']}:{settings['PORT']}/{settings['NAME']}"


test_database_url.__test__ = False  # type: ignore[attr-defined]  # a helper, not a test


def django_env(**values: str) -> dict[str, str]:
    base = {k: os.environ[k] for k in ("PATH", "HOME", "LANG") if k in os.environ}
    return {
        **base,
        "DJANGO_SETTINGS_MODULE": "tests.faults.fault_settings",
        "PYTHONUNBUFFERED": "1",
        **values,
    }


class WebApp:
    """The web app under gunicorn: one worker process, four threads (as production, scaled down)."""

    def __init__(self, workdir: Path, env: dict[str, str]) -> None:
        self.port = free_port()
        self.process = Process(
            "gunicorn",
            [str(BIN / "gunicorn"), "config.wsgi:application", "-b", f"127.0.0.1:{self.port}"]
            + ["-w", "1", "--threads", "4", "--timeout", "60", "--graceful-timeout", "5"],
            log_dir=workdir,
            env=env,
        )

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def get(self, path: str, **kwargs: Any) -> requests.Response:
        return requests.get(self.url(path), timeout=30, **kwargs)

    def post(self, path: str, **kwargs: Any) -> requests.Response:
        return requests.post(self.url(path), timeout=30, **kwargs)

    def start(self) -> None:
        self.process.start()
        wait_until(
            lambda: self.get("/healthz").status_code == 200, timeout=60, what="gunicorn answers /healthz"
        )

    def stop(self) -> None:
        self.process.stop()


def celery(workdir: Path, env: dict[str, str], role: str, name: str = "", pool: str = "solo") -> Process:
    """``pool="prefork"`` (production's) where it matters when a message is acknowledged: the solo
    pool runs a task inside kombu's Redis read, which defers every acknowledgement until the task
    returns, so under it even an early-acknowledged task's message survives a killed worker."""
    if role == "worker":
        args = ["worker", "--pool", pool, "--without-heartbeat", "--without-gossip", "--without-mingle"]
        args += ["--concurrency", "1"] if pool == "prefork" else []
    else:
        args = ["beat", "--schedule", str(workdir / "beat-schedule")]
    return Process(
        name or f"celery-{role}",
        [str(BIN / "celery"), "-A", "config", *args, "-l", "INFO"],
        log_dir=workdir,
        env=env,
    )


def worker_ready(worker: Process) -> None:
    wait_until(lambda: "ready" in worker.output(), timeout=60, what=f"{worker.name} is ready")


def broker(url: str) -> Any:
    """A Celery client of the test's private Redis: ``send_task`` publishes to the real broker, as
    beat or an on-commit enqueue does (the test process's own app runs tasks eagerly)."""
    from celery import Celery

    return Celery("fault-test", broker=url, set_as_current=False)


@pytest.fixture
def processes():
    """Everything a test starts, stopped at the end (last started, first stopped); their output is
    printed, which pytest shows when the test failed."""
    started: list[Any] = []
    yield started
    for each in reversed(started):
        each.stop()
    for each in started:
        process = getattr(each, "process", each)
        if isinstance(process, Process):
            print(f"--- {process.name} ---\n{process.output()}")
