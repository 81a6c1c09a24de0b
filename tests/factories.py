"""factory_boy factories: realistic, valid rows (NAMs that parse, slots inside a role)."""

import itertools
from datetime import UTC, date, datetime, timedelta

import factory
from django.utils import timezone

from booking.models import ALL_REASONS_MASK, Audience, Modality, Slot
from citizens.models import Citizen, Enrolment, User
from clinics.models import Clinic, Fsa, Gmf, Practitioner, PractitionerRole, Region

_nam_counter = itertools.count(1)


def make_nam(last_name: str, first_name: str, birth: date, sex: str) -> str:
    letters = (last_name.upper() + "XXX")[:3] + first_name.upper()[0]
    month = birth.month + (50 if sex == "F" else 0)
    return f"{letters}{birth.year % 100:02d}{month:02d}{birth.day:02d}{next(_nam_counter) % 100:02d}"


class RegionFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Region
        django_get_or_create = ("code",)

    code = "06"
    name_fr = "Montréal"


class FsaFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Fsa
        django_get_or_create = ("code",)

    code = "H2X"
    latitude = 45.5145
    longitude = -73.5733
    place_name = "Plateau Mont-Royal"
    region = factory.SubFactory(RegionFactory)


class GmfFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Gmf

    name = factory.Sequence(lambda n: f"GMF du Quartier {n}")
    region = factory.SubFactory(RegionFactory)


class ClinicFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Clinic

    name = factory.Sequence(lambda n: f"Clinique médicale {n}")
    address = factory.Sequence(lambda n: f"{100 + n} rue Saint-Denis")
    city = "Montréal"
    postal_code = "H2X 1K4"
    latitude = 45.5145
    longitude = -73.5733
    region = factory.SubFactory(RegionFactory)
    time_zone = "America/Toronto"
    phone = "514 555-0100"
    gmf = factory.SubFactory(GmfFactory)
    min_notice = timedelta(hours=1)
    cancel_cutoff_hours = 2


class PractitionerFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Practitioner

    ramq_number = factory.Sequence(lambda n: f"{100000 + n:06d}")
    first_name = "Marie"
    last_name = factory.Sequence(lambda n: f"Tremblay{n}")
    languages = "fr,en"


class RoleFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = PractitionerRole

    practitioner = factory.SubFactory(PractitionerFactory)
    clinic = factory.SubFactory(ClinicFactory)


class CitizenFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Citizen

    first_name = "Julie"
    last_name = "Gagnon"
    birth_date = date(1985, 3, 14)
    sex = "F"
    nam = factory.LazyAttribute(lambda o: make_nam(o.last_name, o.first_name, o.birth_date, o.sex))
    card_sequence = "01"
    postal_code = "H2X 1K4"
    card_expires = factory.LazyFunction(lambda: timezone.localdate() + timedelta(days=700))
    preferred_language = "fr"
    email = factory.Sequence(lambda n: f"citoyen{n}@example.org")


class EnrolmentFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Enrolment

    citizen = factory.SubFactory(CitizenFactory)
    practitioner = factory.SubFactory(PractitionerFactory)
    gmf = None
    since = date(2020, 1, 1)


class SlotFactory(factory.django.DjangoModelFactory):
    """A free public slot, by default three days from now at 10:00 UTC, 15 minutes."""

    class Meta:
        model = Slot

    role = factory.SubFactory(RoleFactory)
    practitioner = factory.SelfAttribute("role.practitioner")
    clinic = factory.SelfAttribute("role.clinic")
    start = factory.Sequence(
        lambda n: (
            (timezone.now() + timedelta(days=3)).replace(hour=10, minute=0, second=0, microsecond=0)
            + timedelta(minutes=15 * n)
        )
    )
    end = factory.LazyAttribute(lambda o: o.start + timedelta(minutes=15))
    reasons = ALL_REASONS_MASK
    audience = Audience.PUBLIC
    modality = Modality.IN_PERSON


class UserFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = User
        skip_postgeneration_save = True

    email = factory.Sequence(lambda n: f"user{n}@example.org")
    password = factory.django.Password("correct horse battery")


# The tests' fixed clock: services and selectors take ``now``, so rules are checked at a known time.
NOW = datetime(2027, 2, 1, 15, 0, tzinfo=UTC)


def slot_at(role, *, hours: float = 48, minutes: int = 15, **fields) -> Slot:
    """A slot of ``role`` starting ``hours`` after NOW."""
    start = NOW + timedelta(hours=hours)
    return SlotFactory(role=role, start=start, end=start + timedelta(minutes=minutes), **fields)
