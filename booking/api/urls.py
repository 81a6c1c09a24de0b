"""The citizen JSON API, mounted by config/urls.py at /api/v1/."""

from django.urls import path

from . import views, waitlist

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
    path("waitlist", waitlist.WaitlistApi.as_view(), name="waitlist"),
    path(
        "waitlist/<int:request_id>/withdraw", waitlist.WaitlistWithdrawApi.as_view(), name="waitlist-withdraw"
    ),
    path("waitlist/offers/accept", waitlist.WaitlistOfferAcceptApi.as_view(), name="waitlist-offer-accept"),
    path(
        "waitlist/offers/decline", waitlist.WaitlistOfferDeclineApi.as_view(), name="waitlist-offer-decline"
    ),
]
