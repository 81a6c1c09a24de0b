"""Print the waitlist's fill rate of freed slots over a period (docs/waitlist.md)."""

import json
from argparse import ArgumentParser
from datetime import date, datetime, time, timedelta
from typing import Any

from django.core.management.base import BaseCommand, CommandError
from django.utils import timezone

from booking.selectors import QUEBEC_TZ
from booking.waitlist.selectors import waitlist_fill_rate


def _day(value: str) -> date:
    try:
        return date.fromisoformat(value)
    except ValueError as exc:
        raise CommandError(f"not a date (YYYY-MM-DD): {value}") from exc


class Command(BaseCommand):
    help = "Freed slots, offered, booked via the waitlist and the fill rate, over a period (Quebec days)."

    def add_arguments(self, parser: ArgumentParser) -> None:
        parser.add_argument("--from", dest="start", help="first day, YYYY-MM-DD (default: 7 days ago)")
        parser.add_argument("--to", dest="end", help="last day, YYYY-MM-DD (default: today)")
        parser.add_argument("--clinic", type=int, action="append", help="only this clinic (repeatable)")
        parser.add_argument("--json", action="store_true", help="one JSON object instead of text")

    def handle(
        self, *args: Any, start: str | None, end: str | None, clinic: list[int] | None, **options: Any
    ) -> None:
        today = timezone.localdate(timezone.now(), QUEBEC_TZ)
        first = _day(start) if start else today - timedelta(days=7)
        last = _day(end) if end else today
        if last < first:
            raise CommandError("--to must be on or after --from")
        report = waitlist_fill_rate(
            start=datetime.combine(first, time.min, tzinfo=QUEBEC_TZ),
            end=datetime.combine(last + timedelta(days=1), time.min, tzinfo=QUEBEC_TZ),
            clinic_ids=clinic,
        )
        rate = report.fill_rate
        if options["json"]:
            fields = ("freed", "offered", "booked_via_waitlist", "rebooked_any", "offers", "offers_accepted")
            data: dict[str, Any] = {name: getattr(report, name) for name in fields}
            data.update(
                {
                    "from": first.isoformat(),
                    "to": last.isoformat(),
                    "fill_rate": rate,
                    "offers_declined": report.offers_declined,
                    "offers_expired": report.offers_expired,
                }
            )
            self.stdout.write(json.dumps(data))
            return
        self.stdout.write(f"waitlist, {first:%Y-%m-%d} to {last:%Y-%m-%d}")
        self.stdout.write(f"freed slots: {report.freed}")
        self.stdout.write(f"offered to the waitlist: {report.offered}")
        self.stdout.write(f"booked via the waitlist: {report.booked_via_waitlist}")
        self.stdout.write(f"booked again on any channel: {report.rebooked_any}")
        self.stdout.write(
            "fill rate: " + (f"{rate * 100:.1f} %" if rate is not None else "n/a (nothing freed)")
        )
        self.stdout.write(
            f"offers: {report.offers} (accepted {report.offers_accepted}, declined {report.offers_declined}, "
            f"expired {report.offers_expired})"
        )
