"""Every setting can come from ``<NAME>_FILE`` (Docker/Kubernetes secrets): checked by starting the
production settings in a subprocess, as a container would."""

import json

import pytest
from django.core.exceptions import ImproperlyConfigured

from config.secret_files import SecretFileEnviron, secret_file_env
from tests.test_deploy import PRODUCTION_ENV, _run

SECRETS = ("SECRET_KEY", "DATABASE_URL", "REDIS_URL", "EMAIL_URL")
SHOW = (
    "import json, os; from django.conf import settings as s; print(json.dumps({"
    "'SECRET_KEY': s.SECRET_KEY, 'DATABASE': [s.DATABASES['default'][k] for k in ('NAME', 'HOST', 'PORT')],"
    "'REDIS_URL': s.REDIS_URL, 'EMAIL': [s.EMAIL_HOST, s.EMAIL_HOST_PASSWORD, s.EMAIL_PORT],"
    "'in_environ': sorted(set(os.environ) & set(" + repr(SECRETS) + "))}))"
)


def files_env(tmp_path, **values):
    env = {k: v for k, v in PRODUCTION_ENV.items() if k not in values}
    for name, value in values.items():
        path = tmp_path / name.lower()
        path.write_text(value)
        env[f"{name}_FILE"] = str(path)
    return env


def test_production_settings_read_every_secret_from_files_and_keep_them_out_of_the_environment(tmp_path):
    env = files_env(
        tmp_path,
        SECRET_KEY="from-a-file-" + "k" * 50 + "\n",
        DATABASE_URL="postgres://rdv:pw@db.internal:6432/rdv_prod\n",
        REDIS_URL="redis://cache.internal:6380/2\n",
        EMAIL_URL="smtp+tls://rdv:mail-secret@smtp.example.ca:587\n",
    )
    result = _run("shell", "-c", SHOW, env=env)
    assert result.returncode == 0, result.stderr
    shown = json.loads(result.stdout.strip().splitlines()[-1])
    assert shown == {
        "SECRET_KEY": "from-a-file-" + "k" * 50,  # the file's trailing newline is not part of it
        "DATABASE": ["rdv_prod", "db.internal", 6432],
        "REDIS_URL": "redis://cache.internal:6380/2",
        "EMAIL": ["smtp.example.ca", "mail-secret", 587],
        "in_environ": [],
    }


@pytest.mark.parametrize(
    ("setup", "message"),
    [
        ("both", "SECRET_KEY and SECRET_KEY_FILE are both set: keep one of them."),
        ("missing", "SECRET_KEY_FILE: cannot read"),
        ("empty", "is empty."),
    ],
)
def test_a_secret_file_that_cannot_be_used_stops_the_start_up_with_a_clear_message(tmp_path, setup, message):
    env = files_env(tmp_path, SECRET_KEY="" if setup == "empty" else "a-key-from-a-file-" + "x" * 40)
    if setup == "both":
        env["SECRET_KEY"] = PRODUCTION_ENV["SECRET_KEY"]
    if setup == "missing":
        env["SECRET_KEY_FILE"] = str(tmp_path / "nowhere")
    result = _run("check", env=env)
    assert result.returncode != 0
    assert message in result.stderr
    assert "x" * 40 not in result.stderr  # the message names the variable, never the value


def test_the_mapping_reads_a_file_once_and_lists_the_names_it_provides(tmp_path):
    secret = tmp_path / "token"
    secret.write_text("  s3cret-token \n")
    environ = SecretFileEnviron({"METRICS_TOKEN_FILE": str(secret), "LOG_LEVEL": "INFO"})
    assert environ["METRICS_TOKEN"] == "s3cret-token"
    secret.write_text("changed")
    assert environ["METRICS_TOKEN"] == "s3cret-token"
    assert set(environ) == {"METRICS_TOKEN_FILE", "LOG_LEVEL", "METRICS_TOKEN"}
    env = secret_file_env({"METRICS_TOKEN_FILE": str(secret), "DEBUG": "1"})
    assert env.str("METRICS_TOKEN") == "changed"
    assert env.bool("DEBUG") is True
    assert env.str("ABSENT", default="fallback") == "fallback"
    with pytest.raises(ImproperlyConfigured):
        secret_file_env({"X_FILE": str(tmp_path / "absent")}).str("X", default="")
