"""Structured logs: one JSON object per line, each with the request id of the request (or the Celery
task it enqueued) that wrote it, and never personal data.

- ``request_id``: taken from an incoming ``X-Request-ID`` when it is sane (letters, digits, ``-_.:``,
  at most 64 characters: a load balancer's id), else generated; returned in the response header;
  carried to Celery tasks in their message headers (``config.observability``); put on every log
  record by ``RequestIdFilter``.
- Personal data: log calls pass ids, never names, NAMs, e-mail addresses or phone numbers
  (docs/security.md). ``scrub`` is the safety net for what we do not write ourselves (a database
  error's detail quotes the key that clashed): whatever looks like a NAM, an e-mail address or a
  phone number is replaced before the line is written.
"""

import contextvars
import datetime as dt
import json
import logging
import re
import secrets
import traceback
from typing import Any

request_id_var: contextvars.ContextVar[str] = contextvars.ContextVar("request_id", default="")

REQUEST_ID_HEADER = "X-Request-ID"
_SANE_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._:\-]{7,63}$")

# What a NAM (4 letters, 8 digits, spaced or not), an e-mail address or a phone number looks like.
_PERSONAL = [
    (re.compile(r"\b[A-Za-z]{4}[ -]?\d{4}[ -]?\d{4}\b"), "[nam]"),
    (re.compile(r"[\w.+-]+@[\w-]+(\.[\w-]+)+"), "[email]"),
    (re.compile(r"(?<![\w.])(\+?1[ .-]?)?\(?\d{3}\)?[ .-]?\d{3}[ .-]?\d{4}(?!\w)"), "[phone]"),
]

# The attributes every LogRecord has: anything else was passed in ``extra`` and goes to the JSON.
_STANDARD = set(vars(logging.LogRecord("", 0, "", 0, "", (), None))) | {"message", "asctime", "request_id"}


def new_request_id() -> str:
    return secrets.token_hex(16)


def sane_request_id(value: str | None) -> str | None:
    return value if value and _SANE_ID.match(value) else None


def scrub(text: str) -> str:
    for pattern, replacement in _PERSONAL:
        text = pattern.sub(replacement, text)
    return text


class RequestIdFilter(logging.Filter):
    """Puts the current request id on every record (empty outside a request or a task), and replaces
    the raw path in Django's own request records (``Not Found: /annulation/<token>/``) by the route
    name: a path can hold a cancellation token."""

    def filter(self, record: logging.LogRecord) -> bool:
        request = getattr(record, "request", None)
        if not getattr(record, "request_id", ""):
            record.request_id = getattr(request, "request_id", "") or request_id_var.get()
        path = getattr(request, "path", None)
        if path is not None:
            from .metrics import view_label

            view = view_label(request)  # type: ignore[arg-type]
            if isinstance(record.args, tuple):
                record.args = tuple(view if arg == path else arg for arg in record.args)
            record.request = f"{getattr(request, 'method', '')} {view}"
        return True


class JsonFormatter(logging.Formatter):
    """``{"time", "level", "logger", "message", "request_id", …extra, "exception"}``, scrubbed."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "time": dt.datetime.fromtimestamp(record.created, tz=dt.UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": scrub(record.getMessage()),
            "request_id": getattr(record, "request_id", "") or request_id_var.get(),
        }
        for key, value in vars(record).items():
            if key not in _STANDARD and not key.startswith("_"):
                entry[key] = (
                    value if isinstance(value, int | float | bool) or value is None else scrub(str(value))
                )
        if record.exc_info and record.exc_info[0] is not None:
            entry["exception"] = scrub("".join(traceback.format_exception(*record.exc_info)))
        return json.dumps(entry, ensure_ascii=False, default=str)


class TextFormatter(logging.Formatter):
    """The demo's readable lines, scrubbed the same way and with the request id."""

    def __init__(self) -> None:
        super().__init__("%(asctime)s %(levelname)s %(name)s [%(request_id)s] %(message)s")

    def format(self, record: logging.LogRecord) -> str:
        if not hasattr(record, "request_id"):
            record.request_id = request_id_var.get()
        extra = " ".join(
            f"{key}={value}"
            for key, value in vars(record).items()
            if key not in _STANDARD and not key.startswith("_")
        )
        return scrub(f"{super().format(record)} {extra}".rstrip())
