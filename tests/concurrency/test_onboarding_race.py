"""Onboarding under races: two board members approving one request create one clinic; an
invitation link used at once in several tabs makes one membership."""

import pytest
from django.core.exceptions import ValidationError
from django.utils import timezone

from clinics.models import BoardRole, Clinic, ClinicMembership, RegistrationRequest, StaffInvitation
from clinics.services_onboarding import (
    PractitionerEntry,
    invitation_accept,
    invitation_create,
    registration_approve,
    registration_request_submit,
)
from tests.factories import ClinicFactory, FsaFactory, UserFactory

pytestmark = pytest.mark.django_db(transaction=True)


def _board_admin():
    user = UserFactory()
    user.save()
    BoardRole.objects.create(user=user, role=BoardRole.Role.BOARD_ADMIN)
    return user


@pytest.mark.parametrize("round_", range(2))
def test_concurrent_approvals_of_one_request_create_one_clinic(concurrently, round_):
    FsaFactory()
    request = registration_request_submit(
        name="Clinique de la course",
        address="1 rue du Départ",
        city="Montréal",
        postal_code="H2X 1K4",
        phone="514 555-0100",
        time_zone="America/Toronto",
        gmf=None,
        emr_product="",
        admin_name="Ana Roy",
        admin_email="ana@example.org",
        practitioners=[PractitionerEntry("654321", "Ana", "Roy")],
        attested=True,
        language="fr",
    )
    reviewers = [_board_admin() for _ in range(4)]
    calls = [lambda r=r: registration_approve(request_id=request.pk, by=r) for r in reviewers]

    outcomes = concurrently(calls)

    assert len(outcomes.winners) == 1
    assert outcomes.errors_by_type() == {"ValidationError": 3}
    assert Clinic.objects.filter(name="Clinique de la course").count() == 1
    assert StaffInvitation.objects.count() == 1
    assert RegistrationRequest.objects.get().status == RegistrationRequest.Status.APPROVED


def test_one_invitation_used_in_several_tabs_at_once_makes_one_membership(concurrently):
    clinic = ClinicFactory()
    user = UserFactory(email="invitee@example.org")
    user.save()
    _invitation, token = invitation_create(
        clinic=clinic, email=user.email, role="clinic_admin", language="fr", by=None, now=timezone.now()
    )

    outcomes = concurrently([lambda: invitation_accept(token=token, user=user) for _ in range(6)])

    assert len(outcomes.winners) == 1
    assert all(isinstance(o.error, ValidationError) for o in outcomes if not o.ok)
    assert ClinicMembership.objects.filter(user=user, clinic=clinic, is_active=True).count() == 1
