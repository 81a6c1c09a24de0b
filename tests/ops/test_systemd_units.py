"""The example systemd units (ops/systemd/) run the commands docs/operations.md names, give gunicorn
and the worker their own empty metrics directory, never run as root, and parse (systemd-analyze)."""

import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
UNITS = ROOT / "ops" / "systemd"
DOC = (ROOT / "docs" / "operations.md").read_text()
REQUIRED = ("SECRET_KEY", "DATABASE_URL", "REDIS_URL", "EMAIL_URL", "SITE_URL", "ALLOWED_HOSTS")


def service(name: str) -> dict[str, list[str]]:
    values: dict[str, list[str]] = {}
    for line in (UNITS / name).read_text().splitlines():
        if "=" in line and not line.startswith(("#", "[")):
            key, value = line.split("=", 1)
            values.setdefault(key, []).append(value)
    return values


def environment(unit: dict[str, list[str]]) -> dict[str, str]:
    return dict(pair.split("=", 1) for line in unit.get("Environment", []) for pair in line.split())


@pytest.mark.parametrize(
    ("name", "command"),
    [
        ("rdv-web.service", "gunicorn -c config/gunicorn.conf.py config.wsgi"),
        ("rdv-worker.service", "celery -A config worker --concurrency 4 --loglevel INFO"),
        ("rdv-beat.service", "celery -A config beat --schedule /var/lib/rdv-beat/celerybeat-schedule"),
    ],
)
def test_each_unit_runs_the_documented_command_as_the_app_user(name, command):
    unit = service(name)
    assert unit["ExecStart"] == [f"/srv/rdv/.venv/bin/{command}"]
    assert re.sub(r"--schedule \S+", "--schedule", command) in re.sub(r"--schedule \S+", "--schedule", DOC)
    assert unit["User"] != ["root"] and unit["User"]
    assert unit["EnvironmentFile"] == ["/etc/rdv/rdv.env"]
    assert f"ops/systemd/{name}" in DOC


def test_web_and_worker_get_a_metrics_directory_of_their_own_and_beat_none():
    dirs = {}
    for name in ("rdv-web.service", "rdv-worker.service"):
        unit = service(name)
        # RuntimeDirectory is created empty at every start and removed at stop.
        (runtime,) = unit["RuntimeDirectory"]
        assert environment(unit)["PROMETHEUS_MULTIPROC_DIR"] == f"/run/{runtime}"
        dirs[name] = runtime
    assert len(set(dirs.values())) == 2
    assert environment(service("rdv-worker.service"))["WORKER_METRICS_PORT"].isdigit()
    assert "PROMETHEUS_MULTIPROC_DIR" not in environment(service("rdv-beat.service"))
    example = (UNITS / "rdv.env.example").read_text()
    assert "PROMETHEUS_MULTIPROC_DIR=" not in example


def test_the_environment_example_names_every_required_setting():
    example = (UNITS / "rdv.env.example").read_text()
    names = {
        line.split("=", 1)[0] for line in example.splitlines() if "=" in line and not line.startswith("#")
    }
    for required in REQUIRED:
        assert required in names or f"{required}_FILE" in names, required
    assert "DJANGO_DEBUG" not in names


@pytest.mark.skipif(shutil.which("systemd-analyze") is None, reason="systemd-analyze is not installed")
def test_systemd_parses_the_units_without_unknown_or_invalid_settings(tmp_path):
    # A throwaway root with the files the units name, so that only the units themselves are judged.
    for binary in ("srv/rdv/.venv/bin/gunicorn", "srv/rdv/.venv/bin/celery", "bin/kill"):
        path = tmp_path / binary
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text("#!/bin/sh\n")
        path.chmod(0o755)
    (tmp_path / "etc/rdv").mkdir(parents=True)
    shutil.copy(UNITS / "rdv.env.example", tmp_path / "etc/rdv/rdv.env")
    system = tmp_path / "etc/systemd/system"
    system.mkdir(parents=True)
    names = sorted(p.name for p in UNITS.glob("*.service"))
    for name in names:
        shutil.copy(UNITS / name, system / name)
    done = subprocess.run(  # noqa: S603 - our own command line
        [
            str(shutil.which("systemd-analyze")),
            "verify",
            "--man=no",
            f"--root={tmp_path}",
            *(f"/etc/systemd/system/{n}" for n in names),
        ],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        env={"PATH": os.environ["PATH"], "SYSTEMD_LOG_COLOR": "0"},
    )
    problems = [
        line
        for line in (done.stdout + done.stderr).splitlines()
        # The throwaway root has no system units (sysinit.target…): that is not the units' fault.
        if "sysinit.target" not in line and line.strip()
    ]
    assert problems == [], problems
