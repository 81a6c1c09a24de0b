from django.urls import path

from . import challenge, helpdesk_views, views, views_privacy, waitingroom
from .waitlist import views as waitlist_views

app_name = "booking"

urlpatterns = [
    path("", views.home, name="home"),
    path("identification/", views.identify, name="identify"),
    path("fin-de-session/", views.sign_out, name="sign_out"),
    path("recherche/", views.search, name="search"),
    # The virtual waiting room's queue page (booking.waitingroom; off unless WAITING_ROOM_ENABLED).
    path("file-attente/", waitingroom.waiting_room, name="waiting_room"),
    path("verification/", challenge.challenge_view, name="challenge"),
    path("plages/<int:slot_id>/retenir/", views.hold, name="hold"),
    path("plages/<int:slot_id>/confirmer/", views.confirm, name="confirm"),
    path("rendez-vous/", views.mine, name="mine"),
    path("rendez-vous/retrouver/", views.find, name="find"),
    path("rendez-vous/<int:appointment_id>/", views.appointment_detail, name="appointment"),
    path("rendez-vous/<int:appointment_id>/calendrier.ics", views.appointment_calendar, name="calendar"),
    path("rendez-vous/<int:appointment_id>/annuler/", views.cancel, name="cancel"),
    path("rendez-vous/<int:appointment_id>/changer/", views.reschedule, name="reschedule"),
    path("annulation/<str:token>/", views.cancel_link, name="cancel_link"),
    path("liste-attente/demande/", waitlist_views.waitlist_new, name="waitlist_new"),
    path(
        "liste-attente/<int:request_id>/retirer/", waitlist_views.waitlist_withdraw, name="waitlist_withdraw"
    ),
    path("offre/<str:token>/", waitlist_views.waitlist_offer, name="waitlist_offer"),
    # Law 25 (docs/privacy.md): the citizen's own data, and closing the account.
    path("mes-donnees/", views_privacy.my_data, name="my_data"),
    path("fermer-mon-compte/", views_privacy.close_account, name="close_account"),
    # The board's help desk (booking.helpdesk): board administrators, with a recorded reason.
    path("soutien/", helpdesk_views.lookup, name="helpdesk"),
]
