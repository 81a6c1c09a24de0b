from django.contrib import admin
from django.urls import include, path
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerView
from oauth2_provider.views import TokenView

from booking.reporting import views as reporting_views

from . import health, metrics

urlpatterns = [
    path("healthz", health.healthz, name="healthz"),
    path("readyz", health.readyz, name="readyz"),
    # Prometheus metrics: allow-listed addresses or a bearer token only (config.metrics).
    path("metrics", metrics.metrics_view, name="metrics"),
    path("i18n/", include("django.conf.urls.i18n")),
    path("api/schema/", SpectacularAPIView.as_view(), name="schema"),
    path("api/docs/", SpectacularSwaggerView.as_view(url_name="schema"), name="api-docs"),
    path("api/reporting/v1/", include("booking.reporting.api_urls")),
    path("api/v1/", include("booking.api.urls")),
    path("fhir/r4/", include("sync.urls")),
    # Only the token endpoint: EMR clients use the client-credentials grant, nothing else.
    path("oauth/token/", TokenView.as_view(), name="oauth-token"),
    path("comptes/", include("allauth.urls")),
    path("compte/", include("citizens.urls")),
    path("analyses/", include("booking.reporting.urls")),
    path("donnees-ouvertes/", include("booking.reporting.opendata_urls")),
    path("clinique/<int:clinic_id>/indicateurs/", reporting_views.clinic_figures, name="clinic_figures"),
    path("clinique/", include("clinics.urls")),
    # The clinic's EMR health and agenda conflicts: clinic pages served by sync (ARCHITECTURE.md).
    path("clinique/", include("sync.clinic_urls")),
    # EMR vendors: partner sandbox and certification (docs/vendors.md).
    path("fournisseurs/", include("sync.vendor_urls")),
    path("gestion/", admin.site.urls),
    path("", include("booking.urls")),
]

handler404 = "config.errors.page_not_found"
handler500 = "config.errors.server_error"
