"""The clinic pages about the clinic's EMR, mounted by config/urls.py under the clinic pages' prefix."""

from django.urls import path

from . import clinic_views

app_name = "sync_clinic"

urlpatterns = [
    path("<int:clinic_id>/dme/", clinic_views.emr_overview, name="emr"),
    path("<int:clinic_id>/dme/acces/", clinic_views.emr_access, name="emr_access"),
    path("<int:clinic_id>/dme/conflits/<int:conflict_id>/", clinic_views.conflict_detail, name="conflict"),
]
