"""Test override: PostgreSQL and Redis, real; only outbound e-mail is captured (locmem)."""

import os

os.environ.setdefault("DJANGO_DEBUG", "false")
os.environ.setdefault("SECRET_KEY", "test-secret-key-not-for-production-0123456789abcdefghij")
os.environ.setdefault("DATABASE_URL", "postgres://postgres@127.0.0.1:5432/rdv")
os.environ.setdefault("REDIS_URL", "redis://127.0.0.1:6379/15")
os.environ.setdefault("SECURE_SSL_REDIRECT", "false")
os.environ.setdefault("EMAIL_URL", "consolemail://")
os.environ.setdefault("SITE_URL", "http://testserver")

from .settings import *  # noqa: E402,F403

EMAIL_BACKEND = "django.core.mail.backends.locmem.EmailBackend"
PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
# Tasks run in-process so that a test sees the e-mail a booking sends; Redis stays the cache.
CELERY_TASK_ALWAYS_EAGER = True
SEARCH_CACHE_SECONDS = 0  # tests add slots between searches; the cache is tested on its own
NOTIFICATIONS_ON_COMMIT = True  # the relay path is tested on its own (tests/booking/test_notifications.py)
STORAGES["staticfiles"]["BACKEND"] = "django.contrib.staticfiles.storage.StaticFilesStorage"  # noqa: F405
ALLOWED_HOSTS = ["testserver", "127.0.0.1", "localhost"]
WHITENOISE_AUTOREFRESH = True  # serve from the finders; no collectstatic before tests
DATABASES["default"]["CONN_MAX_AGE"] = 0  # noqa: F405 - live-server threads must not keep connections
# Tests run at any hour: waitlist offers are not held back at night, except where a test switches the
# quiet hours on (tests/booking/test_waitlist.py).
WAITLIST_QUIET_HOURS = False
# Each test sets the challenge flag itself; tests/booking/test_challenge.py tests its cache.
CHALLENGE_FLAG_CACHE_SECONDS = 0
