"""Certify (or revoke) an EMR product version from the command line, as the board page does."""

from django.core.management.base import BaseCommand, CommandError
from django.db import transaction
from django.utils import timezone

from sync.models import EmrProduct, EmrProductVersion


class Command(BaseCommand):
    help = "Certify an EMR product version (created if new), or revoke it with --revoke."

    def add_arguments(self, parser):
        parser.add_argument("--product", required=True, help='"Vendor|Product".')
        parser.add_argument("--product-version", required=True)
        parser.add_argument("--note", required=True, help="Why: kept with the decision.")
        parser.add_argument("--revoke", action="store_true")

    def handle(self, *args, product: str, product_version: str, note: str, revoke: bool, **options):
        vendor, sep, name = product.partition("|")
        if (
            not sep
            or not vendor.strip()
            or not name.strip()
            or not note.strip()
            or not product_version.strip()
        ):
            raise CommandError(
                '--product must be "Vendor|Product"; --product-version and --note are required.'
            )
        now = timezone.now()
        status = EmrProductVersion.Status.REVOKED if revoke else EmrProductVersion.Status.CERTIFIED
        with transaction.atomic():
            emr_product, _ = EmrProduct.objects.get_or_create(vendor=vendor.strip(), name=name.strip())
            version, _ = EmrProductVersion.objects.get_or_create(
                product=emr_product, version=product_version.strip()
            )
            EmrProductVersion.objects.filter(pk=version.pk).update(
                status=status, decided_at=now, note=note.strip()
            )
        self.stdout.write(f"{emr_product} {version.version}: {status}")
