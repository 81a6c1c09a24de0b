from django.urls import path

from . import views

app_name = "clinics"

urlpatterns = [
    path("", views.home, name="home"),
    path("registre/", views.audit_log, name="audit_log"),
    path("<int:clinic_id>/agenda/", views.agenda, name="agenda"),
    path("<int:clinic_id>/agenda/feuille/", views.day_sheet, name="day_sheet"),
    path("<int:clinic_id>/plages/modele/", views.slot_template, name="slot_template"),
    path("<int:clinic_id>/plages/bloquer/", views.period_block, name="period_block"),
    path("<int:clinic_id>/plages/modifier/", views.offer_change, name="offer_change"),
    path("<int:clinic_id>/personnel/", views.staff_list, name="staff"),
    path(
        "<int:clinic_id>/personnel/<int:membership_id>/desactiver/",
        views.membership_deactivate,
        name="membership_deactivate",
    ),
    path("<int:clinic_id>/telephone/", views.phone, name="phone"),
    path("<int:clinic_id>/telephone/reserver/", views.phone_book, name="phone_book"),
    path(
        "<int:clinic_id>/rendez-vous/<int:appointment_id>/annuler/",
        views.appointment_cancel,
        name="appointment_cancel",
    ),
    path(
        "<int:clinic_id>/rendez-vous/<int:appointment_id>/deplacer/",
        views.appointment_move,
        name="appointment_move",
    ),
    path(
        "<int:clinic_id>/rendez-vous/<int:appointment_id>/presence/",
        views.appointment_status,
        name="appointment_status",
    ),
]
