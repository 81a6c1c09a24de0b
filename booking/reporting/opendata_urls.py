"""Open data (SMART Scheduling Links), mounted by config/urls.py at /donnees-ouvertes/."""

from django.urls import path

from . import opendata_views

app_name = "opendata"

urlpatterns = [
    path("$bulk-publish", opendata_views.manifest, name="manifest"),
    path("<slug:name>.ndjson", opendata_views.ndjson_file, name="file"),
]
