"""Citizen identity: verify the health-insurance card against the registry."""

import unicodedata
from datetime import date, datetime

from django.conf import settings
from django.db import IntegrityError, models, transaction
from django.utils import timezone

from config import ratelimit

from .models import Citizen, Dependant, User
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


class DependantRefused(Exception):  # noqa: N818
    """The card matched, but this person cannot be added: ``code`` says why (``self``, ``adult``,
    ``already``, ``too_many``). Raised only after the card check, so it reveals nothing that the
    holder did not just prove they know."""

    def __init__(self, code: str) -> None:
        super().__init__(code)
        self.code = code


def _age_on(birth_date: date, today: date) -> int:
    return today.year - birth_date.year - ((today.month, today.day) < (birth_date.month, birth_date.day))


def dependant_add(
    *,
    guardian: Citizen,
    user: User | None,
    first_name: str,
    last_name: str,
    nam: str,
    card_sequence: str,
    birth_date: date,
    relationship: str,
    ip: str,
    now: datetime | None = None,
) -> Dependant:
    """An account holder adds a person in their care by verifying that person's card.

    The card check is ``citizen_identify`` itself: the same rate limits (per address, per card) and
    the same IdentificationFailed that never says which detail was wrong. Then the relationship
    must fit (a parent or a tutor acts for a minor only), the holder cannot add themselves, and a
    holder has at most ``DEPENDANTS_MAX`` dependants: each brings its own limit of appointments.
    """
    now = now or timezone.now()
    if relationship not in Dependant.Relationship.values:
        raise DependantRefused("relationship")
    person = citizen_identify(
        first_name=first_name,
        last_name=last_name,
        nam=nam,
        card_sequence=card_sequence,
        birth_date=birth_date,
        ip=ip,
        today=timezone.localdate(now),
    )
    if person.pk == guardian.pk:
        raise DependantRefused("self")
    if relationship in Dependant.MINOR_ONLY and _age_on(person.birth_date, timezone.localdate(now)) >= 18:
        raise DependantRefused("adult")
    with transaction.atomic():
        # Serializes one holder's additions, so that two tabs cannot both pass the count.
        Citizen.objects.select_for_update().filter(pk=guardian.pk).first()
        if Dependant.objects.filter(guardian=guardian, citizen=person).exists():
            raise DependantRefused("already")
        if Dependant.objects.filter(guardian=guardian).count() >= settings.DEPENDANTS_MAX:
            raise DependantRefused("too_many")
        try:
            with transaction.atomic():
                return Dependant.objects.create(
                    guardian=guardian,
                    citizen=person,
                    relationship=relationship,
                    attested_at=now,
                    added_by=user,
                )
        except IntegrityError as exc:
            raise DependantRefused("already") from exc


def dependant_remove(*, guardian: Citizen, dependant_id: int) -> bool:
    """End the link (only the holder's own); the dependant's appointments stay booked."""
    deleted, _ = Dependant.objects.filter(guardian=guardian, pk=dependant_id).delete()
    return deleted == 1


__all__ = [
    "DependantRefused",
    "IdentificationFailed",
    "NamError",
    "citizen_identify",
    "citizen_link_account",
    "dependant_add",
    "dependant_remove",
]
