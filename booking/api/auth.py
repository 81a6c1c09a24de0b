"""Bearer tokens for the citizen API.

A citizen proves who they are once (``POST /api/v1/identify`` with the health-insurance card) and
gets a short-lived token: a signed, timestamped value carrying only the citizen's internal id (never
the NAM). Nothing is stored server-side, so every web process can check a token alone; the price is
that a token cannot be revoked before it expires, which is why it lives minutes, not days.
"""

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from django.conf import settings
from django.core import signing
from django.utils import timezone
from django.utils.translation import gettext_lazy as _
from drf_spectacular.extensions import OpenApiAuthenticationExtension
from drf_spectacular.plumbing import build_bearer_security_scheme_object
from rest_framework import authentication, exceptions
from rest_framework.request import Request

from booking.services._hot import model_by_pk
from citizens.models import Citizen

if TYPE_CHECKING:
    from drf_spectacular.openapi import AutoSchema

TOKEN_SALT = "booking.api.citizen-token"  # noqa: S105 - a namespace for signing, not a secret


@dataclass(frozen=True)
class CitizenPrincipal:
    """What ``request.user`` is on the citizen API: not a ``User`` (a citizen needs no account).

    DRF and Django only ask a principal whether it is authenticated; views reach the card holder
    through ``.citizen``.
    """

    citizen: Citizen
    is_authenticated = True
    is_anonymous = False
    is_active = True
    is_staff = False

    @property
    def pk(self) -> int:
        return self.citizen.pk

    def __str__(self) -> str:
        return str(self.citizen)


def citizen_token_make(citizen: Citizen) -> tuple[str, datetime]:
    """A bearer token for ``citizen`` and the moment it stops being accepted."""
    token = signing.dumps({"c": citizen.pk}, salt=TOKEN_SALT)
    return token, timezone.now() + timedelta(seconds=settings.CITIZEN_API_TOKEN_SECONDS)


def citizen_token_read(token: str) -> int:
    """The citizen id in a valid token; AuthenticationFailed when it is expired or not ours."""
    try:
        data = signing.loads(token, salt=TOKEN_SALT, max_age=settings.CITIZEN_API_TOKEN_SECONDS)
    except signing.SignatureExpired as exc:
        raise exceptions.AuthenticationFailed(
            _("Your session has expired. Identify again with your health-insurance card."),
            code="token_expired",
        ) from exc
    except signing.BadSignature as exc:
        raise exceptions.AuthenticationFailed(
            _("This access token is not valid."), code="token_invalid"
        ) from exc
    try:
        return int(data["c"])
    except (KeyError, TypeError, ValueError) as exc:
        raise exceptions.AuthenticationFailed(
            _("This access token is not valid."), code="token_invalid"
        ) from exc


class CitizenTokenAuthentication(authentication.BaseAuthentication):
    """``Authorization: Bearer <token>``. No header: anonymous (the view's permission decides)."""

    keyword = b"bearer"

    def authenticate(self, request: Request) -> tuple[CitizenPrincipal, str] | None:
        parts = authentication.get_authorization_header(request).split()
        if not parts or parts[0].lower() != self.keyword:
            return None
        if len(parts) != 2:
            raise exceptions.AuthenticationFailed(
                _("Send the access token as: Authorization: Bearer <token>."), code="token_invalid"
            )
        try:
            token = parts[1].decode("ascii")
        except UnicodeDecodeError as exc:
            raise exceptions.AuthenticationFailed(
                _("This access token is not valid."), code="token_invalid"
            ) from exc
        # A prepared primary-key read: this runs at every citizen API request.
        citizen = model_by_pk(Citizen, citizen_token_read(token))
        if citizen is None:
            raise exceptions.AuthenticationFailed(_("This access token is not valid."), code="token_invalid")
        return CitizenPrincipal(citizen=citizen), token

    def authenticate_header(self, request: Request) -> str:
        # Makes DRF answer 401 (not 403) with WWW-Authenticate when the token is missing or bad.
        return 'Bearer realm="api"'


class CitizenTokenScheme(OpenApiAuthenticationExtension):
    target_class = CitizenTokenAuthentication
    name = "citizenToken"

    def get_security_definition(self, auto_schema: "AutoSchema") -> dict[str, Any]:
        scheme = build_bearer_security_scheme_object(header_name="Authorization", token_prefix="Bearer")  # noqa: S106
        scheme["description"] = str(
            _("The token returned by POST /api/v1/identify; valid for a short time, then identify again.")
        )
        return scheme
