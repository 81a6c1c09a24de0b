"""Django's admin (/gestion/) with the board's gate in front: see ``clinics.admin_site``."""

from django.contrib.admin.apps import AdminConfig


class BoardAdminConfig(AdminConfig):
    default_site = "clinics.admin_site.BoardAdminSite"
