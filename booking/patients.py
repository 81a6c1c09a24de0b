"""Who an appointment is for, on the pages and the API: the identified citizen, or one of their
dependants. Thin helpers over ``citizens.selectors``; someone else's dependant is never found."""

from django.utils.translation import gettext_lazy as _

from citizens.models import Citizen, Dependant
from citizens.selectors import dependant_get_for_guardian, dependant_of_person

from . import errors
from .models import Appointment


class PatientNotFound(errors.ApplicationError):
    code = "patient_not_found"
    status = 404
    message = _("This person is not among the people in your care.")


def patient_resolve(*, citizen: Citizen, dependant_id: int | str | None) -> tuple[Citizen, Dependant | None]:
    """The patient named by a dependant id (empty: the citizen themself). PatientNotFound when the
    id is not one of the citizen's own dependants: the pages answer 404, like any other object."""
    if dependant_id in (None, ""):
        return citizen, None
    dependant = dependant_get_for_guardian(guardian=citizen, dependant_id=dependant_id)
    if dependant is None:
        raise PatientNotFound
    return dependant.citizen, dependant


def patient_of_appointment(*, citizen: Citizen, appointment: Appointment) -> tuple[Citizen, Dependant | None]:
    """The patient of an appointment the citizen reached through ``appointment_get_for_citizen``."""
    if appointment.citizen_id == citizen.pk:
        return citizen, None
    if appointment.citizen_id is None:  # anonymized: nobody's any more
        raise PatientNotFound
    dependant = dependant_of_person(guardian=citizen, citizen_id=appointment.citizen_id)
    if dependant is None:
        raise PatientNotFound
    return dependant.citizen, dependant
