"""Text messages through a pluggable backend (``settings.SMS_BACKEND``, a dotted path).

A backend has one method, ``send(to, body, idempotency_key) -> provider id``. It passes the key to
the provider, so that a provider which supports idempotency drops a message it already accepted
(the re-send after a killed worker, see docs/reminders.md). It raises ``SmsError`` for a failure
worth retrying later and ``SmsRejected`` for one that will never succeed (a number refused).

An empty ``SMS_BACKEND`` switches text messages off: no SMS reminder is scheduled. The demo prints
them (``ConsoleSmsBackend``); tests record them (``LocmemSmsBackend``); a real provider is one more
class with the same method.
"""

import re
import sys
import threading
import uuid
from dataclasses import dataclass
from typing import TextIO

from django.conf import settings
from django.utils.module_loading import import_string


class SmsError(Exception):
    """A failure worth retrying later (provider down, timeout, throttled)."""


class SmsRejected(SmsError):
    """A message the provider will never accept (invalid or blocked number)."""


class BaseSmsBackend:
    def send(self, to: str, body: str, idempotency_key: str) -> str:
        """Send ``body`` to ``to`` (E.164); return the provider's identifier of the message."""
        raise NotImplementedError


class ConsoleSmsBackend(BaseSmsBackend):
    """Development only: writes each message to standard output (it carries a cancel link)."""

    def __init__(self, stream: TextIO | None = None) -> None:
        self.stream = stream or sys.stdout

    def send(self, to: str, body: str, idempotency_key: str) -> str:
        provider_id = f"console-{uuid.uuid4().hex}"
        self.stream.write(f"SMS to {to} [{idempotency_key}]\n{body}\n{'-' * 40}\n")
        self.stream.flush()
        return provider_id


@dataclass(frozen=True)
class SmsMessage:
    to: str
    body: str
    idempotency_key: str
    provider_id: str


# Every message the locmem backend was asked to send, duplicates included, so that a test can count
# deliveries. Tests empty it; threads of one test share it (appends are under the lock).
outbox: list[SmsMessage] = []
_outbox_lock = threading.Lock()


class LocmemSmsBackend(BaseSmsBackend):
    """Tests: records every call in ``booking.sms.outbox``. Like a provider that honours
    idempotency, a repeated key gets the provider id of its first message back."""

    def send(self, to: str, body: str, idempotency_key: str) -> str:
        with _outbox_lock:
            first = next((m for m in outbox if m.idempotency_key == idempotency_key), None)
            provider_id = first.provider_id if first else f"locmem-{uuid.uuid4().hex}"
            outbox.append(SmsMessage(to, body, idempotency_key, provider_id))
        return provider_id


def sms_enabled() -> bool:
    return bool(getattr(settings, "SMS_BACKEND", ""))


def get_sms_backend() -> BaseSmsBackend:
    backend_class = import_string(settings.SMS_BACKEND)
    backend: BaseSmsBackend = backend_class()
    return backend


def mobile_e164(number: str) -> str | None:
    """A North American mobile number as E.164 (``+15145550123``), or None when it is not one."""
    digits = re.sub(r"\D", "", number)
    if len(digits) == 10:
        digits = "1" + digits
    if len(digits) == 11 and digits.startswith("1") and digits[1] not in "01":
        return "+" + digits
    return None
