"""Add or remove scopes of existing EMR clients (e.g. ``system/Task.*`` for clients made before them).

Scope names are checked against ``settings.SYNC_SCOPES``; the change is idempotent (a scope already
there is not added twice, nothing is written when nothing changes), printed, and recorded in the
staff audit chain (``clinics.audit_chain``) under the operator named by ``--by``. Removing a scope
also revokes the client's current access tokens, so that the removal takes effect at once; adding
one does not (the client asks for a new token to get it).
"""

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError
from django.db import transaction
from django.utils import timezone
from oauth2_provider.models import get_access_token_model

from clinics.services_onboarding import staff_action_audit
from sync.models import EmrClient

AUDIT_ACTION = "scopes"
AUDIT_PURPOSE = "emr-client"


class Command(BaseCommand):
    help = "Add or remove scopes of EMR clients: --client CLIENT_ID (repeatable) or --all."

    def add_arguments(self, parser):
        which = parser.add_mutually_exclusive_group(required=True)
        which.add_argument("--client", action="append", default=[], help="An OAuth client_id (repeat).")
        which.add_argument("--all", action="store_true", help="Every EMR client, sandbox ones included.")
        parser.add_argument("--add", nargs="+", default=[], metavar="SCOPE", help="Scopes to add.")
        parser.add_argument("--remove", nargs="+", default=[], metavar="SCOPE", help="Scopes to remove.")
        parser.add_argument("--dry-run", action="store_true", help="Print what would change; write nothing.")
        parser.add_argument(
            "--by", default="", help="The e-mail of the staff account making the change (the audit's who)."
        )

    def handle(self, *args, client, all, add, remove, dry_run, by, **options):  # noqa: A002 - --all
        known = list(settings.SYNC_SCOPES)
        unknown = sorted((set(add) | set(remove)) - set(known))
        if unknown:
            raise CommandError(f"Unknown scopes: {', '.join(unknown)}. Known scopes: {', '.join(known)}.")
        if not add and not remove:
            raise CommandError("Give --add and/or --remove.")
        both = sorted(set(add) & set(remove))
        if both:
            raise CommandError(f"Both added and removed: {', '.join(both)}.")
        operator = None
        if not dry_run:
            operator = get_user_model().objects.filter(email__iexact=by.strip(), is_active=True).first()
            if not by.strip() or operator is None or not operator.is_staff:
                raise CommandError(
                    "--by must be the e-mail of an active staff account (who made the change)."
                )

        clients = EmrClient.objects.select_related("application").order_by("pk")
        if not all:
            clients = clients.filter(application__client_id__in=client)
            missing = set(client) - set(clients.values_list("application__client_id", flat=True))
            if missing:
                raise CommandError(f"No EMR client has the client_id {', '.join(sorted(missing))}.")

        changed = 0
        now = timezone.now()
        with transaction.atomic():
            for row in clients.select_for_update(of=("self",)):
                before = row.scopes.split()
                after = [s for s in known if (s in before or s in add) and s not in remove]
                after += [
                    s for s in before if s not in known and s not in after
                ]  # never drop unknown ones silently
                added = [s for s in after if s not in before]
                removed = [s for s in before if s not in after]
                client_id = row.application.client_id
                if not added and not removed:
                    self.stdout.write(f"client_id={client_id} unchanged")
                    continue
                changed += 1
                prefix = "would change" if dry_run else "changed"
                self.stdout.write(
                    f"client_id={client_id} {prefix}: added {' '.join(added) or '-'}; "
                    f"removed {' '.join(removed) or '-'}; now {' '.join(after)}"
                )
                if dry_run:
                    continue
                EmrClient.objects.filter(pk=row.pk).update(scopes=" ".join(after))
                if removed:  # a removal takes effect at once: the tokens carrying it are revoked
                    get_access_token_model().objects.filter(application=row.application).delete()
                assert operator is not None
                staff_action_audit(
                    by=operator,
                    clinic=None,
                    action=AUDIT_ACTION,
                    resource_type="EmrClient",
                    resource_id=row.pk,
                    purpose=AUDIT_PURPOSE,
                    now=now,
                )
        done = "would change" if dry_run else "changed"
        self.stdout.write(f"{changed} client(s) {done}.")
