"""django-oauth-toolkit hooks: only active EMR clients get tokens, and only their own scopes."""

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
