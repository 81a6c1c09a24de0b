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

        # A clinic approved with an EMR product gets its access grant in the approval's transaction.
        from clinics.services_onboarding import clinic_approved_hook_register

        from .grants import emr_grant_on_approval

        clinic_approved_hook_register(emr_grant_on_approval)

        from clinics.audit_chain import Chain, chain_register

        from .models import AuditEvent

        chain_register(
            Chain(
                name="emr",
                label=_("Citizens' records sent to EMR clients"),
                model=AuditEvent,
                fields=EMR_CHAIN_FIELDS,
                lock_key=EMR_CHAIN_LOCK_KEY,
            )
        )


# Part of every link's hash: changing this list breaks every existing chain (a migration relinks).
EMR_CHAIN_FIELDS = ("emr_client_id", "action", "resource_type", "resource_id", "purpose", "at")
EMR_CHAIN_LOCK_KEY = 0x61756465  # "aude" in ASCII: any constant unique within the database
