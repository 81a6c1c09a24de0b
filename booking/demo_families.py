"""Demo families: a few demo citizens get an account and children in their care (docs/dependants.md),
so that a newcomer can try booking for a child. Called by ``booking.demo.demo_seed``; printed by
``manage.py demo_citizens``.

Deterministic: the same demo registry gives the same families. The parents are enrolled adults of
30 to 49; each gets one or two children under 18 from their own postal area, whose cards are demo
cards like any other (so adding them again through the page verifies them the same way). The
accounts' passwords are not stored anywhere in clear: each is derived from ``SECRET_KEY`` and the
address, and ``demo_citizens`` (DEBUG only) derives it again to print it.
"""

import hashlib
import hmac
from dataclasses import dataclass
from datetime import date

from allauth.account.models import EmailAddress
from django.conf import settings
from django.utils import timezone

from citizens.models import Citizen, Dependant, User

FAMILIES = 3


def demo_password(email: str) -> str:
    """The demo account's password: only someone holding SECRET_KEY can derive it."""
    digest = hmac.new(settings.SECRET_KEY.encode(), f"demo-account:{email}".encode(), hashlib.sha256)
    return "demo-" + digest.hexdigest()[:12]


def _age(born: date, today: date) -> int:
    return today.year - born.year - ((today.month, today.day) < (born.month, born.day))


def seed_families(*, start_date: date, count: int = FAMILIES) -> int:
    """Give ``count`` demo parents an account (e-mail verified) and their children; returns the
    number of dependants linked."""
    now = timezone.now()
    taken: set[int] = set()
    linked = 0
    parents = (
        Citizen.objects.filter(enrolments__is_active=True, account__isnull=True)
        .exclude(email="")
        .order_by("pk")
    )
    families = 0
    for parent in parents.iterator(chunk_size=200):
        if families >= count:
            break
        if not 30 <= _age(parent.birth_date, start_date) <= 49 or parent.pk in taken:
            continue
        if User.objects.filter(email__iexact=parent.email).exists():
            continue  # an account of a previous demo on this database: never touched
        area = parent.postal_code[:3]
        children = [
            child
            for child in Citizen.objects.filter(postal_code__startswith=area, account__isnull=True)
            .exclude(pk=parent.pk)
            .order_by("pk")[:400]
            if _age(child.birth_date, start_date) < 18 and child.pk not in taken
        ][: 1 + families % 2]
        if not children:
            continue
        user = User.objects.create_user(email=parent.email, password=demo_password(parent.email))
        user.preferred_language = parent.preferred_language
        user.save(update_fields=["preferred_language"])
        EmailAddress.objects.create(user=user, email=user.email, verified=True, primary=True)
        Citizen.objects.filter(pk=parent.pk).update(account=user)
        for child in children:
            Dependant.objects.create(
                guardian=parent,
                citizen=child,
                relationship=Dependant.Relationship.PARENT,
                attested_at=now,
                added_by=user,
            )
            taken.add(child.pk)
            linked += 1
        taken.add(parent.pk)
        families += 1
    return linked


@dataclass(frozen=True)
class DemoFamily:
    parent: Citizen
    password: str
    children: list[Dependant]


def demo_families() -> list[DemoFamily]:
    """The demo accounts with people in their care, oldest first."""
    parents = (
        Citizen.objects.filter(account__isnull=False, dependant_links__isnull=False).distinct().order_by("pk")
    )
    return [
        DemoFamily(
            parent=parent,
            password=demo_password(parent.account.email),  # type: ignore[union-attr]
            children=list(parent.dependant_links.select_related("citizen").order_by("pk")),
        )
        for parent in parents.select_related("account")
    ]
