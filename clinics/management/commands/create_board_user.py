"""Create (or promote) a board administrator or a provincial analyst: the account, its verified
e-mail address and the active ``BoardRole``. Safe to run again (docs/operations.md).

No password ever appears on the screen or in a log: a new account gets an unusable password and a
one-time link to choose one (allauth's password reset link, valid ``PASSWORD_RESET_TIMEOUT``, dead
once used), or, with ``--set-password``, the password is typed at a prompt. The second factor is
not set up here: it must be enrolled by its owner, on their phone or key. ``clinics.access``
sends a board administrator or an analyst without one to the TOTP set-up page at their first visit
of a board page, and no board page opens without it.
"""

from getpass import getpass
from typing import Any

from allauth.account.forms import default_token_generator
from allauth.account.models import EmailAddress
from allauth.account.utils import user_pk_to_url_str
from django.conf import settings
from django.contrib.auth.password_validation import validate_password
from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.core.validators import validate_email
from django.db import transaction
from django.urls import reverse
from django.utils import timezone

from citizens.models import User
from clinics.access import mfa_enabled
from clinics.audit import staff_action_audit
from clinics.models import BoardRole

ROLES = {"admin": BoardRole.Role.BOARD_ADMIN, "analyst": BoardRole.Role.ANALYST}
# Where each role goes first: a board page behind ``staff_required``, which asks for the TOTP set-up.
FIRST_PAGE = {"admin": "/clinique/", "analyst": "/analyses/"}


class Command(BaseCommand):
    help = (
        "Create or promote a board administrator or analyst: account, verified e-mail, board role. "
        "Prints a one-time link to choose a password (never a password); idempotent."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--email", required=True, help="the person's work e-mail address (their sign-in)")
        parser.add_argument("--role", required=True, choices=sorted(ROLES), help="board role to grant")
        parser.add_argument("--language", choices=["fr", "en"], default="fr", help="for a new account")
        parser.add_argument(
            "--set-password",
            action="store_true",
            help="type the password at a prompt (twice) instead of printing a one-time link",
        )
        parser.add_argument(
            "--reactivate", action="store_true", help="reopen a deactivated account with this e-mail"
        )

    def handle(self, *args: Any, **options: Any) -> None:
        # allauth keeps e-mail addresses in lower case (EmailAddress), and so do we for new accounts.
        email = options["email"].strip().lower()
        try:
            validate_email(email)
        except ValidationError:
            raise CommandError(f"--email: not an e-mail address: {email!r}.") from None
        role_key: str = options["role"]
        password = self._ask_password() if options["set_password"] else None
        now = timezone.now()
        with transaction.atomic():
            user = User.objects.select_for_update().filter(email__iexact=email).first()
            created = user is None
            if user is None:
                user = User.objects.create_user(
                    email=email, password=None, preferred_language=options["language"]
                )
            elif not user.is_active:
                if not options["reactivate"]:
                    raise CommandError(
                        f"The account #{user.pk} with this e-mail is deactivated (offboarded?). "
                        "Nothing changed; run again with --reactivate to reopen it."
                    )
                user.is_active = True
                user.save(update_fields=["is_active"])
            if password is not None:
                try:
                    validate_password(password, user)
                except ValidationError as exc:
                    raise CommandError("Password refused: " + " ".join(exc.messages)) from None
                user.set_password(password)
                user.save(update_fields=["password"])
            # Sign-in requires a verified address (ACCOUNT_EMAIL_VERIFICATION = "mandatory"); the
            # operator vouches for it, and the link below proves it when sent to that inbox.
            EmailAddress.objects.filter(user=user).exclude(email__iexact=email).update(primary=False)
            EmailAddress.objects.update_or_create(
                user=user,
                email__iexact=email,
                defaults={"email": email, "verified": True, "primary": True},
            )
            board_role, role_created = BoardRole.objects.get_or_create(user=user, role=ROLES[role_key])
            granted = role_created or not board_role.is_active
            if not board_role.is_active:
                board_role.is_active = True
                board_role.save(update_fields=["is_active"])
            if granted:
                # The command has no signed-in operator: the row names the account that got the role
                # (purpose "command" tells it apart from grants made on a page).
                staff_action_audit(
                    by=user,
                    clinic=None,
                    action="grant",
                    resource_type="BoardRole",
                    resource_id=board_role.pk,
                    purpose="command",
                    now=now,
                )
        self._report(user, role_key, created=created, granted=granted)

    def _ask_password(self) -> str:
        first = getpass("Password: ")
        if not first:
            raise CommandError("No password typed: nothing changed.")
        if getpass("Password (again): ") != first:
            raise CommandError("The two passwords differ: nothing changed.")
        return first

    def _report(self, user: User, role_key: str, *, created: bool, granted: bool) -> None:
        what = "Created account" if created else "Account"
        state = "role granted" if granted else "already had this role: nothing changed"
        self.stdout.write(f"{what} #{user.pk} ({user.email}): board role {ROLES[role_key].value}, {state}.")
        site = settings.SITE_URL.rstrip("/")
        if user.has_usable_password():
            self.stdout.write(f"Sign-in: {site}{reverse('account_login')} with the account's password.")
        else:
            key = default_token_generator.make_token(user)
            path = reverse(
                "account_reset_password_from_key", kwargs={"uidb36": user_pk_to_url_str(user), "key": key}
            )
            days = max(1, settings.PASSWORD_RESET_TIMEOUT // 86400)
            self.stdout.write(
                "One-time link to choose a password (give it to this person only, over a trusted "
                f"channel; valid {days} day(s), dead once used; run this command again for a new one):"
            )
            self.stdout.write(f"  {site}{path}")
        if mfa_enabled(user):
            self.stdout.write("Second factor: already enrolled.")
        else:
            self.stdout.write(
                "Second factor: not enrolled yet. After signing in, open "
                f"{site}{FIRST_PAGE[role_key]}: the service asks for an authenticator app (TOTP) "
                "before any board page opens."
            )
