"""Settings of the processes the fault tests start (web, Celery worker and beat): the test settings,
but with a real broker (tasks not run inline), e-mail written to files the test counts, production's
persistent database connections, and a beat that sweeps every two seconds instead of every minute."""

import os
from datetime import timedelta

from config.settings_test import *  # noqa: F403

CELERY_TASK_ALWAYS_EAGER = False
EMAIL_BACKEND = "django.core.mail.backends.filebased.EmailBackend"
EMAIL_FILE_PATH = os.environ.get("FAULT_EMAIL_DIR")  # set by the test that starts the process
DATABASES["default"]["CONN_MAX_AGE"] = 60  # noqa: F405 - as in production: a restart must be noticed
CELERY_BEAT_SCHEDULE = {
    "notifications-sweep": {"task": "booking.tasks.notifications_sweep", "schedule": timedelta(seconds=2)}
}
NOTIFICATIONS_SWEEP_AFTER_SECONDS = 2
if os.environ.get("FAULT_VISIBILITY_TIMEOUT"):
    # A message a killed worker took (acknowledged late, so still unacknowledged) goes back to the
    # queue after this many seconds instead of an hour, and the worker looks for such messages
    # every second instead of every 100 s.
    CELERY_BROKER_TRANSPORT_OPTIONS = {  # noqa: F405
        **CELERY_BROKER_TRANSPORT_OPTIONS,  # noqa: F405
        "visibility_timeout": int(os.environ["FAULT_VISIBILITY_TIMEOUT"]),
        "unacked_restore_interval": 1,
        "unacked_restore_throttle": 1,
    }
