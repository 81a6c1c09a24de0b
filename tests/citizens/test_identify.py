"""Identifying a citizen by their health-insurance card, against the registry (the Citizen table).

Every wrong detail gets the same answer, so that the form cannot be used to learn which field was
right; failures are rate limited per NAM and per IP (in Redis), successes never are.
"""

import time
from datetime import date, timedelta

import pytest

from citizens.models import Citizen
from citizens.nam import NamError
from citizens.services import IdentificationFailed, citizen_identify
from config.ratelimit import RateLimited
from tests.factories import CitizenFactory

TODAY = date(2026, 11, 26)
IP = "203.0.113.7"
OTHER_IP = "198.51.100.23"


def nam_for(last_name: str, first_name: str, birth: date, sex: str, admin: int) -> str:
    letters = last_name[:3].upper() + first_name[0].upper()
    month = birth.month + (50 if sex == "F" else 0)
    return f"{letters}{birth.year % 100:02d}{month:02d}{birth.day:02d}{admin:02d}"


@pytest.fixture
def helene(db):
    """A registry entry with accents and a compound family name."""
    birth = date(1985, 3, 14)
    return CitizenFactory(
        first_name="Hélène",
        last_name="Côté-Gagnon",
        birth_date=birth,
        sex="F",
        nam=nam_for("COT", "H", birth, "F", 7),
        card_sequence="03",
        card_expires=TODAY + timedelta(days=400),
    )


def details(citizen, **overrides):
    data = {
        "first_name": citizen.first_name,
        "last_name": citizen.last_name,
        "nam": citizen.nam,
        "card_sequence": citizen.card_sequence,
        "birth_date": citizen.birth_date,
        "ip": IP,
        "today": TODAY,
    }
    data.update(overrides)
    return data


def fail_once(citizen, ip=IP):
    with pytest.raises(IdentificationFailed):
        citizen_identify(**details(citizen, card_sequence="99", ip=ip))


@pytest.fixture
def nam_limit_3(settings):
    settings.RATE_LIMIT_ENABLED = True
    settings.RATE_LIMITS = {**settings.RATE_LIMITS, "identify_nam": "3/3600", "identify_ip": "100/3600"}


@pytest.fixture
def ip_limit_3(settings):
    settings.RATE_LIMIT_ENABLED = True
    settings.RATE_LIMITS = {**settings.RATE_LIMITS, "identify_nam": "100/3600", "identify_ip": "3/3600"}


# --- success -------------------------------------------------------------------------------------


def test_a_citizen_is_identified_with_the_exact_details_on_their_card(helene):
    citizen = citizen_identify(**details(helene))
    assert citizen.pk == helene.pk
    assert Citizen.objects.count() == 1


@pytest.mark.parametrize(
    ("first_name", "last_name"),
    [
        ("helene", "cote-gagnon"),
        ("HELENE", "COTE GAGNON"),
        ("Hélène", "Côté Gagnon"),
        ("  hélène ", "côté  -  gagnon"),
        ("Helene", "Cote-Gagnon"),
    ],
)
def test_a_citizen_is_identified_whatever_the_accents_case_hyphens_or_spaces_in_their_names(
    helene, first_name, last_name
):
    citizen = citizen_identify(**details(helene, first_name=first_name, last_name=last_name))
    assert citizen.pk == helene.pk


def test_a_citizen_may_type_the_nam_with_spaces_and_in_lower_case(helene):
    typed = f"{helene.nam[:4].lower()} {helene.nam[4:8]} {helene.nam[8:]}"
    assert citizen_identify(**details(helene, nam=typed)).pk == helene.pk


def test_a_card_that_expires_today_is_still_valid(helene):
    Citizen.objects.filter(pk=helene.pk).update(card_expires=TODAY)
    assert citizen_identify(**details(helene)).pk == helene.pk


# --- every wrong detail, one answer --------------------------------------------------------------


@pytest.mark.parametrize(
    "wrong",
    [
        {"first_name": "Hélèna"},
        {"first_name": "Julie"},
        {"last_name": "Côté"},
        {"last_name": "Gagnon-Côté"},
        {"card_sequence": "04"},
        {"card_sequence": ""},
        {"birth_date": date(1985, 3, 15)},
        {"birth_date": date(1885, 3, 14)},
    ],
    ids=lambda wrong: next(iter(wrong)),
)
def test_one_wrong_detail_fails_with_the_same_error_naming_no_field(helene, wrong):
    with pytest.raises(IdentificationFailed) as caught:
        citizen_identify(**details(helene, **wrong))
    assert type(caught.value) is IdentificationFailed
    assert caught.value.args == ()
    assert str(caught.value) == ""


def test_an_unknown_nam_fails_with_the_same_error(helene):
    unknown = helene.nam[:10] + ("08" if helene.nam[10:] != "08" else "09")
    with pytest.raises(IdentificationFailed) as caught:
        citizen_identify(**details(helene, nam=unknown))
    assert type(caught.value) is IdentificationFailed
    assert caught.value.args == ()


def test_an_expired_card_fails_with_the_same_error(helene):
    Citizen.objects.filter(pk=helene.pk).update(card_expires=TODAY - timedelta(days=1))
    with pytest.raises(IdentificationFailed) as caught:
        citizen_identify(**details(helene))
    assert type(caught.value) is IdentificationFailed
    assert caught.value.args == ()


def test_a_malformed_nam_is_reported_as_such_because_it_leaks_nothing(helene):
    with pytest.raises(NamError) as caught:
        citizen_identify(**details(helene, nam="COTH 8503 3201"))  # 32 March
    assert caught.value.code == "birth_date"


# --- rate limits ---------------------------------------------------------------------------------


def test_after_the_limit_of_failures_for_a_nam_even_the_right_details_are_rate_limited(helene, nam_limit_3):
    for _ in range(3):
        fail_once(helene)
    with pytest.raises(RateLimited) as caught:
        citizen_identify(**details(helene))
    assert 1 <= caught.value.retry_after <= 3600


def test_below_the_limit_of_failures_for_a_nam_the_right_details_still_work(helene, nam_limit_3):
    for _ in range(2):
        fail_once(helene)
    assert citizen_identify(**details(helene)).pk == helene.pk


def test_the_nam_limit_is_per_nam_and_does_not_touch_another_card(helene, nam_limit_3):
    other = CitizenFactory()
    for _ in range(3):
        fail_once(helene)
    assert citizen_identify(**details(other)).pk == other.pk


def test_a_stranger_failing_from_other_addresses_does_not_lock_the_person_out(helene, nam_limit_3):
    for ip in ("192.0.2.1", "192.0.2.2", "192.0.2.3"):
        for _ in range(3):
            fail_once(helene, ip=ip)
    with pytest.raises(RateLimited):
        fail_once(helene, ip="192.0.2.1")
    assert citizen_identify(**details(helene, ip=OTHER_IP)).pk == helene.pk


def test_concurrent_guesses_cannot_slip_past_the_limit(helene, nam_limit_3):
    # Each attempt is counted before the look-up: the fourth is refused even before any answer.
    for _ in range(3):
        fail_once(helene)
    with pytest.raises(RateLimited):
        citizen_identify(**details(helene))


def test_the_nam_limit_counts_the_nam_however_it_was_typed(helene, nam_limit_3):
    spaced = f"{helene.nam[:4].lower()} {helene.nam[4:8]}-{helene.nam[8:]}"
    for _ in range(3):
        with pytest.raises(IdentificationFailed):
            citizen_identify(**details(helene, nam=spaced, first_name="Julie"))
    with pytest.raises(RateLimited):
        citizen_identify(**details(helene))


def test_a_rate_limited_nam_works_again_once_the_window_has_passed(helene, settings):
    period = 2
    settings.RATE_LIMIT_ENABLED = True
    settings.RATE_LIMITS = {**settings.RATE_LIMITS, "identify_nam": f"2/{period}", "identify_ip": "100/3600"}
    # Start at the beginning of a fixed window, so that both failures land in the same one.
    time.sleep(period - time.time() % period + 0.05)
    fail_once(helene)
    fail_once(helene)
    with pytest.raises(RateLimited) as caught:
        citizen_identify(**details(helene))
    assert 1 <= caught.value.retry_after <= period
    time.sleep(period - time.time() % period + 0.05)
    assert citizen_identify(**details(helene)).pk == helene.pk


def test_after_the_limit_of_failures_from_an_ip_every_card_is_rate_limited_from_that_ip(helene, ip_limit_3):
    strangers = CitizenFactory.create_batch(3)
    for stranger in strangers:
        fail_once(stranger, ip=IP)
    with pytest.raises(RateLimited):
        citizen_identify(**details(helene, ip=IP))


def test_the_ip_limit_does_not_touch_another_ip(helene, ip_limit_3):
    for stranger in CitizenFactory.create_batch(3):
        fail_once(stranger, ip=IP)
    assert citizen_identify(**details(helene, ip=OTHER_IP)).pk == helene.pk


def test_successes_are_never_counted_toward_the_limits(helene, settings):
    settings.RATE_LIMIT_ENABLED = True
    settings.RATE_LIMITS = {**settings.RATE_LIMITS, "identify_nam": "3/3600", "identify_ip": "3/3600"}
    for _ in range(10):
        assert citizen_identify(**details(helene)).pk == helene.pk
    fail_once(helene)
    fail_once(helene)
    assert citizen_identify(**details(helene)).pk == helene.pk
    fail_once(helene)
    with pytest.raises(RateLimited):
        citizen_identify(**details(helene))


def test_guessing_one_card_from_many_addresses_is_stopped_by_the_per_card_limit(helene, settings):
    settings.RATE_LIMITS = {
        **settings.RATE_LIMITS,
        "identify_nam": "3/600",
        "identify_nam_any": "6/600",
        "identify_ip": "100/600",
    }
    for i in range(6):
        fail_once(helene, ip=f"192.0.2.{i + 1}")
    with pytest.raises(RateLimited) as caught:
        citizen_identify(**details(helene, ip="192.0.2.99"))
    assert 0 < caught.value.retry_after <= 600
