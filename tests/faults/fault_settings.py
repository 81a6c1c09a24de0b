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
