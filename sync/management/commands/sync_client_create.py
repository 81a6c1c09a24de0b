"""Create an EMR API client and grant it clinics; prints the client id and secret once."""

from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError
from django.db import transaction
from oauth2_provider.generators import generate_client_secret
from oauth2_provider.models import get_application_model

from clinics.models import Clinic
from sync.models import EmrClient, EmrProduct, EmrProductVersion
from sync.vendors import grant_create


class Command(BaseCommand):
    help = "Create an EMR client (OAuth 2.0 client credentials) for clinics that use its product."

    def add_arguments(self, parser):
        parser.add_argument(
            "--product", required=True, help='"Vendor|Product", the product as clinics name it.'
        )
        parser.add_argument("--clinic", type=int, action="append", default=[], help="Clinic id (repeat).")
        parser.add_argument(
            "--product-version",
            default="",
            help="The product version this installation runs; production clinics need it certified.",
        )
        parser.add_argument("--name", default="", help="A label for this client.")
        parser.add_argument(
            "--scope", action="append", default=[], help="Allowed scope (repeat); default: every scope."
        )

    def handle(
        self,
        *args,
        product: str,
        clinic: list[int],
        name: str,
        scope: list[str],
        product_version: str,
        **options,
    ):
        vendor, sep, product_name = product.partition("|")
        if not sep or not vendor.strip() or not product_name.strip():
            raise CommandError('--product must be "Vendor|Product".')
        scopes = scope or list(settings.SYNC_SCOPES)
        unknown = set(scopes) - set(settings.SYNC_SCOPES)
        if unknown:
            raise CommandError(f"Unknown scopes: {', '.join(sorted(unknown))}.")
        clinics = list(Clinic.objects.filter(pk__in=clinic))
        missing = set(clinic) - {c.pk for c in clinics}
        if missing:
            raise CommandError(f"No clinic with id {', '.join(map(str, sorted(missing)))}.")
        for c in clinics:
            if c.emr_product != product_name.strip():
                raise CommandError(
                    f"Clinic {c.pk} uses {c.emr_product or 'no EMR'!r}, not {product_name.strip()!r}."
                )

        secret = generate_client_secret()
        with transaction.atomic():
            emr_product, _ = EmrProduct.objects.get_or_create(
                vendor=vendor.strip(), name=product_name.strip()
            )
            version = None
            if product_version.strip():
                version, _ = EmrProductVersion.objects.get_or_create(
                    product=emr_product, version=product_version.strip()
                )
            # Only certified versions reach production clinics (docs/vendors.md).
            if clinics and (version is None or version.status != EmrProductVersion.Status.CERTIFIED):
                raise CommandError(
                    "Production clinics need a certified --product-version "
                    f"({emr_product} {product_version or '(none given)'} is not certified)."
                )
            Application = get_application_model()  # noqa: N806
            label = name or f"{emr_product} client"
            application = Application.objects.create(
                name=label,
                client_type=Application.CLIENT_CONFIDENTIAL,
                authorization_grant_type=Application.GRANT_CLIENT_CREDENTIALS,
                client_secret=secret,  # hashed when saved (hash_client_secret defaults to True)
                hash_client_secret=True,
            )
            EmrClient.objects.create(
                product=emr_product,
                application=application,
                name=label,
                scopes=" ".join(scopes),
                product_version=version,
            )
            for c in clinics:
                try:
                    grant_create(product=emr_product, clinic=c)
                except ValidationError as exc:
                    raise CommandError(f"Clinic {c.pk}: {' '.join(exc.messages)}") from exc
        self.stdout.write(f"client_id={application.client_id}")
        self.stdout.write(f"client_secret={secret}")
        self.stdout.write("Keep the secret now: it is stored hashed and cannot be shown again.")
