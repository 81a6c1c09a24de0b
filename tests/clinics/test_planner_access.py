"""Can / cannot for the agenda-changing pages (templates, blocking, changing the offer).

Decision: clinic administrators and receptionists change the agenda; practitioners read it, like
the staff page's rule for non-administrators, they get "page not found". Other clinics: 404.
Clinics with an EMR: a 403 page that says the EMR is the master.
"""

import pytest
from django.urls import reverse

from booking.models import Slot

pytestmark = pytest.mark.django_db

PAGES = ["clinics:slot_template", "clinics:period_block", "clinics:offer_change"]

ACCESS = {
    "admin_a": 200,
    "receptionist_a": 200,
    "practitioner_a": 404,
    "admin_b": 404,
    "board_admin": 404,
    "citizen_user": 403,
    "anonymous": 302,
}


@pytest.mark.parametrize("page", PAGES)
@pytest.mark.parametrize(("persona", "expected"), ACCESS.items())
def test_who_can_open_the_agenda_changing_pages_of_clinic_a(world, client_as, page, persona, expected):
    response = client_as(persona).get(reverse(page, args=[world.clinic_a.pk]))

    assert response.status_code == expected
    if expected == 200:
        assert "Clinique A" in response.content.decode()


@pytest.mark.parametrize("page", PAGES)
def test_admin_b_changes_clinic_b_but_not_clinic_a(world, client_as, page):
    client = client_as("admin_b")
    assert client.get(reverse(page, args=[world.clinic_b.pk])).status_code == 200
    assert client.post(reverse(page, args=[world.clinic_a.pk]), {"action": "publish"}).status_code == 404


@pytest.mark.parametrize("page", PAGES)
def test_a_practitioner_cannot_post_either(world, client_as, page):
    response = client_as("practitioner_a").post(
        reverse(page, args=[world.clinic_a.pk]), {"action": "publish"}
    )
    assert response.status_code == 404


@pytest.mark.parametrize("page", PAGES)
def test_an_emr_clinic_gets_a_clear_403_page(world, client_as, page):
    world.clinic_a.emr_product = "Myle"
    world.clinic_a.save()
    client = client_as("receptionist_a")

    response = client.get(reverse(page, args=[world.clinic_a.pk]))
    posted = client.post(
        reverse(page, args=[world.clinic_a.pk]),
        {
            "action": "publish",
            "practitioner": str(world.role_a.practitioner_id),
            "weekdays": ["0"],
            "time_from": "08:00",
            "time_to": "09:00",
            "minutes": "15",
            "date_from": "2027-03-22",
            "date_to": "2027-03-22",
            "reasons": ["follow_up"],
            "audience": "public",
            "modality": "in_person",
        },
    )

    assert response.status_code == 403 and posted.status_code == 403
    assert "Myle" in response.content.decode()
    assert not Slot.objects.exists()


def test_the_links_show_for_receptionists_and_not_for_practitioners(world, client_as):
    link = reverse("clinics:slot_template", args=[world.clinic_a.pk])
    assert link in client_as("receptionist_a").get(reverse("clinics:home")).content.decode()
    assert (
        link
        in client_as("receptionist_a")
        .get(reverse("clinics:agenda", args=[world.clinic_a.pk]))
        .content.decode()
    )
    assert link not in client_as("practitioner_a").get(reverse("clinics:home")).content.decode()
    assert (
        link
        not in client_as("practitioner_a")
        .get(reverse("clinics:agenda", args=[world.clinic_a.pk]))
        .content.decode()
    )
