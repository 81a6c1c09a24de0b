"""The citizen JSON API, mounted by config/urls.py at /api/v1/."""

from django.urls import path

from . import views

app_name = "api"

urlpatterns = [
    path("identify", views.IdentifyApi.as_view(), name="identify"),
    path("slots", views.SlotSearchApi.as_view(), name="slots"),
    path("holds", views.HoldCreateApi.as_view(), name="holds"),
    path("appointments", views.AppointmentsApi.as_view(), name="appointments"),
    path("dependants", views.DependantsApi.as_view(), name="dependants"),
    path("appointments/<int:appointment_id>", views.AppointmentDetailApi.as_view(), name="appointment"),
    path(
        "appointments/<int:appointment_id>/cancel",
        views.AppointmentCancelApi.as_view(),
        name="appointment-cancel",
    ),
    path(
        "appointments/<int:appointment_id>/reschedule",
        views.AppointmentRescheduleApi.as_view(),
        name="appointment-reschedule",
    ),
]
