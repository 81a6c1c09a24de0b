"""EMR client secrets: rotation with an overlap period.

``client_secret_rotate`` gives a client a new secret (returned once, stored hashed by
django-oauth-toolkit on the client's ``Application``) and keeps the old one, hashed, as an
``EmrClientRetiredSecret`` until the overlap ends; ``retired_secret_matches`` is what the token
endpoint asks when the current secret did not match (``sync.oauth.EmrClientValidator``). Access
tokens already issued are not touched: they expire on their own (``ACCESS_TOKEN_EXPIRE_SECONDS``).
"""

import datetime as dt

from django.contrib.auth.hashers import check_password, identify_hasher, make_password
from django.db import transaction
from django.utils import timezone
from oauth2_provider.generators import generate_client_secret
from oauth2_provider.models import get_application_model
from oauth2_provider.settings import oauth2_settings

from .models import EmrClient, EmrClientRetiredSecret

DEFAULT_OVERLAP = dt.timedelta(days=7)
MAX_OVERLAP = dt.timedelta(days=90)


def _hashed(secret: str) -> str:
    try:
        identify_hasher(secret)
        return secret
    except ValueError:  # an application created with hash_client_secret=False: hash it now
        return make_password(secret, hasher=oauth2_settings.CLIENT_SECRET_HASHER)


def client_secret_rotate(
    *, emr_client: EmrClient, overlap: dt.timedelta = DEFAULT_OVERLAP, now: dt.datetime | None = None
) -> tuple[str, dt.datetime]:
    """A new secret for ``emr_client``; the current one keeps working until the returned instant
    (``now + overlap``; ``overlap`` 0 refuses it at once). Returns the new secret, in the clear,
    the only time it exists so."""
    now = now or timezone.now()
    if not dt.timedelta(0) <= overlap <= MAX_OVERLAP:
        raise ValueError(f"The overlap lasts 0 to {MAX_OVERLAP.days} days.")
    secret = generate_client_secret()
    Application = get_application_model()  # noqa: N806
    with transaction.atomic():
        # One rotation at a time per client: the old secret kept is the one that was current.
        application = Application.objects.select_for_update().get(pk=emr_client.application_id)
        if overlap:
            EmrClientRetiredSecret.objects.create(
                emr_client=emr_client,
                secret_hash=_hashed(application.client_secret),
                retired_at=now,
                expires_at=now + overlap,
            )
        application.client_secret = secret
        application.hash_client_secret = True  # hashed by DOT's field when saved
        application.save(update_fields=["client_secret", "hash_client_secret", "updated"])
    return secret, now + overlap


def client_secret_overlap_end(*, emr_client: EmrClient, now: dt.datetime | None = None) -> int:
    """End every running overlap of ``emr_client`` now (its old secrets are refused from now on)."""
    now = now or timezone.now()
    return EmrClientRetiredSecret.objects.filter(emr_client=emr_client, expires_at__gt=now).update(
        expires_at=now
    )


def retired_secret_matches(
    *, stored_secret: str, provided_secret: str, now: dt.datetime | None = None
) -> bool:
    """Whether ``provided_secret`` is a retired secret, still in its overlap, of the client whose
    current (hashed) secret is ``stored_secret``."""
    now = now or timezone.now()
    hashes = EmrClientRetiredSecret.objects.filter(
        emr_client__application__client_secret=stored_secret, expires_at__gt=now
    ).values_list("secret_hash", flat=True)
    return any(check_password(provided_secret, secret_hash) for secret_hash in hashes)
