"""Reads about citizens: enrolment and what each search path can offer them."""

from dataclasses import dataclass

from .models import Citizen, Dependant, Enrolment


@dataclass(frozen=True)
class CitizenCare:
    """Who the citizen is enrolled with: the family doctor and their GMF, or neither."""

    practitioner_id: int | None
    practitioner_name: str
    gmf_id: int | None
    gmf_name: str

    @property
    def is_enrolled(self) -> bool:
        return self.practitioner_id is not None


def citizen_care(*, citizen: Citizen) -> CitizenCare:
    enrolment = (
        Enrolment.objects.filter(citizen=citizen, is_active=True)
        .select_related("practitioner", "gmf")
        .first()
    )
    if enrolment is None:
        return CitizenCare(None, "", None, "")
    return CitizenCare(
        practitioner_id=enrolment.practitioner_id,
        practitioner_name=enrolment.practitioner.display_name,
        gmf_id=enrolment.gmf_id,
        gmf_name=enrolment.gmf.name if enrolment.gmf else "",
    )


def dependants_of(*, guardian: Citizen) -> list[Dependant]:
    """The holder's dependants, oldest link first, with their card's person."""
    return list(
        Dependant.objects.filter(guardian=guardian).select_related("citizen").order_by("created_at", "pk")
    )


def dependant_get_for_guardian(*, guardian: Citizen, dependant_id: int | str) -> Dependant | None:
    """The only way to reach one dependant: the holder's own, or nothing."""
    try:
        return Dependant.objects.select_related("citizen").get(guardian=guardian, pk=int(dependant_id))
    except (Dependant.DoesNotExist, ValueError, TypeError):
        return None


def patient_ids_for(*, citizen: Citizen) -> list[int]:
    """Whose appointments this citizen may see and act on: their own and their dependants'."""
    return [citizen.pk, *Dependant.objects.filter(guardian=citizen).values_list("citizen_id", flat=True)]


def dependant_of_person(*, guardian: Citizen, citizen_id: int) -> Dependant | None:
    """The holder's link to this person, if the person is one of their dependants."""
    return (
        Dependant.objects.select_related("citizen").filter(guardian=guardian, citizen_id=citizen_id).first()
    )
