"""The operations pieces as a Django app (no models): metrics and log hooks, maintenance mode, and the
management commands of ``config/management/commands`` (docs/operations.md)."""

from django.apps import AppConfig


class OperationsConfig(AppConfig):
    name = "config"
    label = "operations"
    verbose_name = "Operations"

    def ready(self) -> None:
        from . import observability, worker_metrics

        observability.connect()
        worker_metrics.connect()
