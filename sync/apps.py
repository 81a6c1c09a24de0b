from django.apps import AppConfig
from django.utils.translation import gettext_lazy as _


class SyncConfig(AppConfig):
    name = "sync"
    verbose_name = _("EMR synchronization")

    def ready(self) -> None:
        # The clinic registration form offers the EMR products known here; clinics may not import
        # sync (dependencies flow one way), so sync hands its list over.
        from clinics.selectors_onboarding import emr_product_source_register

        from .selectors import emr_product_names

        emr_product_source_register(emr_product_names)
