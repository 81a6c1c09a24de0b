"""Print a few demo insured persons to identify with on the demo (never on real data)."""

from argparse import ArgumentParser
from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from booking.demo_families import demo_families
from citizens.models import Citizen
from citizens.nam import parse_nam


class Command(BaseCommand):
    help = "Print demo health-insurance cards (DJANGO_DEBUG only) to try the journey."

    def add_arguments(self, parser: ArgumentParser) -> None:
        parser.add_argument("--count", type=int, default=3)

    def handle(self, *args: Any, count: int, **options: Any) -> None:
        if not settings.DEBUG:
            raise CommandError("Demo only: set DJANGO_DEBUG=true. Real registries are never printed.")
        enrolled = Citizen.objects.filter(enrolments__is_active=True, enrolments__gmf__isnull=False).order_by(
            "pk"
        )
        not_enrolled = Citizen.objects.filter(enrolments__isnull=True).order_by("pk")
        people = [(p, "enrolled") for p in enrolled[:count]] + [(p, "not enrolled") for p in not_enrolled[:1]]
        if not people:
            raise CommandError("No demo citizens: run `make run` (or `manage.py seed_demo`) first.")
        for person, kind in people:
            self.stdout.write(f"{self._card(person)} | {kind}")
        families = demo_families()
        if not families:
            return
        self.stdout.write(
            "\nAccounts with children in their care (docs/dependants.md). Sign in at /comptes/login/ "
            "with the e-mail and password, or identify with the parent's card: either way, the search "
            'asks "Who is the appointment for?". The citizen API: POST /api/v1/identify with the '
            "parent's card, GET /api/v1/dependants, then pass the child's id as `patient`."
        )
        for family in families:
            parent = family.parent
            self.stdout.write(f"account {parent.email} | password {family.password}")
            self.stdout.write(f"  parent: {self._card(parent)}")
            for link in family.children:
                self.stdout.write(f"  child (dependant id {link.pk}): {self._card(link.citizen)}")

    @staticmethod
    def _card(person: Citizen) -> str:
        return (
            f"{person.first_name} {person.last_name} | NAM {parse_nam(person.nam).formatted} | "
            f"sequence {person.card_sequence} | born {person.birth_date:%Y-%m-%d} | "
            f"postal code {person.postal_code}"
        )
