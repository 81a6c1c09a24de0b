"""Switch the booking flow's challenge (booking.challenge) on or off by hand, or show its state."""

from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand, CommandParser

from booking import challenge


class Command(BaseCommand):
    help = "Switch the self-hosted challenge of the booking flow on or off (docs/scaling.md)."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("state", choices=["on", "off", "status"])
        parser.add_argument("--minutes", type=int, default=0, help="on: for this long (0: until off)")

    def handle(self, *args: Any, state: str, minutes: int, **options: Any) -> None:
        if state != "status":
            challenge.switch(state == "on", seconds=minutes * 60 or None)
        forced = " (forced by CHALLENGE_ENABLED)" if settings.CHALLENGE_ENABLED else ""
        self.stdout.write(f"challenge: {'on' if challenge.active() else 'off'}{forced}")
