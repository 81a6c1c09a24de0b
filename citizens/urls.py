from django.urls import path

from . import views

app_name = "citizens"

urlpatterns = [
    path("carte/", views.link_card, name="link_card"),
    path("personnes/", views.dependants, name="dependants"),
    path("personnes/<int:dependant_id>/retirer/", views.dependant_remove_page, name="dependant_remove"),
]
