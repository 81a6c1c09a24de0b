"""``manage.py maintenance on|off|status``: the runtime maintenance flag (config.maintenance)."""

from typing import Any

from django.core.management.base import BaseCommand, CommandParser

from config.maintenance import maintenance_set, maintenance_state


class Command(BaseCommand):
    help = "Pause (on) or resume (off) holds, bookings, reschedules and cancellations; or show the state."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("action", choices=["on", "off", "status"])
        parser.add_argument(
            "--retry-after",
            type=int,
            default=None,
            help="Seconds the APIs tell clients to wait (Retry-After); default MAINTENANCE_RETRY_AFTER.",
        )

    def handle(self, *args: Any, action: str, retry_after: int | None, **options: Any) -> None:
        if action == "on":
            state = maintenance_set(active=True, retry_after=retry_after)
        elif action == "off":
            state = maintenance_set(active=False)
        else:
            state = maintenance_state(fresh=True)
        if state.active:
            since = f" since {state.since}" if state.since else ""
            self.stdout.write(f"maintenance: on ({state.source}{since}), Retry-After {state.retry_after} s")
            if action == "off":
                self.stdout.write(
                    "MAINTENANCE_MODE is set in the environment: unset it and restart to resume."
                )
        else:
            self.stdout.write("maintenance: off")
