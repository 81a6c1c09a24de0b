"""Quebec's statutory holidays, which slot templates skip unless the clinic opens that day."""

from datetime import date

import pytest

from clinics.holidays import easter_sunday, holidays_between, quebec_holidays


def test_the_2026_holidays_exactly():
    assert list(quebec_holidays(2026)) == [
        date(2026, 1, 1),
        date(2026, 4, 3),  # Good Friday
        date(2026, 4, 6),  # Easter Monday
        date(2026, 5, 18),  # National Patriots' Day: May 25 is a Monday, so the Monday before
        date(2026, 6, 24),
        date(2026, 7, 1),
        date(2026, 9, 7),  # Labour Day
        date(2026, 10, 12),  # Thanksgiving
        date(2026, 12, 25),
    ]


def test_the_2027_holidays_exactly():
    assert list(quebec_holidays(2027)) == [
        date(2027, 1, 1),
        date(2027, 3, 26),
        date(2027, 3, 29),
        date(2027, 5, 24),
        date(2027, 6, 24),
        date(2027, 7, 1),
        date(2027, 9, 6),
        date(2027, 10, 11),
        date(2027, 12, 25),
    ]


@pytest.mark.parametrize(
    ("year", "easter"),
    [
        (2000, date(2000, 4, 23)),
        (2019, date(2019, 4, 21)),
        (2024, date(2024, 3, 31)),
        (2038, date(2038, 4, 25)),
    ],
)
def test_easter_sunday_by_the_computus(year, easter):
    assert easter_sunday(year) == easter


def test_national_patriots_day_is_always_the_monday_between_may_18_and_24():
    for year in range(2020, 2060):
        patriots = [d for d in quebec_holidays(year) if d.month == 5]
        assert len(patriots) == 1
        assert patriots[0].weekday() == 0 and 18 <= patriots[0].day <= 24


def test_every_holiday_has_a_name_in_both_languages():
    from django.utils import translation

    with translation.override("fr"):
        names = [str(n) for n in quebec_holidays(2027).values()]
    assert "Fête du Travail" in names and "Noël" in names


def test_holidays_between_spans_new_year():
    assert list(holidays_between(date(2026, 12, 20), date(2027, 1, 5))) == [
        date(2026, 12, 25),
        date(2027, 1, 1),
    ]
