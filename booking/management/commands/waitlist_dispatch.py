"""Run the waitlist dispatcher once (what Celery beat runs every 15 s): for the demo without a beat,
and after an outage longer than the look-back (``--lookback-seconds``). See docs/waitlist.md."""

from argparse import ArgumentParser
from typing import Any

from django.core.management.base import BaseCommand
from django.test.utils import override_settings

from booking.waitlist.offers import waitlist_dispatch


class Command(BaseCommand):
    help = "Offer freed and published slots to waiting citizens now (one dispatcher run)."

    def add_arguments(self, parser: ArgumentParser) -> None:
        parser.add_argument(
            "--lookback-seconds", type=int, help="read the outbox this far back (default: the setting)"
        )

    def handle(self, *args: Any, lookback_seconds: int | None, **options: Any) -> None:
        if lookback_seconds:
            with override_settings(WAITLIST_LOOKBACK_SECONDS=lookback_seconds):
                result = waitlist_dispatch()
        else:
            result = waitlist_dispatch()
        self.stdout.write(
            f"offers made: {len(result.made)}, offers expired: {result.offers_expired}, "
            f"requests ended: {result.requests_ended}, slots checked: {result.slots_checked}"
        )
