"""The vendor portal and the board's vendor pages, mounted by config/urls.py at /fournisseurs/."""

from django.urls import path

from . import vendor_views as views

app_name = "vendors"

urlpatterns = [
    path("", views.vendor_home, name="home"),
    path("inscription/", views.vendor_register, name="register"),
    path("identifiants/", views.vendor_credentials, name="credentials"),
    path("bac-a-sable/reserver/", views.sandbox_take, name="sandbox_take"),
    path("versions/", views.version_new, name="version_new"),
    path("versions/<int:version_id>/certification/", views.version_request, name="version_request"),
    path("conseil/", views.board_queue, name="board_queue"),
    path("conseil/<int:vendor_id>/", views.board_review, name="board_review"),
    path("conseil/versions/", views.board_versions, name="board_versions"),
    path("conseil/versions/<int:version_id>/", views.board_version, name="board_version"),
]
