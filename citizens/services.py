"""Citizen identity: verify the health-insurance card against the registry."""

import unicodedata
from datetime import date

from django.db import models, transaction
from django.utils import timezone

from config import ratelimit

from .models import Citizen, User
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

    Each attempt is counted before the look-up and taken back when it succeeds, so only failures
    stay counted and concurrent guesses cannot slip past a limit. Three limits: per address; per
    card from one address (tight: a person mistyping is slowed, a stranger elsewhere is not felt);
    per card from anywhere (loose: it stops guessing the sequence number from many addresses, at
    the cost that a determined stranger can delay the real person by one window, a few minutes).
    A malformed NAM raises NamError first: saying so leaks nothing.
    """
    parsed = parse_nam(nam)  # NamError: the form says how to type it
    counted = []
    limits = (
        ("identify_ip", ip),
        ("identify_nam", f"{parsed.value}|{ip}"),
        ("identify_nam_any", parsed.value),
    )
    try:
        for name, ident in limits:
            ratelimit.hit(name, ident)
            counted.append((name, ident))
    except ratelimit.RateLimited:
        for name, ident in counted:
            ratelimit.undo(name, ident)
        raise
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
        raise IdentificationFailed
    for name, ident in counted:
        ratelimit.undo(name, ident)
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


class CardLinkedElsewhere(Exception):  # noqa: N818
    """The card is already linked to another account: it is never moved silently."""


def citizen_link_account(*, citizen: Citizen, user: User) -> None:
    """An account holder links a verified card once; a card belongs to one account, and an
    account to one card (linking another card replaces the account's previous one)."""
    with transaction.atomic():
        Citizen.objects.filter(account=user).exclude(pk=citizen.pk).update(account=None)
        linked = (
            Citizen.objects.filter(pk=citizen.pk)
            .filter(models.Q(account__isnull=True) | models.Q(account=user))
            .update(account=user)
        )
        if linked != 1:
            raise CardLinkedElsewhere  # rolls back the unlinking above too
    citizen.account = user


__all__ = ["IdentificationFailed", "NamError", "citizen_identify", "citizen_link_account"]
