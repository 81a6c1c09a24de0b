"""The Quebec health-insurance number (NAM, numéro d'assurance maladie).

Printed ``AAAA 9999 9999``: letters 1–3 the family name at birth, 4 the first letter of the given
name, digits 5–6 the year of birth, 7–8 the month (+50 for females), 9–10 the day, 11–12
administrative digits. A structurally valid NAM is not proof of identity: only the registry says
whether it exists and belongs to the person.
"""

import calendar
import re
from dataclasses import dataclass
from datetime import date

NAM_RE = re.compile(r"^[A-Z]{4}[0-9]{8}$", re.ASCII)
_SEPARATORS = re.compile(r"[\s\-_.]+")


class NamError(ValueError):
    """The value is not a well-formed NAM. ``code`` says why, for a precise message."""

    def __init__(self, code: str) -> None:
        super().__init__(code)
        self.code = code


@dataclass(frozen=True)
class Nam:
    value: str

    @property
    def formatted(self) -> str:
        return f"{self.value[:4]} {self.value[4:8]} {self.value[8:]}"

    @property
    def masked(self) -> str:
        """What a page may show to confirm the card without repeating the number."""
        return f"{self.value[:4]} •••• ••{self.value[10:]}"

    @property
    def birth_year_2d(self) -> int:
        return int(self.value[4:6])

    @property
    def birth_month(self) -> int:
        month = int(self.value[6:8])
        return month - 50 if month > 50 else month

    @property
    def birth_day(self) -> int:
        return int(self.value[8:10])

    @property
    def sex_marker(self) -> str:
        return "F" if int(self.value[6:8]) > 50 else "M"


_ASCII_UPPER = str.maketrans("abcdefghijklmnopqrstuvwxyz", "ABCDEFGHIJKLMNOPQRSTUVWXYZ")


def normalize_nam(raw: str) -> str:
    """Upper-case and drop spaces, dashes, dots: what a person types or a card reader sends.

    Only ASCII letters change case: ``str.upper`` would turn "ß" into "SS" and make a NAM out of
    something that is not one."""
    return _SEPARATORS.sub("", raw or "").translate(_ASCII_UPPER)


def parse_nam(raw: str) -> Nam:
    """Normalize and check the structure and the encoded birth date; raise NamError otherwise."""
    value = normalize_nam(raw)
    if not value:
        raise NamError("required")
    if not NAM_RE.match(value):
        raise NamError("format")
    month = int(value[6:8])
    if month > 50:
        month -= 50
    day = int(value[8:10])
    year_2d = int(value[4:6])
    if not 1 <= month <= 12:
        raise NamError("birth_date")
    # The century is not encoded: a 29 February is valid if it exists in either century.
    max_day = max(
        calendar.monthrange(1900 + year_2d, month)[1], calendar.monthrange(2000 + year_2d, month)[1]
    )
    if not 1 <= day <= max_day:
        raise NamError("birth_date")
    return Nam(value)


def nam_matches_birth_date(nam: Nam, birth_date: date) -> bool:
    """The NAM's encoded date agrees with a birth date (year modulo 100, month, day)."""
    return (
        nam.birth_year_2d == birth_date.year % 100
        and nam.birth_month == birth_date.month
        and nam.birth_day == birth_date.day
    )
