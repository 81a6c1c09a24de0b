"""The health-insurance number (NAM): normalization, structure, encoded birth date, display.

A NAM is ``AAAA 9999 9999``: three letters of the family name at birth, the first letter of the
given name, the year (two digits), the month (+50 for females) and the day of birth, two
administrative digits. These tests pin down what ``parse_nam`` accepts and why it refuses the rest.
"""

import calendar
import re
import string
from datetime import date

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from citizens.nam import Nam, NamError, nam_matches_birth_date, normalize_nam, parse_nam

ASCII_NAM = re.compile(r"[A-Z]{4}[0-9]{8}")
ASCII_SEPARATORS = re.compile(r"[\s\-_.]+")

property_settings = settings(
    max_examples=300,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)


def build_nam(last_name: str, first_name: str, birth: date, sex: str, admin: int = 1) -> str:
    """The NAM a card carries for these birth details (family names under three letters pad with X)."""
    letters = (last_name.upper() + "XXX")[:3] + first_name.upper()[0]
    month = birth.month + (50 if sex == "F" else 0)
    return f"{letters}{birth.year % 100:02d}{month:02d}{birth.day:02d}{admin:02d}"


def date_exists_in_either_century(year_2d: int, month: int, day: int) -> bool:
    if not 1 <= month <= 12:
        return False
    return any(1 <= day <= calendar.monthrange(century + year_2d, month)[1] for century in (1900, 2000))


# --- normalization -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "raw",
    [
        "GAGJ 8553 1401",
        "gagj85531401",
        "GaGj-8553-1401",
        "  gagj 8553-1401  ",
        "GAGJ.8553.1401",
        "GAGJ\t8553 1401\n",
        "G A G J 8 5 5 3 1 4 0 1",
    ],
)
def test_a_nam_typed_with_spaces_dashes_dots_or_lower_case_is_normalized(raw):
    assert normalize_nam(raw) == "GAGJ85531401"
    assert parse_nam(raw).value == "GAGJ85531401"


def test_normalizing_keeps_characters_that_are_not_separators():
    # A slash is not a separator: it stays, and the structure check refuses it.
    assert normalize_nam("GAGJ/8553/1401") == "GAGJ/8553/1401"
    with pytest.raises(NamError) as caught:
        parse_nam("GAGJ/8553/1401")
    assert caught.value.code == "format"


# --- structure -----------------------------------------------------------------------------------


@pytest.mark.parametrize("raw", ["", "   ", " - ", None])
def test_an_empty_nam_is_refused_as_required(raw):
    with pytest.raises(NamError) as caught:
        parse_nam(raw)
    assert caught.value.code == "required"


@pytest.mark.parametrize(
    "raw",
    [
        "GAGJ8553140",  # 11 characters
        "GAGJ855314011",  # 13 characters
        "GAG885531401",  # three letters
        "GAGJJ5531401",  # five letters
        "1AGJ85531401",  # a digit among the letters
        "GAGJ8553140O",  # a letter O among the digits
        "ÉAGJ85531401",  # an accented letter
        "85531401GAGJ",  # digits first
    ],
)
def test_a_value_that_is_not_four_letters_and_eight_digits_is_refused_as_format(raw):
    with pytest.raises(NamError) as caught:
        parse_nam(raw)
    assert caught.value.code == "format"


@pytest.mark.parametrize(
    "raw",
    [
        "GAGJ٨٥٥٣١٤٠١",  # Arabic-Indic digits: \d matches them, int() reads them
        "GAGJ८५५३१४०१",  # Devanagari digits
        "ßGJ85531401",  # "ß" upper-cases to "SS": "SSGJ85531401" is not what was typed
        "ıAGJ85531401",  # dotless i upper-cases to an ASCII "I"
    ],
)
def test_a_nam_with_non_ascii_digits_or_letters_is_refused(raw):
    # A NAM is ASCII: a value that only looks like one after Unicode case mapping or with
    # non-Latin digits must not reach the registry, the database or a printed card number.
    with pytest.raises(NamError) as caught:
        parse_nam(raw)
    assert caught.value.code == "format"


# --- the encoded birth date ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "month", "sex"),
    [
        ("GAGJ85031401", 3, "M"),
        ("GAGJ85531401", 3, "F"),
        ("GAGJ85011401", 1, "M"),
        ("GAGJ85511401", 1, "F"),
        ("GAGJ85121401", 12, "M"),
        ("GAGJ85621401", 12, "F"),
    ],
)
def test_the_month_is_read_with_fifty_added_for_females(raw, month, sex):
    nam = parse_nam(raw)
    assert nam.birth_month == month
    assert nam.sex_marker == sex
    assert nam.birth_year_2d == 85
    assert nam.birth_day == 14


@pytest.mark.parametrize(
    "raw",
    [
        "GAGJ00022901",  # 2000 is a leap year (1900 is not): valid
        "GAGJ04022901",  # 1904 and 2004 are leap years
        "GAGJ96522901",  # a woman born 29 February 1996
        "GAGJ24022901",  # 2024
    ],
)
def test_29_february_is_valid_when_either_century_has_a_leap_year(raw):
    assert parse_nam(raw).birth_day == 29


@pytest.mark.parametrize(
    "raw",
    [
        "GAGJ01022901",  # neither 1901 nor 2001 is a leap year
        "GAGJ99522901",  # neither 1999 nor 2099
        "GAGJ00023001",  # 30 February never exists
    ],
)
def test_29_february_is_invalid_when_neither_century_has_a_leap_year(raw):
    with pytest.raises(NamError) as caught:
        parse_nam(raw)
    assert caught.value.code == "birth_date"


@pytest.mark.parametrize(
    ("raw", "why"),
    [
        ("GAGJ85043101", "31 April"),
        ("GAGJ85543101", "31 April, female"),
        ("GAGJ85063101", "31 June"),
        ("GAGJ85093101", "31 September"),
        ("GAGJ85113101", "31 November"),
        ("GAGJ85133101", "month 13"),
        ("GAGJ85633101", "month 63 (13 + 50)"),
        ("GAGJ85001401", "month 00"),
        ("GAGJ85501401", "month 50 (00 + 50)"),
        ("GAGJ85991401", "month 99"),
        ("GAGJ85030001", "day 00"),
        ("GAGJ85033201", "day 32"),
    ],
)
def test_a_birth_date_that_does_not_exist_is_refused(raw, why):
    with pytest.raises(NamError) as caught:
        parse_nam(raw)
    assert caught.value.code == "birth_date", why


@pytest.mark.parametrize(
    "raw",
    ["GAGJ85043001", "GAGJ85013101", "GAGJ85513101", "GAGJ85123101", "GAGJ85623101", "GAGJ85010101"],
)
def test_the_last_day_of_each_month_and_the_first_are_valid(raw):
    assert parse_nam(raw).value == raw


# --- display -------------------------------------------------------------------------------------


def test_a_nam_is_formatted_as_printed_on_the_card():
    assert parse_nam("gagj85531401").formatted == "GAGJ 8553 1401"


def test_a_masked_nam_shows_the_letters_and_the_last_two_digits_only():
    masked = parse_nam("GAGJ85531401").masked
    assert masked == "GAGJ •••• ••01"
    assert "8553" not in masked
    assert "14" not in masked


# --- nam_matches_birth_date ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "birth"),
    [
        ("GAGJ85531401", date(1985, 3, 14)),
        ("GAGJ85031401", date(1985, 3, 14)),
        ("GAGJ05531401", date(2005, 3, 14)),
        ("GAGJ05531401", date(1905, 3, 14)),  # the century is not encoded
    ],
)
def test_a_nam_matches_the_birth_date_it_encodes(raw, birth):
    assert nam_matches_birth_date(parse_nam(raw), birth)


@pytest.mark.parametrize(
    "birth",
    [date(1986, 3, 14), date(1985, 4, 14), date(1985, 3, 15), date(1985, 5, 3)],
)
def test_a_nam_does_not_match_another_birth_date(birth):
    assert not nam_matches_birth_date(parse_nam("GAGJ85531401"), birth)


# --- properties ----------------------------------------------------------------------------------

names = st.text(alphabet=string.ascii_uppercase + string.ascii_lowercase, min_size=1, max_size=25)
birth_dates = st.dates(min_value=date(1900, 1, 1), max_value=date(2099, 12, 31))
sexes = st.sampled_from(["F", "M"])
separators = st.sampled_from(["", "", "", " ", "  ", "-", ".", "\t", " - "])


@st.composite
def typed_like_a_person(draw, value: str) -> str:
    """The NAM with random separators between characters and random case."""
    out = []
    for char in value:
        out.append(draw(separators))
        out.append(char.lower() if draw(st.booleans()) else char)
    out.append(draw(separators))
    return "".join(out)


@property_settings
@given(
    last_name=names,
    first_name=names,
    birth=birth_dates,
    sex=sexes,
    admin=st.integers(min_value=0, max_value=99),
    data=st.data(),
)
def test_any_nam_built_from_real_birth_details_parses_and_round_trips(
    last_name, first_name, birth, sex, admin, data
):
    value = build_nam(last_name, first_name, birth, sex, admin)
    typed = data.draw(typed_like_a_person(value))

    nam = parse_nam(typed)

    assert nam == Nam(value)
    assert nam.birth_month == birth.month
    assert nam.birth_day == birth.day
    assert nam.sex_marker == sex
    assert nam_matches_birth_date(nam, birth)
    assert re.fullmatch(r"[A-Z]{4} [0-9]{4} [0-9]{4}", nam.formatted)
    assert parse_nam(nam.formatted) == nam
    assert parse_nam(data.draw(typed_like_a_person(nam.formatted))) == nam


@property_settings
@given(raw=st.text(max_size=30))
@example(raw="GAGJ٨٥٥٣١٤٠١")
@example(raw="ßGJ85531401")
def test_any_string_without_the_structure_raises_nam_error_with_a_code(raw):
    has_structure = bool(re.fullmatch(r"[A-Za-z]{4}[0-9]{8}", ASCII_SEPARATORS.sub("", raw)))
    if has_structure:
        # Then the only possible refusal is a date that does not exist.
        try:
            nam = parse_nam(raw)
        except NamError as exc:
            assert exc.code == "birth_date"
        else:
            assert ASCII_NAM.fullmatch(nam.value)
        return
    with pytest.raises(NamError) as caught:
        parse_nam(raw)
    assert caught.value.code in {"required", "format"}


@st.composite
def mangled_nams(draw) -> str:
    """A valid NAM with one character dropped, added, or replaced by the wrong kind."""
    value = build_nam(draw(names), draw(names), draw(birth_dates), draw(sexes))
    position = draw(st.integers(min_value=0, max_value=len(value) - 1))
    how = draw(st.sampled_from(["drop", "add_letter", "add_digit", "wrong_kind"]))
    if how == "drop":
        return value[:position] + value[position + 1 :]
    if how == "add_letter":
        return value[:position] + draw(st.sampled_from(string.ascii_uppercase)) + value[position:]
    if how == "add_digit":
        return value[:position] + draw(st.sampled_from(string.digits)) + value[position:]
    wrong = string.digits if value[position].isalpha() else string.ascii_uppercase
    return value[:position] + draw(st.sampled_from(wrong)) + value[position + 1 :]


@property_settings
@given(raw=mangled_nams())
def test_a_nam_with_a_character_missing_extra_or_of_the_wrong_kind_is_refused_as_format(raw):
    with pytest.raises(NamError) as caught:
        parse_nam(raw)
    assert caught.value.code == "format"


@property_settings
@given(
    letters=st.text(alphabet=string.ascii_uppercase, min_size=4, max_size=4),
    year=st.integers(min_value=0, max_value=99),
    month=st.integers(min_value=0, max_value=99),
    day=st.integers(min_value=0, max_value=99),
    admin=st.integers(min_value=0, max_value=99),
)
def test_a_well_formed_nam_parses_exactly_when_its_date_exists(letters, year, month, day, admin):
    raw = f"{letters}{year:02d}{month:02d}{day:02d}{admin:02d}"
    real_month = month - 50 if month > 50 else month
    if date_exists_in_either_century(year, real_month, day):
        nam = parse_nam(raw)
        assert (nam.birth_year_2d, nam.birth_month, nam.birth_day) == (year, real_month, day)
        assert nam.sex_marker == ("F" if month > 50 else "M")
    else:
        with pytest.raises(NamError) as caught:
            parse_nam(raw)
        assert caught.value.code == "birth_date"


@property_settings
@given(birth=birth_dates, other=birth_dates, sex=sexes)
def test_nam_matches_birth_date_exactly_when_year_mod_100_month_and_day_agree(birth, other, sex):
    nam = parse_nam(build_nam("Tremblay", "Luc", birth, sex))
    expected = (other.year % 100, other.month, other.day) == (birth.year % 100, birth.month, birth.day)
    assert nam_matches_birth_date(nam, other) is expected
