"""Run the reporting aggregation and the open-data publication now, as beat would.

For the demo (no beat runs there) and for operators after a bulk load: ``--full`` recomputes every
week from the raw rows.
"""

import time
from typing import Any

from django.core.management.base import BaseCommand, CommandParser

from booking.reporting.aggregate import reporting_aggregate
from booking.reporting.opendata import opendata_publish


class Command(BaseCommand):
    help = "Compute the reporting summary tables and publish the open-data files now."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--full", action="store_true", help="Recompute every week from the raw rows.")

    def handle(self, *args: Any, **options: Any) -> None:
        started = time.monotonic()
        result = reporting_aggregate(full=options["full"])
        self.stdout.write(f"reporting: {result} in {time.monotonic() - started:.1f} s")
        started = time.monotonic()
        published = opendata_publish()
        self.stdout.write(f"open data: {published} in {time.monotonic() - started:.1f} s")
