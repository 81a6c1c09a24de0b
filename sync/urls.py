"""The FHIR R4 API, mounted by config/urls.py at /fhir/r4/."""

from django.urls import path, re_path

from . import (
    bundle_views,
    feed_views,
    openapi,
    patient_views,
    snapshot_views,
    task_views,
    terminology_views,
    views,
    webhook_views,
)
from .fhir.search import RESOURCES

app_name = "sync"

urlpatterns = [
    # Transaction and batch Bundles of Slot writes (POST only).
    path("", bundle_views.BundleView.as_view(), name="base"),
    # The change feed, before the resource patterns (``_history`` is not an id).
    path("$feed", feed_views.FeedView.as_view(), name="feed"),
    path("Appointment/_history", feed_views.AppointmentHistoryView.as_view(), name="appointment-history"),
    # Webhook subscriptions (not a searchable resource of the clinics: its own views).
    path("Subscription", webhook_views.SubscriptionTypeView.as_view(), name="subscriptions"),
    re_path(
        r"^Subscription/(?P<pk>[0-9]{1,18})/\$rotate-secret$",
        webhook_views.SubscriptionRotateSecretView.as_view(),
        name="subscription-rotate-secret",
    ),
    re_path(
        r"^Subscription/(?P<pk>[A-Za-z0-9\-.]{1,64})$",
        webhook_views.SubscriptionInstanceView.as_view(),
        name="subscription",
    ),
    # Agenda snapshots, before the resource patterns (an operation on a Schedule instance).
    re_path(
        r"^Schedule/(?P<pk>[A-Za-z0-9\-.]{1,64})/\$snapshot$",
        snapshot_views.SnapshotView.as_view(),
        name="snapshot",
    ),
    re_path(
        r"^Schedule/(?P<pk>[A-Za-z0-9\-.]{1,64})/\$snapshot-status/(?P<snapshot>[0-9]{1,18})$",
        snapshot_views.SnapshotStatusView.as_view(),
        name="snapshot-status",
    ),
    # Agenda conflicts (Task): the EMR's decision, before the resource patterns.
    re_path(
        r"^Task/(?P<pk>[0-9]{1,18})/\$resolve$",
        task_views.TaskResolveView.as_view(),
        name="task-resolve",
    ),
    # Patient lookup by NAM: POST only, the NAM in the body (sync.patient_views).
    path("Patient", patient_views.PatientTypeView.as_view(), name="patients"),
    path("Patient/_search", patient_views.PatientSearchView.as_view(), name="patient-search"),
    path("metadata", views.MetadataView.as_view(), name="metadata"),
    # Our vocabularies, public and read-only (sync.terminology_views).
    path("CodeSystem", terminology_views.TerminologyView.as_view(), name="codesystems"),
    re_path(r"^CodeSystem/(?P<pk>[A-Za-z0-9\-.]{1,64})$", terminology_views.TerminologyView.as_view()),
    path("ValueSet", terminology_views.ValueSetView.as_view(), name="valuesets"),
    re_path(r"^ValueSet/(?P<pk>[A-Za-z0-9\-.]{1,64})$", terminology_views.ValueSetView.as_view()),
    # An OpenAPI description of the REST interactions, for HTTP tooling (sync.openapi).
    path("openapi.json", openapi.OpenApiView.as_view(), name="openapi"),
    path(
        ".well-known/smart-configuration", views.SmartConfigurationView.as_view(), name="smart-configuration"
    ),
]
for resource in RESOURCES.values():
    urlpatterns += [
        path(
            f"{resource.name}",
            views.TYPE_VIEWS.get(resource.name, views.SearchView).as_view(resource=resource),
            name=f"search-{resource.name}",
        ),
        path(f"{resource.name}/_search", views.SearchPostView.as_view(resource=resource)),
        re_path(
            rf"^{resource.name}/(?P<pk>[A-Za-z0-9\-.]{{1,64}})$",
            views.INSTANCE_VIEWS.get(resource.name, views.ReadView).as_view(resource=resource),
        ),
    ]
# [\s\S], not ".": a newline in the path (%0A) must land here too, not in the site's non-FHIR 404 page.
urlpatterns.append(re_path(r"^[\s\S]*$", views.UnknownView.as_view()))
