"""Number the feed and deliver the webhooks, once or in a loop: the demo's stand-in for Celery beat.

In production the beat runs ``sync.tasks.feed_relay`` every second and ``sync.tasks.webhooks_deliver``
every two; ``make run`` has no beat, so a developer trying webhooks against the demo runs this next
to the server.
"""

import time

from django.core.management.base import BaseCommand

from sync import feed, webhooks


class Command(BaseCommand):
    help = "Relay the change feed and deliver due webhooks (once, or every --every seconds)."

    def add_arguments(self, parser):
        parser.add_argument("--once", action="store_true", help="One pass, then exit.")
        parser.add_argument("--every", type=float, default=2.0, help="Seconds between passes.")

    def handle(self, *args, once: bool, every: float, **options):
        while True:
            feed.feed_relay()
            for delivery in webhooks.webhooks_deliver():
                self.stdout.write(
                    f"Subscription/{delivery.subscription_id}: {delivery.outcome} ({delivery.events} events)"
                )
            if once:
                return
            time.sleep(every)
