"""Can / cannot for every clinic page: clinic A's staff see clinic A only (invariant 7)."""

import pytest
from django.urls import reverse

from clinics.models import ClinicMembership, StaffAuditEvent

pytestmark = pytest.mark.django_db

AGENDA_PAGES = ["clinics:agenda", "clinics:day_sheet"]

# persona -> expected status on clinic A's agenda and day sheet
AGENDA_ACCESS = {
    "admin_a": 200,
    "receptionist_a": 200,
    "practitioner_a": 200,
    "admin_b": 404,
    "board_admin": 404,
    "citizen_user": 403,
    "anonymous": 302,
}
STAFF_PAGE_ACCESS = {
    "admin_a": 200,
    "receptionist_a": 404,
    "practitioner_a": 404,
    "admin_b": 404,
    "board_admin": 404,
    "citizen_user": 403,
    "anonymous": 302,
}


@pytest.mark.parametrize("page", AGENDA_PAGES)
@pytest.mark.parametrize(("persona", "expected"), AGENDA_ACCESS.items())
def test_who_can_read_clinic_a_agenda_pages(world, client_as, page, persona, expected):
    response = client_as(persona).get(reverse(page, args=[world.clinic_a.pk]))

    assert response.status_code == expected
    if expected == 200:
        assert "Clinique A" in response.content.decode()


@pytest.mark.parametrize(("persona", "expected"), STAFF_PAGE_ACCESS.items())
def test_who_can_see_clinic_a_staff_list(world, client_as, persona, expected):
    response = client_as(persona).get(reverse("clinics:staff", args=[world.clinic_a.pk]))

    assert response.status_code == expected
    if expected == 200:
        assert world.receptionist_a.email in response.content.decode()
        assert world.admin_b.email not in response.content.decode()


def test_admin_b_can_read_clinic_b_but_not_clinic_a(world, client_as):
    client = client_as("admin_b")

    assert client.get(reverse("clinics:agenda", args=[world.clinic_b.pk])).status_code == 200
    assert client.get(reverse("clinics:staff", args=[world.clinic_b.pk])).status_code == 200
    assert client.get(reverse("clinics:agenda", args=[world.clinic_a.pk])).status_code == 404
    assert client.get(reverse("clinics:agenda", args=[999_999])).status_code == 404


def test_the_staff_home_lists_only_my_clinics(world, client_as):
    home = client_as("receptionist_a").get(reverse("clinics:home")).content.decode()

    assert reverse("clinics:agenda", args=[world.clinic_a.pk]) in home
    assert reverse("clinics:agenda", args=[world.clinic_b.pk]) not in home
    assert reverse("clinics:staff", args=[world.clinic_a.pk]) not in home  # not an administrator

    admin_home = client_as("admin_a").get(reverse("clinics:home")).content.decode()
    assert reverse("clinics:staff", args=[world.clinic_a.pk]) in admin_home


@pytest.mark.parametrize(
    ("persona", "expected"),
    [
        ("admin_b", 404),
        ("receptionist_a", 404),
        ("practitioner_a", 404),
        ("citizen_user", 403),
        ("anonymous", 302),
    ],
)
def test_who_cannot_deactivate_clinic_a_staff(world, client_as, persona, expected):
    target = world.membership(world.receptionist_a if persona != "receptionist_a" else world.practitioner_a)
    url = reverse("clinics:membership_deactivate", args=[world.clinic_a.pk, target.pk])
    client = client_as(persona)

    assert client.get(url).status_code == expected
    assert client.post(url).status_code == expected
    target.refresh_from_db()
    assert target.is_active


def test_admin_b_cannot_reach_clinic_a_staff_through_clinic_b(world, client_as):
    target = world.membership(world.receptionist_a)
    url = reverse("clinics:membership_deactivate", args=[world.clinic_b.pk, target.pk])

    assert client_as("admin_b").post(url).status_code == 404
    target.refresh_from_db()
    assert target.is_active


def test_admin_a_can_deactivate_clinic_a_staff(world, client_as):
    target = world.membership(world.receptionist_a)
    url = reverse("clinics:membership_deactivate", args=[world.clinic_a.pk, target.pk])
    client = client_as("admin_a")

    assert client.get(url).status_code == 200
    response = client.post(url, follow=True)

    assert response.redirect_chain[-1][0] == reverse("clinics:staff", args=[world.clinic_a.pk])
    target.refresh_from_db()
    assert not target.is_active
    assert target.deactivated_at is not None


def test_an_admin_cannot_deactivate_their_own_access(world, client_as):
    own = world.membership(world.admin_a)
    client = client_as("admin_a")

    response = client.post(
        reverse("clinics:membership_deactivate", args=[world.clinic_a.pk, own.pk]), follow=True
    )

    assert response.status_code == 200
    own.refresh_from_db()
    assert own.is_active
    assert client.get(reverse("clinics:home")).status_code == 200


def test_pages_refused_write_no_audit_row(world, client_as):
    for persona in ("admin_b", "board_admin", "citizen_user", "anonymous"):
        client_as(persona).get(reverse("clinics:agenda", args=[world.clinic_a.pk]))

    assert not StaffAuditEvent.objects.exists()


def test_memberships_are_unique_per_person_and_clinic(world):
    from django.db import IntegrityError, transaction

    with pytest.raises(IntegrityError), transaction.atomic():
        ClinicMembership.objects.create(
            user=world.receptionist_a, clinic=world.clinic_a, role=ClinicMembership.Role.CLINIC_ADMIN
        )
    with pytest.raises(IntegrityError), transaction.atomic():
        ClinicMembership.objects.create(
            user=world.receptionist_a,
            clinic=world.clinic_b,
            role=ClinicMembership.Role.RECEPTIONIST,
            practitioner=world.role_b.practitioner,
        )
