"""Load (or refresh) the health regions and FSAs from clinics/data. Safe to run repeatedly."""

from typing import Any

from django.core.management.base import BaseCommand

from clinics.reference import reference_load


class Command(BaseCommand):
    help = "Load Quebec's health regions and forward sortation areas (idempotent upsert)."

    def handle(self, *args: Any, **options: Any) -> None:
        regions, fsas = reference_load()
        self.stdout.write(f"Reference data: {regions} regions, {fsas} FSAs.")
