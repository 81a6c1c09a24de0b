"""Reads about citizens: enrolment and what each search path can offer them."""

from dataclasses import dataclass

from .models import Citizen, Enrolment


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
