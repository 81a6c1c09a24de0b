from django.urls import path

from . import views

app_name = "clinics"

urlpatterns = [
    path("", views.home, name="home"),
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
]
