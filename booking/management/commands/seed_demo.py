"""Fill an empty database with deterministic demo data (see booking.demo)."""

from argparse import ArgumentParser
from datetime import date
from typing import Any

from django.core.management.base import BaseCommand, CommandError

from booking.demo import DemoDataError, demo_seed


class Command(BaseCommand):
    help = "Create demo GMFs, clinics, practitioners, citizens, enrolments, slots and appointments."

    def add_arguments(self, parser: ArgumentParser) -> None:
        parser.add_argument("--clinics", type=int, default=40, help="Number of clinic sites (default 40).")
        parser.add_argument(
            "--days", type=int, default=14, help="Days of slots from the start date (default 14)."
        )
        parser.add_argument("--seed", type=int, default=1, help="Random seed: same arguments, same data.")
        parser.add_argument(
            "--start-date",
            type=date.fromisoformat,
            default=None,
            help="First day of slots, YYYY-MM-DD (default: today in America/Toronto).",
        )
        parser.add_argument(
            "--if-empty", action="store_true", help="Do nothing when the database already has clinics."
        )

    def handle(self, *args: Any, **options: Any) -> None:
        if options["clinics"] < 1 or options["days"] < 1:
            raise CommandError("--clinics and --days must be at least 1.")
        try:
            counts = demo_seed(
                clinics=options["clinics"],
                days=options["days"],
                seed=options["seed"],
                start_date=options["start_date"],
                if_empty=options["if_empty"],
                progress=lambda message: (
                    self.stdout.write(f"  {message}") if options["verbosity"] > 1 else None
                ),
            )
        except DemoDataError as exc:
            raise CommandError(str(exc)) from exc
        if counts.get("skipped"):
            self.stdout.write(f"Demo data already present: nothing to do ({counts['seconds']} s).")
            return
        summary = ", ".join(f"{counts[k]} {k}" for k in counts if k != "seconds")
        self.stdout.write(self.style.SUCCESS(f"Demo data: {summary} in {counts['seconds']} s."))
