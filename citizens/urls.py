from django.urls import path

from . import views

app_name = "citizens"

urlpatterns = [
    path("carte/", views.link_card, name="link_card"),
]
