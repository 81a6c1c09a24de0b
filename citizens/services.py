"""Citizen identity: verify the health-insurance card against the registry."""

import unicodedata
from datetime import date

from django.db import transaction
from django.utils import timezone

from config import ratelimit

from .models import Citizen
from .nam import NamError, parse_nam
from .registry import get_registry


class IdentificationFailed(Exception):  # noqa: N818
    """The details do not match a valid card. Deliberately says nothing about which field."""


def _fold(text: str) -> str:
    """Compare names as people type them: no accents, case, hyphens or extra spaces."""
    decomposed = unicodedata.normalize("NFKD", text or "")
    plain = "".join(c for c in decomposed if not unicodedata.combining(c))
    return " ".join(plain.replace("-", " ").replace("'", " ").replace("’", " ").upper().split())


def citizen_identify(
    *,
    first_name: str,
    last_name: str,
    nam: str,
    card_sequence: str,
    birth_date: date,
    ip: str,
    today: date | None = None,
) -> Citizen:
    """Return the citizen whose card matches every detail, or raise IdentificationFailed.

    Failures are counted per IP and per NAM; once either is over its limit, RateLimited is raised
    before any look-up, until the window ends (a success is never counted, so a person who types
    their card right is not slowed down). A malformed NAM raises NamError first: saying so leaks
    nothing.
    """
    parsed = parse_nam(nam)  # NamError: the form says how to type it
    for name, ident in (("identify_ip", ip), ("identify_nam", parsed.value)):
        wait = ratelimit.peek_exceeded(name, ident)
        if wait:
            raise ratelimit.RateLimited(retry_after=wait)
    today = today or timezone.localdate()
    record = get_registry().lookup(parsed.value)
    if (
        record is None
        or record.card_sequence != (card_sequence or "").strip()
        or _fold(record.first_name) != _fold(first_name)
        or _fold(record.last_name) != _fold(last_name)
        or record.birth_date != birth_date
        or (record.card_expires is not None and record.card_expires < today)
    ):
        ratelimit.hit("identify_ip", ip, raise_when_over=False)
        ratelimit.hit("identify_nam", parsed.value, raise_when_over=False)
        raise IdentificationFailed
    with transaction.atomic():
        citizen, _ = Citizen.objects.update_or_create(
            nam=record.nam,
            defaults={
                "card_sequence": record.card_sequence,
                "first_name": record.first_name,
                "last_name": record.last_name,
                "birth_date": record.birth_date,
                "sex": record.sex,
                "postal_code": record.postal_code,
                "card_expires": record.card_expires,
            },
        )
    return citizen


def citizen_update_contact(*, citizen: Citizen, email: str, mobile: str, language: str) -> Citizen:
    Citizen.objects.filter(pk=citizen.pk).update(email=email, mobile=mobile, preferred_language=language)
    citizen.email, citizen.mobile, citizen.preferred_language = email, mobile, language
    return citizen


def citizen_link_account(*, citizen: Citizen, user) -> None:
    """An account holder links a verified card once; a card belongs to one account."""
    with transaction.atomic():
        Citizen.objects.filter(account=user).exclude(pk=citizen.pk).update(account=None)
        Citizen.objects.filter(pk=citizen.pk).update(account=user)
    citizen.account = user


__all__ = ["IdentificationFailed", "NamError", "citizen_identify", "citizen_link_account"]
