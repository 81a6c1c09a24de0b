"""The menu links the clinic pages for staff and board members only."""

import pytest
from django.urls import reverse

pytestmark = pytest.mark.django_db


@pytest.mark.parametrize(
    "persona,shown",
    [
        ("admin_a", True),
        ("receptionist_a", True),
        ("board_admin", True),
        ("citizen_user", False),
        ("anonymous", False),
    ],
)
def test_the_clinic_pages_link_is_shown_to_staff_only(client_as, persona, shown):
    page = client_as(persona).get(reverse("booking:home")).content.decode()
    assert (f'href="{reverse("clinics:home")}"' in page) is shown
