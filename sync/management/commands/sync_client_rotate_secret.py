"""Give an EMR client a new secret; the old one keeps working for an overlap period (default 7 days)."""

import datetime as dt

from django.core.management.base import BaseCommand, CommandError

from sync.credentials import DEFAULT_OVERLAP, MAX_OVERLAP, client_secret_overlap_end, client_secret_rotate
from sync.models import EmrClient


class Command(BaseCommand):
    help = "Rotate an EMR client's secret: a new one now, the old one accepted until the overlap ends."

    def add_arguments(self, parser):
        parser.add_argument("--client-id", required=True, help="The client's OAuth client_id.")
        parser.add_argument(
            "--overlap-days",
            type=float,
            default=DEFAULT_OVERLAP.days,
            help=f"Days the old secret keeps working (0 to {MAX_OVERLAP.days}; 0 = refused at once).",
        )
        parser.add_argument(
            "--end-overlap",
            action="store_true",
            help="Do not rotate: end the running overlap now (the old secrets are refused from now on).",
        )

    def handle(self, *args, client_id: str, overlap_days: float, end_overlap: bool, **options):
        client = EmrClient.objects.filter(application__client_id=client_id).first()
        if client is None:
            raise CommandError("No EMR client has this client_id.")
        if end_overlap:
            ended = client_secret_overlap_end(emr_client=client)
            self.stdout.write(f"Overlap ended: {ended} old secret(s) refused from now on.")
            return
        try:
            secret, until = client_secret_rotate(emr_client=client, overlap=dt.timedelta(days=overlap_days))
        except ValueError as exc:
            raise CommandError(str(exc)) from exc
        self.stdout.write(f"client_id={client_id}")
        self.stdout.write(f"client_secret={secret}")
        self.stdout.write(f"old_secret_valid_until={until.isoformat()}")
        self.stdout.write("Keep the new secret now: it is stored hashed and cannot be shown again.")
