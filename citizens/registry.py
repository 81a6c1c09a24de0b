"""The insured-person registry adapter.

On the demo and in tests the registry is the ``Citizen`` table itself. In production RAMQ's
service replaces :class:`TableRegistry` (setting ``INSURED_PERSON_REGISTRY``) and answers the same
question: does a card with these details exist, and is it valid today?
"""

from dataclasses import dataclass
from datetime import date
from typing import Protocol

from django.conf import settings
from django.utils.module_loading import import_string

from .models import Citizen


@dataclass(frozen=True)
class RegistryRecord:
    nam: str
    card_sequence: str
    first_name: str
    last_name: str
    birth_date: date
    sex: str
    postal_code: str
    card_expires: date | None


class Registry(Protocol):
    def lookup(self, nam: str) -> RegistryRecord | None: ...


class TableRegistry:
    def lookup(self, nam: str) -> RegistryRecord | None:
        row = (
            # A partner sandbox's synthetic people are not insured persons: they cannot identify on
            # the portal or the citizen API (docs/vendors.md).
            Citizen.objects.filter(nam=nam, is_synthetic=False)
            .values(
                "nam",
                "card_sequence",
                "first_name",
                "last_name",
                "birth_date",
                "sex",
                "postal_code",
                "card_expires",
            )
            .first()
        )
        return RegistryRecord(**row) if row else None


def get_registry() -> Registry:
    path = getattr(settings, "INSURED_PERSON_REGISTRY", "citizens.registry.TableRegistry")
    registry: Registry = import_string(path)()
    return registry
