"""Whether the signed-in user works at a clinic or for the board: the menu then links the staff pages."""

from django.http import HttpRequest

from .selectors import is_staff_member


def staff(request: HttpRequest) -> dict[str, bool]:
    user = getattr(request, "user", None)
    return {"is_clinic_staff": bool(user is not None and user.is_authenticated and is_staff_member(user))}
