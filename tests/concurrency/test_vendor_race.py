"""Vendor sandboxes under races: board members approving one request at once open one sandbox; two
tabs asking for the first sandbox secret at once both get a working one (the vendor's row lock makes
the second a rotation with an overlap, so the secret shown in the first tab is not lost)."""

import base64

import pytest
from django.test import Client

from clinics.models import BoardRole, Clinic
from sync import vendors
from sync.models import EmrClient, EmrVendor
from tests.factories import UserFactory

pytestmark = pytest.mark.django_db(transaction=True)


def _account(board: bool = False):
    user = UserFactory()
    user.save()
    if board:
        BoardRole.objects.create(user=user, role=BoardRole.Role.BOARD_ADMIN)
    return user


def _pending() -> EmrVendor:
    return vendors.vendor_register(
        user=_account(),
        company="Course inc.",
        product_name="CourseDME",
        technical_email="t@x.example",
        language="fr",
    )


def test_concurrent_approvals_of_one_vendor_open_one_sandbox(concurrently):
    vendor = _pending()
    calls = [
        lambda r=r: vendors.vendor_approve(vendor_id=vendor.pk, by=r)
        for r in [_account(True) for _ in range(4)]
    ]

    outcomes = concurrently(calls)

    assert len(outcomes.winners) == 1
    assert outcomes.errors_by_type() == {"ValidationError": 3}
    assert EmrClient.objects.filter(is_sandbox=True).count() == 1
    assert Clinic.objects.filter(is_sandbox=True).count() == vendors.SANDBOX_CLINICS
    assert EmrVendor.objects.get().status == EmrVendor.Status.APPROVED


def test_two_tabs_making_a_secret_at_once_leave_one_current_secret(concurrently):
    vendor = vendors.vendor_approve(vendor_id=_pending().pk, by=_account(True))

    outcomes = concurrently([lambda: vendors.vendor_credentials_issue(vendor=vendor) for _ in range(2)])

    assert len(outcomes.winners) == 2  # serialized by the vendor's row lock, both answered
    working = []
    for outcome in outcomes:
        client_id, secret, _until = outcome.value
        raw = base64.b64encode(f"{client_id}:{secret}".encode()).decode()
        status = (
            Client()
            .post("/oauth/token/", {"grant_type": "client_credentials"}, HTTP_AUTHORIZATION=f"Basic {raw}")
            .status_code
        )
        working.append(status == 200)
    # The second rotation kept the first secret for the overlap: both work, none was lost.
    assert working == [True, True]
    assert vendor.sandbox_client.retired_secrets.count() == 1
