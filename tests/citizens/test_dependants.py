"""Dependants: an account holder adds a child or a person in their care by verifying that person's
card, states the relationship, lists and removes them; nobody reaches someone else's list."""

from datetime import date, timedelta

import pytest
from django.urls import reverse
from django.utils import timezone

from citizens.models import Citizen, Dependant
from citizens.selectors import dependant_get_for_guardian, dependants_of, patient_ids_for
from citizens.services import DependantRefused, IdentificationFailed, dependant_add, dependant_remove
from config.ratelimit import RateLimited
from tests.conftest import identify_payload
from tests.factories import CitizenFactory, UserFactory

pytestmark = pytest.mark.django_db


def child(**fields):
    fields.setdefault("first_name", "Léa")
    fields.setdefault("birth_date", timezone.localdate() - timedelta(days=365 * 6))
    return CitizenFactory(**fields)


def holder():
    user = UserFactory()
    return CitizenFactory(account=user), user


def add(guardian, person, relationship=Dependant.Relationship.PARENT, **overrides):
    details = identify_payload(person, **overrides)
    details["birth_date"] = date.fromisoformat(details["birth_date"])
    return dependant_add(
        guardian=guardian, user=guardian.account, relationship=relationship, ip="203.0.113.5", **details
    )


# --- services ----------------------------------------------------------------------------------------


def test_a_parent_adds_a_child_whose_card_matches():
    guardian, _ = holder()
    kid = child()
    link = add(guardian, kid)
    assert link.citizen == kid and link.guardian == guardian
    assert link.relationship == "parent" and link.added_by == guardian.account
    assert dependants_of(guardian=guardian) == [link]
    assert patient_ids_for(citizen=guardian) == [guardian.pk, kid.pk]


def test_a_wrong_detail_gives_the_same_generic_failure_and_adds_nobody():
    guardian, _ = holder()
    kid = child()
    for wrong in ({"card_sequence": "77"}, {"first_name": "Zoé"}, {"birth_date": "2001-01-01"}):
        with pytest.raises(IdentificationFailed):
            add(guardian, kid, **wrong)
    assert not Dependant.objects.exists()


def test_adding_uses_the_identification_rate_limits(settings):
    settings.RATE_LIMITS = {**settings.RATE_LIMITS, "identify_nam": "2/600"}
    guardian, _ = holder()
    kid = child()
    for _ in range(2):
        with pytest.raises(IdentificationFailed):
            add(guardian, kid, card_sequence="77")
    with pytest.raises(RateLimited):
        add(guardian, kid)  # even the right details wait for the window


def test_a_parent_or_tutor_acts_for_a_minor_only_a_mandatary_for_an_adult():
    guardian, _ = holder()
    adult = CitizenFactory(first_name="Gérard", sex="M", birth_date=date(1940, 5, 2))
    for relationship in ("parent", "guardian"):
        with pytest.raises(DependantRefused) as refused:
            add(guardian, adult, relationship=relationship)
        assert refused.value.code == "adult"
    assert add(guardian, adult, relationship="mandatary").relationship == "mandatary"


def test_a_holder_cannot_add_themselves_twice_the_same_person_or_too_many(settings):
    guardian, _ = holder()
    with pytest.raises(DependantRefused) as refused:
        add(guardian, guardian, relationship="caregiver")
    assert refused.value.code == "self"
    kid = child()
    add(guardian, kid)
    with pytest.raises(DependantRefused) as refused:
        add(guardian, kid)
    assert refused.value.code == "already"
    settings.DEPENDANTS_MAX = 2
    add(guardian, child(first_name="Noé", sex="M"))
    with pytest.raises(DependantRefused) as refused:
        add(guardian, child(first_name="Mia"))
    assert refused.value.code == "too_many"


def test_two_parents_may_each_add_the_same_child():
    kid = child()
    first, _ = holder()
    second, _ = holder()
    add(first, kid)
    add(second, kid)
    assert Dependant.objects.filter(citizen=kid).count() == 2


def test_only_the_holder_removes_their_own_link():
    guardian, _ = holder()
    stranger, _ = holder()
    link = add(guardian, child())
    assert dependant_get_for_guardian(guardian=stranger, dependant_id=link.pk) is None
    assert dependant_remove(guardian=stranger, dependant_id=link.pk) is False
    assert dependant_remove(guardian=guardian, dependant_id=link.pk) is True
    assert dependants_of(guardian=guardian) == []
    assert Citizen.objects.filter(pk=link.citizen_id).exists()  # the person stays, only the link goes


# --- pages -------------------------------------------------------------------------------------------


def page_payload(person, **overrides):
    return {**identify_payload(person), "relationship": "parent", "attestation": "on", **overrides}


def test_the_page_needs_an_account_with_a_linked_card(client):
    assert client.get(reverse("citizens:dependants"))["Location"].startswith(reverse("account_login"))
    client.force_login(UserFactory())
    assert client.get(reverse("citizens:dependants"))["Location"] == reverse("citizens:link_card")


def test_a_holder_adds_lists_and_removes_a_child_in_french(client):
    guardian, user = holder()
    kid = child()
    client.force_login(user)
    page = client.get(reverse("citizens:dependants"))
    assert page.status_code == 200
    html = page.content.decode()
    assert '<html lang="fr">' in html and "Personnes à ma charge" in html
    response = client.post(reverse("citizens:dependants"), page_payload(kid))
    assert response["Location"] == reverse("citizens:dependants")
    link = Dependant.objects.get(guardian=guardian)
    html = client.get(reverse("citizens:dependants")).content.decode()
    assert "Léa" in html and "Parent d’un enfant mineur" in html
    remove_url = reverse("citizens:dependant_remove", args=[link.pk])
    assert "Retirer Léa" in client.get(remove_url).content.decode()  # a confirmation first
    assert client.post(remove_url)["Location"] == reverse("citizens:dependants")
    assert not Dependant.objects.exists()


def test_the_page_in_english_says_what_is_wrong_without_naming_the_detail(client):
    _, user = holder()
    kid = child()
    client.force_login(user)
    response = client.post(
        reverse("citizens:dependants"), page_payload(kid, card_sequence="77"), HTTP_ACCEPT_LANGUAGE="en"
    )
    assert response.status_code == 400
    html = response.content.decode()
    assert '<html lang="en">' in html
    assert "One of the details does not match a valid health insurance card" in html
    assert not Dependant.objects.exists()


def test_the_attestation_and_the_relationship_are_required(client):
    _, user = holder()
    client.force_login(user)
    response = client.post(
        reverse("citizens:dependants"), page_payload(child(), attestation="", relationship="")
    )
    assert response.status_code == 400
    html = response.content.decode()
    assert "Cochez la case" in html
    assert not Dependant.objects.exists()


def test_an_adult_cannot_be_added_as_a_child_and_the_page_says_so(client):
    _, user = holder()
    client.force_login(user)
    adult = CitizenFactory(first_name="Gérard", sex="M", birth_date=date(1940, 5, 2))
    response = client.post(reverse("citizens:dependants"), page_payload(adult))
    assert response.status_code == 400
    assert "18 ans ou plus" in response.content.decode()


def test_another_account_gets_404_on_my_dependant_and_removes_nothing(client):
    guardian, _ = holder()
    link = add(guardian, child())
    _, stranger = holder()
    client.force_login(stranger)
    url = reverse("citizens:dependant_remove", args=[link.pk])
    assert client.get(url).status_code == 404
    assert client.post(url).status_code == 404
    assert "Léa" not in client.get(reverse("citizens:dependants")).content.decode()
    assert Dependant.objects.filter(pk=link.pk).exists()
