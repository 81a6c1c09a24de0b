from django.urls import path

from . import views, views_admin, views_onboarding

app_name = "clinics"

urlpatterns = [
    path("", views.home, name="home"),
    path("inscription/", views_onboarding.registration_new, name="registration_new"),
    path("inscription/envoyee/", views_onboarding.registration_sent, name="registration_sent"),
    path("invitation/<str:token>/", views_onboarding.invitation, name="invitation"),
    path("conseil/demandes/", views_onboarding.registration_queue, name="registration_queue"),
    path(
        "conseil/demandes/<int:request_id>/",
        views_onboarding.registration_review,
        name="registration_review",
    ),
    path("conseil/administrateurs/", views_admin.board_clinic_admins, name="board_admins"),
    path(
        "conseil/administrateurs/<int:membership_id>/deuxieme-facteur/",
        views_admin.board_mfa_reset,
        name="board_mfa_reset",
    ),
    path("registre/", views.audit_log, name="audit_log"),
    path("<int:clinic_id>/agenda/", views.agenda, name="agenda"),
    path("<int:clinic_id>/parametres/", views_admin.clinic_settings, name="settings"),
    path("<int:clinic_id>/plages/nouvelle/", views_admin.slot_new, name="slot_new"),
    path("<int:clinic_id>/agenda/feuille/", views.day_sheet, name="day_sheet"),
    path("<int:clinic_id>/plages/modele/", views.slot_template, name="slot_template"),
    path("<int:clinic_id>/plages/bloquer/", views.period_block, name="period_block"),
    path("<int:clinic_id>/plages/modifier/", views.offer_change, name="offer_change"),
    path("<int:clinic_id>/personnel/", views.staff_list, name="staff"),
    path("<int:clinic_id>/personnel/inviter/", views_admin.staff_invite, name="staff_invite"),
    path(
        "<int:clinic_id>/personnel/invitations/<int:invitation_id>/renvoyer/",
        views_admin.staff_invitation_resend,
        name="staff_invitation_resend",
    ),
    path(
        "<int:clinic_id>/personnel/invitations/<int:invitation_id>/retirer/",
        views_admin.staff_invitation_revoke,
        name="staff_invitation_revoke",
    ),
    path(
        "<int:clinic_id>/personnel/<int:membership_id>/desactiver/",
        views.membership_deactivate,
        name="membership_deactivate",
    ),
    path(
        "<int:clinic_id>/personnel/<int:membership_id>/deuxieme-facteur/",
        views_admin.membership_mfa_reset,
        name="membership_mfa_reset",
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
