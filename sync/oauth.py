"""django-oauth-toolkit hooks: only active EMR clients get tokens, and only their own scopes."""

from oauth2_provider.oauth2_backends import OAuthLibCore
from oauth2_provider.oauth2_validators import OAuth2Validator
from oauth2_provider.scopes import SettingsScopes

from .credentials import retired_secret_matches
from .models import EmrClient


def _emr_client(application) -> EmrClient | None:
    if application is None:
        return None
    try:
        client = application.emr_client
    except EmrClient.DoesNotExist:
        return None
    return client if client.is_active else None


class EmrClientScopes(SettingsScopes):
    """A client may ask for the scopes on its EmrClient row; asking for none gives it all of them."""

    def get_available_scopes(self, application=None, request=None, *args, **kwargs):
        client = _emr_client(application)
        return client.scope_list if client else []

    def get_default_scopes(self, application=None, request=None, *args, **kwargs):
        return self.get_available_scopes(application, request, *args, **kwargs)


class EmrClientValidator(OAuth2Validator):
    def _check_secret(self, provided_secret, stored_secret):
        # The current secret, or a previous one while its rotation's overlap lasts (sync.credentials).
        if super()._check_secret(provided_secret, stored_secret):
            return True
        return retired_secret_matches(stored_secret=stored_secret, provided_secret=provided_secret)

    def authenticate_client(self, request, *args, **kwargs):
        # A right secret is not enough: the application must be an active EMR client.
        if not super().authenticate_client(request, *args, **kwargs):
            return False
        return _emr_client(request.client) is not None


class FormBodyOAuthLibCore(OAuthLibCore):
    """django-oauth-toolkit's backend, reading a request's body only when it is a form.

    The token endpoint's parameters come as a form; a FHIR resource's JSON body never carries OAuth
    parameters. Read here, during authentication, it was parsed before the view's own parser and
    under Django's DATA_UPLOAD_MAX_MEMORY_SIZE (2.5 MB) instead of the endpoint's limit: a
    10,000-slot agenda snapshot (about 4 MB, within its 16 MB) was refused with 413.
    """

    def extract_body(self, request):
        content_type = request.META.get("CONTENT_TYPE", "")
        if not content_type.startswith(("application/x-www-form-urlencoded", "multipart/form-data")):
            return ""
        return super().extract_body(request)
