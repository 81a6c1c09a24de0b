"""One environment-driven settings module.

With DJANGO_DEBUG=true and nothing else it runs the embedded demo (SQLite file, tasks inline, console
e-mail, local-memory cache). In production every value comes from the environment; a missing
required variable (SECRET_KEY, DATABASE_URL, REDIS_URL, EMAIL_URL, SITE_URL) or a half-configured
integration fails loudly at start-up rather than quietly at the first request.
"""

from datetime import timedelta
from pathlib import Path

from django.core.exceptions import ImproperlyConfigured
from django.utils.translation import gettext_lazy as _

from .secret_files import secret_file_env

BASE_DIR = Path(__file__).resolve().parent.parent
VAR_DIR = BASE_DIR / "var"

# ---------------------------------------------------------------------------------------------------
# Issue 8 (security, faults, privacy). Secrets (docs/security.md): every variable below may also come
# from a file named by <NAME>_FILE (Docker/Kubernetes secrets): SECRET_KEY, DATABASE_URL, REDIS_URL,
# EMAIL_URL, METRICS_TOKEN…
env = secret_file_env()
# Notifications whose on-commit task was lost (Redis down at commit) are sent by the beat sweep once
# they are this old; the fault tests shorten it (tests/faults).
NOTIFICATIONS_SWEEP_AFTER_SECONDS = env.int("NOTIFICATIONS_SWEEP_AFTER_SECONDS", default=60)
# How a booking's e-mail leaves (docs/benchmarks.md): true, a Celery task published on commit (one
# broker round trip in the request; the default without Redis, where tasks run inline); false, the
# beat relay `notifications_relay` hands new pending outbox events to the workers in batches every
# NOTIFICATIONS_RELAY_SECONDS, so an e-mail is on its way within about that long.
NOTIFICATIONS_ON_COMMIT = env.bool("NOTIFICATIONS_ON_COMMIT", default=not env.str("REDIS_URL", default=""))
NOTIFICATIONS_RELAY_SECONDS = env.float("NOTIFICATIONS_RELAY_SECONDS", default=2.0)
# Law 25 retention (booking.services.retention, docs/privacy.md), run daily by beat: an expired hold's
# holder id is cleared this long after expiry; a search without result keeps its postal area this long.
RETENTION_EXPIRED_HOLD_HOURS = env.int("RETENTION_EXPIRED_HOLD_HOURS", default=24)
RETENTION_SEARCH_DETAIL_DAYS = env.int("RETENTION_SEARCH_DETAIL_DAYS", default=180)
# Appointments (and ended waitlist requests) are anonymized this long after they started: two
# years (docs/privacy.md, "Retention task" says why).
RETENTION_APPOINTMENT_DAYS = env.int("RETENTION_APPOINTMENT_DAYS", default=730)
# ---------------------------------------------------------------------------------------------------

DEBUG = env.bool("DJANGO_DEBUG", default=False)
SECRET_KEY = env.str("SECRET_KEY", default="")
if not SECRET_KEY:
    if not DEBUG:
        raise ImproperlyConfigured("SECRET_KEY must be set when DJANGO_DEBUG is off.")
    # Demo only: `make run` sets DJANGO_DEBUG; the key is fixed so sessions survive restarts.
    SECRET_KEY = "demo-only-insecure-key-never-used-in-production-0123456789abcdef"  # noqa: S105

ALLOWED_HOSTS = env.list("ALLOWED_HOSTS", default=["127.0.0.1", "localhost", "[::1]"] if DEBUG else [])
CSRF_TRUSTED_ORIGINS = env.list("CSRF_TRUSTED_ORIGINS", default=[])

INSTALLED_APPS = [
    "clinics.admin_apps.BoardAdminConfig",  # Django's admin behind the board's gate (clinics.admin_site)
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "whitenoise.runserver_nostatic",
    "django.contrib.staticfiles",
    "django.contrib.humanize",
    "rest_framework",
    "drf_spectacular",
    "drf_spectacular_sidecar",  # Swagger UI served from our own static files, no CDN
    "allauth",
    "allauth.account",
    "allauth.mfa",
    "oauth2_provider",
    "clinics",
    "citizens",
    "booking",
    "sync",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "config.security.SecurityHeadersMiddleware",  # Content-Security-Policy, Permissions-Policy
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.locale.LocaleMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "allauth.account.middleware.AccountMiddleware",
    "booking.middleware.RateLimitMiddleware",
]

ROOT_URLCONF = "config.urls"
WSGI_APPLICATION = "config.wsgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.template.context_processors.i18n",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
                "booking.context_processors.citizen",
                "clinics.context_processors.staff",
            ],
        },
    },
]


def _required_in_production(name: str, example: str) -> None:
    """The embedded demo's fallbacks (a SQLite file, tasks run inline) must never serve production
    quietly: without DJANGO_DEBUG the variable is required."""
    if not DEBUG and not env.str(name, default=""):
        raise ImproperlyConfigured(
            f"{name} must be set when DJANGO_DEBUG is off ({example}); see docs/operations.md, "
            '"Settings". Only the demo (DJANGO_DEBUG=true) runs without it.'
        )


# Database: PostgreSQL in production and in every test; a SQLite file for the embedded demo.
_required_in_production("DATABASE_URL", "postgres://user:password@host:5432/rdv")
DATABASES = {"default": env.db_url("DATABASE_URL", default=f"sqlite:///{VAR_DIR / 'demo.sqlite3'}")}
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    VAR_DIR.mkdir(exist_ok=True)
    # Writers serialize (BEGIN IMMEDIATE): the booking compare-and-set stays correct on the demo.
    DATABASES["default"].setdefault("OPTIONS", {}).update({"transaction_mode": "IMMEDIATE", "timeout": 20})
else:
    DATABASES["default"]["CONN_MAX_AGE"] = env.int("DB_CONN_MAX_AGE", default=60)
    DATABASES["default"]["CONN_HEALTH_CHECKS"] = True
# The booking's hot statements (booking/services/_hot.py) are prepared once per connection. Set false
# behind a connection pooler in transaction mode that does not keep prepared statements (PgBouncer
# before 1.21, or without max_prepared_statements).
DATABASE_PREPARED_STATEMENTS = env.bool("DATABASE_PREPARED_STATEMENTS", default=True)
if DATABASE_PREPARED_STATEMENTS and DATABASES["default"]["ENGINE"] == "django.db.backends.postgresql":
    # psycopg prepares a statement only when asked (execute(prepare=True), the hot path) once a
    # threshold is set; Django's own cursors bind on the client and never prepare.
    DATABASES["default"].setdefault("OPTIONS", {}).setdefault("prepare_threshold", 2**31 - 1)
ATOMIC_REQUESTS = False  # never: slow work happens after commit, not inside a request transaction
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

AUTH_USER_MODEL = "citizens.User"

# Redis: Celery broker, cache and shared rate-limit counters. Without it the demo runs tasks inline.
_required_in_production("REDIS_URL", "redis://host:6379/0")
REDIS_URL = env.str("REDIS_URL", default="")
if REDIS_URL:
    CACHES = {
        "default": {
            "BACKEND": "django.core.cache.backends.redis.RedisCache",
            "LOCATION": REDIS_URL,
            "KEY_PREFIX": env.str("CACHE_KEY_PREFIX", default="rdv"),
            "TIMEOUT": 300,
        }
    }
    CELERY_BROKER_URL = REDIS_URL
    CELERY_TASK_ALWAYS_EAGER = False
else:
    CACHES = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}}
    CELERY_BROKER_URL = "memory://"
    CELERY_TASK_ALWAYS_EAGER = True
CELERY_TASK_EAGER_PROPAGATES = False
CELERY_TASK_PUBLISH_RETRY = False  # fail fast when Redis is down; the outbox sweep catches up
# A task's message is acknowledged once the task has finished: a worker killed with SIGKILL leaves
# it unacknowledged in Redis, which hands it out again after the visibility timeout (it must exceed
# the longest task, or a running task is handed out twice); a pool process killed under a live
# worker is requeued at once. Every task is idempotent and has a database-side backstop that does
# not wait for the broker (docs/faults.md, "A worker killed").
CELERY_TASK_ACKS_LATE = True
CELERY_TASK_REJECT_ON_WORKER_LOST = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_TASK_IGNORE_RESULT = True
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
CELERY_BROKER_TRANSPORT_OPTIONS = {
    "socket_connect_timeout": 2,
    "socket_timeout": 5,
    "max_retries": 0,
    "visibility_timeout": env.int("CELERY_VISIBILITY_TIMEOUT", default=3600),
}
CELERY_BEAT_SCHEDULE = {
    "notifications-sweep": {
        "task": "booking.tasks.notifications_sweep",
        "schedule": timedelta(minutes=1),
    },
    # Booking and cancellation e-mails when they are not published on commit (NOTIFICATIONS_ON_COMMIT).
    "notifications-relay": {
        "task": "booking.tasks.notifications_relay",
        "schedule": timedelta(seconds=NOTIFICATIONS_RELAY_SECONDS),
        "options": {"expires": NOTIFICATIONS_RELAY_SECONDS},
    },
    # Appointment reminders (booking.reminders, docs/reminders.md): insert those of the bookings the
    # outbox recorded since the last run (and, nightly, of every booked appointment of the next days),
    # then send the due ones; overlapping runs are safe (unique rows; claims with skip locked).
    "reminders-schedule": {
        "task": "booking.tasks.reminders_schedule",
        "schedule": timedelta(minutes=1),
        "options": {"expires": 50},
    },
    "reminders-catch-up": {
        "task": "booking.tasks.reminders_schedule",
        "schedule": timedelta(days=1),
        "kwargs": {"full": True},
    },
    "reminders-send": {
        "task": "booking.tasks.reminders_send",
        "schedule": timedelta(minutes=1),
        "options": {"expires": 50},
    },
    # Waitlist offers (booking.waitlist, docs/waitlist.md): end past offers, offer freed and published
    # slots; overlapping runs are safe (one live offer per slot and per citizen, by the database).
    "waitlist-dispatch": {
        "task": "booking.tasks.waitlist_dispatch",
        "schedule": timedelta(seconds=15),
        "options": {"expires": 12},
    },
    # The single relay that gives committed outbox events their place in the EMR change feed
    # (sync.feed); a second one running at once finds the advisory lock taken and does nothing.
    "feed-relay": {
        "task": "sync.tasks.feed_relay",
        "schedule": timedelta(seconds=1),
        "options": {"expires": 5},
    },
    "feed-prune": {
        "task": "sync.tasks.feed_prune",
        "schedule": timedelta(days=1),
    },
    # Agenda snapshots no worker finished (lost message, dead workers): queued again, or failed after
    # a few attempts (sync.snapshot_sweep); a snapshot being reconciled is locked and skipped.
    "snapshots-sweep": {
        "task": "sync.tasks.snapshots_sweep",
        "schedule": timedelta(minutes=1),
        "options": {"expires": 50},
    },
    # Partner sandboxes (sync.sandbox_stream, docs/vendors.md): synthetic citizens book and cancel
    # on each vendor's sandbox slots, so that its EMR client sees portal-side changes.
    "sandbox-streams": {
        "task": "sync.tasks.sandbox_streams",
        "schedule": timedelta(minutes=5),
        "options": {"expires": 240},
    },
    # Law 25 retention (booking.services.retention): one daily pass of bulk statements.
    "retention-apply": {
        "task": "booking.tasks.retention_apply",
        "schedule": timedelta(days=1),
    },
    # Webhook deliveries (sync.webhooks); the relay also kicks one as soon as it numbered events.
    # Each subscription is locked (skip locked) while it is delivered, so overlapping runs are safe.
    "webhooks-deliver": {
        "task": "sync.tasks.webhooks_deliver",
        "schedule": timedelta(seconds=2),
        "options": {"expires": 10},
    },
    # Provincial reporting (booking.reporting, docs/metrics.md): the weeks touched since the last run,
    # and once a night every week from the raw rows; then the open-data files (SMART Scheduling Links).
    "reporting-aggregate": {
        "task": "booking.tasks.reporting_aggregate",
        "schedule": timedelta(minutes=5),
        "options": {"expires": 240},
    },
    "reporting-rebuild": {
        "task": "booking.tasks.reporting_aggregate",
        "schedule": timedelta(days=1),
        "kwargs": {"full": True},
    },
    "opendata-publish": {
        "task": "booking.tasks.opendata_publish",
        "schedule": timedelta(minutes=15),
        "options": {"expires": 600},
    },
}

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator", "OPTIONS": {"min_length": 10}},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]
AUTHENTICATION_BACKENDS = [
    "django.contrib.auth.backends.ModelBackend",
    "allauth.account.auth_backends.AuthenticationBackend",
]

# django-allauth: e-mail login, verified addresses.
ACCOUNT_LOGIN_METHODS = {"email"}
ACCOUNT_SIGNUP_FIELDS = ["email*", "password1*", "password2*"]
ACCOUNT_USER_MODEL_USERNAME_FIELD = None
ACCOUNT_EMAIL_VERIFICATION = "mandatory"
ACCOUNT_UNIQUE_EMAIL = True
ACCOUNT_LOGOUT_ON_GET = False
ACCOUNT_RATE_LIMITS = {"login_failed": "10/m/ip,5/5m/key"}
# allauth's per-address limits must see the client, not the load balancer: else ten failed sign-ins a
# minute anywhere in the province would refuse everyone's. Same hop count as TRUSTED_PROXY_COUNT below.
ALLAUTH_TRUSTED_PROXY_COUNT = env.int("TRUSTED_PROXY_COUNT", default=0)
# Multi-factor authentication (allauth.mfa), required for clinic staff by clinics.access.staff_required:
# TOTP with recovery codes, and WebAuthn security keys (allauth's own script, no build step). One
# 30-second step of tolerance either side absorbs a phone's clock drift.
MFA_SUPPORTED_TYPES = ["totp", "recovery_codes", "webauthn"]
MFA_TOTP_ISSUER = "Rendez-vous santé Québec"
MFA_TOTP_TOLERANCE = 1
MFA_PASSKEY_LOGIN_ENABLED = False
# WebAuthn needs a secure origin; the plain-HTTP demo is allowed an insecure one, production never.
MFA_WEBAUTHN_ALLOW_INSECURE_ORIGIN = DEBUG
LOGIN_REDIRECT_URL = "booking:mine"
LOGIN_URL = "account_login"

LANGUAGE_CODE = "fr"
LANGUAGES = [("fr", _("French")), ("en", _("English"))]
LOCALE_PATHS = [BASE_DIR / "locale"]
TIME_ZONE = "America/Toronto"
USE_I18N = True
USE_TZ = True

STATIC_URL = "/static/"
STATIC_ROOT = VAR_DIR / "staticfiles"
STATICFILES_DIRS = [BASE_DIR / "static"]
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {
        "BACKEND": "whitenoise.storage.CompressedManifestStaticFilesStorage"
        if not DEBUG
        else "django.contrib.staticfiles.storage.StaticFilesStorage"
    },
}

# E-mail: console by default (demo); EMAIL_URL (smtp://…) in production.
if env.str("EMAIL_URL", default=""):
    vars().update(env.email_url("EMAIL_URL"))
elif DEBUG:
    EMAIL_BACKEND = "django.core.mail.backends.console.EmailBackend"
else:
    # Citizen e-mail carries cancel links: never let production print it to the logs by default.
    raise ImproperlyConfigured("EMAIL_URL must be set when DJANGO_DEBUG is off (smtp+tls://…).")
DEFAULT_FROM_EMAIL = env.str("DEFAULT_FROM_EMAIL", default="Rendez-vous santé <ne-pas-repondre@rdv.example>")
SITE_URL = env.str("SITE_URL", default="http://127.0.0.1:8000" if DEBUG else "")
if not SITE_URL:
    raise ImproperlyConfigured("SITE_URL must be set when DJANGO_DEBUG is off (links in e-mail).")

# Security. Production values are the defaults; the demo relaxes only what plain HTTP needs.
SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
SECURE_SSL_REDIRECT = env.bool("SECURE_SSL_REDIRECT", default=not DEBUG)
# Probes and the metrics scraper call the web processes directly over HTTP (behind the TLS proxy):
# redirecting them to https would make them fail. Nothing personal is served on these paths.
SECURE_REDIRECT_EXEMPT = [r"^healthz$", r"^readyz$", r"^metrics$"]
SESSION_COOKIE_SECURE = not DEBUG
CSRF_COOKIE_SECURE = not DEBUG
SESSION_COOKIE_HTTPONLY = True
SESSION_COOKIE_SAMESITE = "Lax"
SESSION_COOKIE_AGE = 60 * 60 * 2
SECURE_HSTS_SECONDS = env.int("SECURE_HSTS_SECONDS", default=0 if DEBUG else 31536000)
SECURE_HSTS_INCLUDE_SUBDOMAINS = not DEBUG
SECURE_HSTS_PRELOAD = not DEBUG
SECURE_CONTENT_TYPE_NOSNIFF = True
SECURE_REFERRER_POLICY = "same-origin"
SECURE_CROSS_ORIGIN_OPENER_POLICY = "same-origin"
X_FRAME_OPTIONS = "DENY"
CSRF_COOKIE_SAMESITE = "Lax"
# Content Security Policy (config.security, docs/security.md): nothing inline, nothing from elsewhere.
# Scripts and styles come from our own static files; the Swagger UI's start-up script carries a
# per-request nonce, added to script-src only on the page that uses it. Images may be data: URIs
# (allauth's TOTP QR code, Swagger UI's icons). Same shape as Django 6.0's SECURE_CSP.
SECURE_CSP = {
    "default-src": ["'self'"],
    "script-src": ["'self'"],
    "style-src": ["'self'"],
    "img-src": ["'self'", "data:"],
    "object-src": ["'none'"],
    "base-uri": ["'self'"],
    "frame-ancestors": ["'none'"],
    "form-action": ["'self'"],
}
# Path prefix → directives replaced there. Empty: no page needs more than the policy above.
SECURE_CSP_PATH_OVERRIDES: dict[str, dict[str, list[str]]] = {}
# Browser features no page of ours uses are switched off, for embedded content too.
PERMISSIONS_POLICY: dict[str, list[str]] = {"camera": [], "microphone": [], "geolocation": [], "payment": []}

REST_FRAMEWORK = {
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    "DEFAULT_AUTHENTICATION_CLASSES": ["booking.api.auth.CitizenTokenAuthentication"],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.AllowAny"],
    "DEFAULT_RENDERER_CLASSES": ["rest_framework.renderers.JSONRenderer"],
    "DEFAULT_PARSER_CLASSES": ["rest_framework.parsers.JSONParser"],
    "EXCEPTION_HANDLER": "booking.api.errors.exception_handler",
    "UNAUTHENTICATED_USER": None,
}
SPECTACULAR_SETTINGS = {
    "TITLE": "Rendez-vous santé Québec: citizen API",
    "DESCRIPTION": (
        "Identify with the health-insurance card, search, hold, book, cancel and list appointments."
    ),
    "VERSION": "1.0.0",
    "SERVE_INCLUDE_SCHEMA": False,
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
}

# EMR synchronization API (sync/, FHIR R4): OAuth 2.0 client credentials with django-oauth-toolkit.
# One scope per resource and action; an EMR client is allowed a subset (sync.oauth.EmrClientScopes).
SYNC_SCOPES = {
    "system/Location.read": "Read the clinics (Location) of your clinics",
    "system/Organization.read": "Read the GMFs (Organization) of your clinics",
    "system/Practitioner.read": "Read the practitioners of your clinics",
    "system/PractitionerRole.read": "Read the practitioner roles of your clinics",
    "system/Schedule.read": "Read the schedules of your clinics",
    "system/Slot.read": "Read the slots of your clinics",
    "system/Slot.write": "Publish and withdraw the slots of your clinics",
    "system/Appointment.read": "Read the appointments of your clinics",
    "system/Appointment.write": "Book and update the appointments of your clinics",
    "system/Patient.read": "Look up, by NAM, the patients who have an appointment at your clinics",
    "system/Task.read": "Read the agenda conflicts (Task) of your clinics",
    "system/Task.write": "Resolve the agenda conflicts (Task) of your clinics",
}
OAUTH2_PROVIDER = {
    "SCOPES": SYNC_SCOPES,
    "SCOPES_BACKEND_CLASS": "sync.oauth.EmrClientScopes",
    "OAUTH2_VALIDATOR_CLASS": "sync.oauth.EmrClientValidator",
    "OAUTH2_BACKEND_CLASS": "sync.oauth.FormBodyOAuthLibCore",
    "ACCESS_TOKEN_EXPIRE_SECONDS": env.int("SYNC_TOKEN_SECONDS", default=3600),
    # Client secrets are hashed at rest (DOT's default, kept explicit); access tokens are stored as
    # checksums only; tokens in query strings, the implicit and password grants are refused.
    "CLIENT_SECRET_HASHER": "default",
    "COMPLIANT_BCP_RFC9700_IMPLICIT_GRANT": True,
    "COMPLIANT_BCP_RFC9700_PASSWORD_GRANT": True,
    "COMPLIANT_BCP_RFC9700_PKCE_METHOD": True,
    "COMPLIANT_BCP_RFC9700_ACCESS_TOKEN_TRANSPORT": True,
    "COMPLIANT_BCP_RFC9700_AUTHZ_RESPONSE_ISS": True,
    "COMPLIANT_BCP_RFC9700_TOKEN_STORAGE": True,
    # No redirect-based grant is used; keep DOT's deploy checks strict anyway.
    "ALLOWED_REDIRECT_URI_SCHEMES": ["https"],
    "REFRESH_TOKEN_REUSE_PROTECTION": True,
    "COMPLIANT_BCP_RFC9700_REFRESH_TOKEN": True,
    "COMPLIANT_BCP_RFC9700_REDIRECT_URI_SCHEME": True,
    "COMPLIANT_BCP_RFC9700_REDIRECT_URI_MATCHING": True,
    "COMPLIANT_BCP_RFC9700_PKCE_REQUIRED": True,
}
# DOT's swappable application model, named so that sync's migrations can depend on it.
OAUTH2_PROVIDER_APPLICATION_MODEL = "oauth2_provider.Application"
# Requests per EMR client, "count/period" as DRF throttles read it (s, m, h, d).
SYNC_API_RATE = env.str("SYNC_API_RATE", default="1200/m")
# The EMR change feed: how long events are kept (an older cursor gets 410 and resyncs), and the
# polling budget (one poll per interval per client; 429 beyond). Published in docs/sync-api.md and
# the CapabilityStatement.
SYNC_FEED_RETENTION_DAYS = env.int("SYNC_FEED_RETENTION_DAYS", default=30)
SYNC_FEED_MIN_INTERVAL_SECONDS = env.int("SYNC_FEED_MIN_INTERVAL_SECONDS", default=10)
# Without Redis (the demo) there is no beat to run the relay: the feed endpoints run it inline.
SYNC_FEED_RELAY_INLINE = env.bool("SYNC_FEED_RELAY_INLINE", default=not REDIS_URL)
# Webhooks (FHIR Subscription rest-hook, sync.webhooks): a subscription is dead (nothing sent until
# its client re-activates it) after this many consecutive failed deliveries, or once it has been
# failing for this many hours; events per delivery; subscriptions per client (active or dead).
# Plain-http endpoints and loopback hosts are for the demo and tests only (default: DEBUG).
# The backoff (2 s doubling, capped at an hour) makes about 35 attempts in 24 hours: the count must
# stay above that, or an endpoint down for half an hour would already be dead (tests/faults).
SYNC_WEBHOOK_MAX_FAILURES = env.int("SYNC_WEBHOOK_MAX_FAILURES", default=40)
SYNC_WEBHOOK_DEAD_AFTER_HOURS = env.int("SYNC_WEBHOOK_DEAD_AFTER_HOURS", default=24)
SYNC_WEBHOOK_BATCH = env.int("SYNC_WEBHOOK_BATCH", default=100)
SYNC_WEBHOOK_MAX_PER_CLIENT = env.int("SYNC_WEBHOOK_MAX_PER_CLIENT", default=5)
SYNC_WEBHOOK_ALLOW_LOOPBACK = env.bool("SYNC_WEBHOOK_ALLOW_LOOPBACK", default=DEBUG)

# Booking rules (defaults; clinics override notice and cut-off on their own row).
BOOKING_HOLD_SECONDS = env.int("BOOKING_HOLD_SECONDS", default=300)
BOOKING_MAX_ACTIVE_ONLINE = env.int("BOOKING_MAX_ACTIVE_ONLINE", default=2)
CITIZEN_SESSION_SECONDS = env.int("CITIZEN_SESSION_SECONDS", default=30 * 60)
CITIZEN_API_TOKEN_SECONDS = env.int("CITIZEN_API_TOKEN_SECONDS", default=30 * 60)

# Dependants (docs/dependants.md): how many people one holder may add (each brings its own limit
# of online appointments). No-shows: a patient with at least this many in the last N days sees a
# reminder of the rules on the confirmation step (a reminder, never a block).
DEPENDANTS_MAX = env.int("DEPENDANTS_MAX", default=8)
BOOKING_NOSHOW_REMINDER_COUNT = env.int("BOOKING_NOSHOW_REMINDER_COUNT", default=2)
BOOKING_NOSHOW_REMINDER_DAYS = env.int("BOOKING_NOSHOW_REMINDER_DAYS", default=365)

# Reminders (docs/reminders.md). SMS_BACKEND is a dotted path (booking.sms); empty switches text
# messages off. The demo prints them; production never does by default (they carry cancel links).
SMS_BACKEND = env.str("SMS_BACKEND", default="booking.sms.ConsoleSmsBackend" if DEBUG else "")
REMINDER_LOOKAHEAD_DAYS = env.int("REMINDER_LOOKAHEAD_DAYS", default=4)
# The outbox is read from this long before the previous run's start: a booking's transaction that
# committed after a run began (its event inserted before) is read by the next run.
REMINDER_OUTBOX_OVERLAP_SECONDS = env.int("REMINDER_OUTBOX_OVERLAP_SECONDS", default=600)
REMINDER_MAX_ATTEMPTS = env.int("REMINDER_MAX_ATTEMPTS", default=5)
# A claim older than this belongs to a killed worker and is taken again (same idempotency key); it
# must exceed the slowest send (SMTP and SMS timeouts).
REMINDER_SENDING_TIMEOUT_SECONDS = env.int("REMINDER_SENDING_TIMEOUT_SECONDS", default=600)
# Closer to the start than this, a reminder is no longer sent.
REMINDER_MIN_LEAD_MINUTES = env.int("REMINDER_MIN_LEAD_MINUTES", default=120)
REMINDER_BATCH = env.int("REMINDER_BATCH", default=100)
REMINDER_MAX_BATCHES = env.int("REMINDER_MAX_BATCHES", default=50)

# Waitlist (docs/waitlist.md): how long an offer holds its slot for the citizen to answer; waiting
# requests per person; how far back the dispatcher looks for freed and published slots.
WAITLIST_OFFER_SECONDS = env.int("WAITLIST_OFFER_SECONDS", default=15 * 60)
WAITLIST_MAX_ACTIVE_REQUESTS = env.int("WAITLIST_MAX_ACTIVE_REQUESTS", default=3)
WAITLIST_LOOKBACK_SECONDS = env.int("WAITLIST_LOOKBACK_SECONDS", default=15 * 60)
WAITLIST_MAX_SLOTS_PER_RUN = env.int("WAITLIST_MAX_SLOTS_PER_RUN", default=2000)
# Offers are made only 8:00–21:00 clinic time (slots freed at night are offered from 8:00).
WAITLIST_QUIET_HOURS = env.bool("WAITLIST_QUIET_HOURS", default=True)
# A snapshot whose reconciliation started this many times in a day without finishing (a worker killed
# each time: redelivered by the broker, retried, swept) is failed instead of looping (sync.tasks).
SNAPSHOT_MAX_DELIVERIES = env.int("SNAPSHOT_MAX_DELIVERIES", default=20)

# Provincial reporting (docs/metrics.md): an EMR clinic with no snapshot and no EMR change for this
# many hours is listed under sync health. Open data (SMART Scheduling Links): files written by the
# opendata_publish task into this directory, served with this Cache-Control max-age, listing free
# public slots of the next OPENDATA_DAYS days.
REPORTING_SYNC_STALE_HOURS = env.int("REPORTING_SYNC_STALE_HOURS", default=24)
OPENDATA_ROOT = Path(env.str("OPENDATA_ROOT", default=str(VAR_DIR / "opendata")))
OPENDATA_MAX_AGE = env.int("OPENDATA_MAX_AGE", default=300)
OPENDATA_DAYS = env.int("OPENDATA_DAYS", default=30)

# Rate limits: "count/seconds" per key. Benchmarks raise them through this one setting.
RATE_LIMITS = {
    # Failed card checks: per address, and per card from one address (a stranger elsewhere cannot
    # lock a person out of their own card).
    "identify_ip": env.str("RATE_LIMIT_IDENTIFY_IP", default="60/600"),
    "identify_nam": env.str("RATE_LIMIT_IDENTIFY_NAM", default="5/600"),
    "identify_nam_any": env.str("RATE_LIMIT_IDENTIFY_NAM_ANY", default="20/600"),
    "search": env.str("RATE_LIMIT_SEARCH", default="60/60"),
    "hold": env.str("RATE_LIMIT_HOLD", default="20/60"),
    "book": env.str("RATE_LIMIT_BOOK", default="10/60"),
    "cancel": env.str("RATE_LIMIT_CANCEL", default="10/60"),
    # The same actions per client address, on top of the per-citizen limits above. Generous on
    # purpose: a hospital, a school or a carrier's NAT puts hundreds of people behind one address,
    # so these only slow one abusive source down (docs/scaling.md, "Rate limits").
    "search_ip": env.str("RATE_LIMIT_SEARCH_IP", default="1200/60"),
    "hold_ip": env.str("RATE_LIMIT_HOLD_IP", default="300/60"),
    "book_ip": env.str("RATE_LIMIT_BOOK_IP", default="300/60"),
    # Clinic registration requests sent from one address (the public form fills the board's queue).
    "clinic_registration": env.str("RATE_LIMIT_CLINIC_REGISTRATION", default="5/3600"),
}
RATE_LIMIT_ENABLED = env.bool("RATE_LIMIT_ENABLED", default=True)

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "handlers": {"console": {"class": "logging.StreamHandler"}},
    "root": {"handlers": ["console"], "level": env.str("LOG_LEVEL", default="INFO")},
    "loggers": {"django.db.backends": {"level": "WARNING"}},
}
# How many proxies (load balancers) in front of the app append to X-Forwarded-For; 0 = none.
TRUSTED_PROXY_COUNT = env.int("TRUSTED_PROXY_COUNT", default=0)

# ---------------------------------------------------------------------------------------------------
# Operations (issue 10; docs/operations.md): metrics, structured logs, maintenance mode.
# ---------------------------------------------------------------------------------------------------
INSTALLED_APPS += ["config.apps.OperationsConfig"]
# First: times every request and gives it its request id. Maintenance after authentication.
MIDDLEWARE.insert(0, "config.observability.RequestObservabilityMiddleware")
MIDDLEWARE.append("config.maintenance.MaintenanceMiddleware")
# A page of search results is reused this long (booking.selectors; 0: off). Every reuse checks its
# slots again, so a booked or held slot never shows; a freed one shows within this many seconds.
SEARCH_CACHE_SECONDS = env.int("SEARCH_CACHE_SECONDS", default=5)
# The self-hosted challenge under abnormal load (booking.challenge, docs/scaling.md): on when forced,
# when an operator switches it on (manage.py challenge), or when more than AUTO_THRESHOLD requests
# of the booking flow arrive in AUTO_WINDOW seconds (0: never automatically), for AUTO_SECONDS. A
# proof of work of BITS zero bits, or without JavaScript a wait of WAIT seconds; passing it lasts
# PASS_SECONDS in the session.
MIDDLEWARE.append("booking.challenge.ChallengeMiddleware")
CHALLENGE_ENABLED = env.bool("CHALLENGE_ENABLED", default=False)
CHALLENGE_AUTO_THRESHOLD = env.int("CHALLENGE_AUTO_THRESHOLD", default=0)
CHALLENGE_AUTO_WINDOW = env.int("CHALLENGE_AUTO_WINDOW", default=10)
CHALLENGE_AUTO_SECONDS = env.int("CHALLENGE_AUTO_SECONDS", default=600)
CHALLENGE_BITS = env.int("CHALLENGE_BITS", default=16)
CHALLENGE_WAIT_SECONDS = env.int("CHALLENGE_WAIT_SECONDS", default=10)
CHALLENGE_MAX_AGE = env.int("CHALLENGE_MAX_AGE", default=600)
CHALLENGE_PASS_SECONDS = env.int("CHALLENGE_PASS_SECONDS", default=3600)
CHALLENGE_FLAG_CACHE_SECONDS = env.float("CHALLENGE_FLAG_CACHE_SECONDS", default=2.0)
MIDDLEWARE.append("booking.waitingroom.WaitingRoomMiddleware")
# The virtual waiting room for release peaks (booking.waitingroom, docs/scaling.md): at most CAPACITY
# active visitors in the booking flow; newcomers queue first come, first served. A visitor's seat
# lapses IDLE seconds after their last request there; a waiter who stops asking for STALE seconds loses
# the place; the queue page refreshes every REFRESH seconds (the API's Retry-After); AVERAGE_VISIT
# seconds per visit gives the estimated wait. Off by default (and in tests, except the room's own).
WAITING_ROOM_ENABLED = env.bool("WAITING_ROOM_ENABLED", default=False)
WAITING_ROOM_CAPACITY = env.int("WAITING_ROOM_CAPACITY", default=2000)
WAITING_ROOM_IDLE_SECONDS = env.int("WAITING_ROOM_IDLE_SECONDS", default=300)
WAITING_ROOM_STALE_SECONDS = env.int("WAITING_ROOM_STALE_SECONDS", default=60)
WAITING_ROOM_REFRESH_SECONDS = env.int("WAITING_ROOM_REFRESH_SECONDS", default=15)
WAITING_ROOM_TOKEN_RECHECK_SECONDS = env.int("WAITING_ROOM_TOKEN_RECHECK_SECONDS", default=30)
WAITING_ROOM_AVERAGE_VISIT_SECONDS = env.int("WAITING_ROOM_AVERAGE_VISIT_SECONDS", default=180)
TEMPLATES[0]["OPTIONS"]["context_processors"].append("config.maintenance.context_processor")  # type: ignore[index]

# /metrics (config.metrics): readable from these addresses or networks (the scraper's), or with
# ``Authorization: Bearer <METRICS_TOKEN>`` from anywhere. Everyone else gets 404.
METRICS_ALLOWED_IPS = env.list("METRICS_ALLOWED_IPS", default=["127.0.0.1", "::1"])
METRICS_TOKEN = env.str("METRICS_TOKEN", default="")
if METRICS_TOKEN and len(METRICS_TOKEN) < 32:
    raise ImproperlyConfigured("METRICS_TOKEN must be at least 32 characters (or unset).")
METRICS_QUERY_TIMEOUT_MS = env.int("METRICS_QUERY_TIMEOUT_MS", default=2000)
METRICS_CELERY_QUEUES = env.list("METRICS_CELERY_QUEUES", default=["celery"])
# A Celery worker's own /metrics (config.worker_metrics), for workers on machines without a web
# process: the port (unset: none) and the address it listens on; same access rules as above.
WORKER_METRICS_PORT = env.int("WORKER_METRICS_PORT", default=0)
WORKER_METRICS_ADDR = env.str("WORKER_METRICS_ADDR", default="0.0.0.0")  # noqa: S104

# Logs: JSON lines (one object per line, with the request id) in production; readable text in the
# demo. Celery workers use the same configuration instead of replacing the root logger.
LOG_FORMAT = env.str("LOG_FORMAT", default="text" if DEBUG else "json")
if LOG_FORMAT not in ("json", "text"):
    raise ImproperlyConfigured("LOG_FORMAT must be json or text.")
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "filters": {"request_id": {"()": "config.logs.RequestIdFilter"}},
    "formatters": {
        "json": {"()": "config.logs.JsonFormatter"},
        "text": {"()": "config.logs.TextFormatter"},
    },
    "handlers": {
        "console": {"class": "logging.StreamHandler", "formatter": LOG_FORMAT, "filters": ["request_id"]}
    },
    "root": {"handlers": ["console"], "level": env.str("LOG_LEVEL", default="INFO")},
    # SQL statements carry parameters (a NAM in a lookup): never logged, whatever LOG_LEVEL says.
    "loggers": {"django.db.backends": {"level": "WARNING"}},
}
CELERY_WORKER_HIJACK_ROOT_LOGGER = False

# Maintenance mode (config.maintenance, docs/operations.md): search and viewing keep working; holds,
# bookings, reschedules and cancellations pause on every channel; the APIs answer 503 with
# Retry-After. On with MAINTENANCE_MODE=true (a deploy), or at run time with
# ``manage.py maintenance on`` (a flag in Redis, read at most every few seconds by each process).
MAINTENANCE_MODE = env.bool("MAINTENANCE_MODE", default=False)
MAINTENANCE_RETRY_AFTER = env.int("MAINTENANCE_RETRY_AFTER", default=900)

# The board's help desk (booking.helpdesk): lookups per staff member and window.
RATE_LIMITS["helpdesk"] = env.str("RATE_LIMIT_HELPDESK", default="30/600")
