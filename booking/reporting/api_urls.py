"""The analysts' API, mounted by config/urls.py at /api/reporting/v1/."""

from django.urls import path

from . import api

app_name = "reporting-api"

urlpatterns = [
    path("figures", api.FiguresApi.as_view(), name="figures"),
    path("rows", api.RowsApi.as_view(), name="rows"),
]
