"""Who the citizen is on the pages: a verified card kept in the session for a short time, or the
card linked to the signed-in account. Views never read the session keys directly."""

import time
from typing import Any, NotRequired, TypedDict, cast

from django.conf import settings
from django.http import HttpRequest

from citizens.models import Citizen, User

KEY = "citizen"
HOLD_KEY = "hold"
FOUND_KEY = "found_appointments"
RESCHEDULE_KEY = "reschedule"


class HeldSlot(TypedDict):
    """What ``hold_remember`` keeps in the session (JSON): the hold's slot, token, end and reason,
    and the dependant it is for (absent or None: the identified citizen themself)."""

    slot: int
    token: str
    expires: float
    reason: str
    patient: NotRequired[int | None]


class _CitizenRequest(HttpRequest):
    # current_citizen's per-request cache, set on the request by its first call.
    _citizen: Citizen | None


def citizen_sign_in(request: HttpRequest, citizen: Citizen) -> None:
    # Whatever the previous person at this browser held or found is not carried over.
    for key in (HOLD_KEY, FOUND_KEY, RESCHEDULE_KEY):
        request.session.pop(key, None)
    request.session.cycle_key()  # a new session id once identified: no fixation
    request.session[KEY] = {"id": citizen.pk, "until": int(time.time()) + settings.CITIZEN_SESSION_SECONDS}


def citizen_sign_out(request: HttpRequest) -> None:
    for key in (KEY, HOLD_KEY, FOUND_KEY, RESCHEDULE_KEY):
        request.session.pop(key, None)


def current_citizen(request: HttpRequest) -> Citizen | None:
    cached = cast(_CitizenRequest, request)
    if hasattr(cached, "_citizen"):
        return cached._citizen
    citizen = None
    data: dict[str, Any] | None = request.session.get(KEY)
    if data and data.get("until", 0) > time.time():
        citizen = Citizen.objects.filter(pk=data["id"]).first()
    elif data:
        citizen_sign_out(request)
    # Only an account: on the citizen API, DRF sets ``request.user`` to the token's CitizenPrincipal,
    # which a page rendered there (the API docs) must not take for an account.
    user = getattr(request, "user", None)
    if citizen is None and isinstance(user, User) and user.is_authenticated:
        citizen = Citizen.objects.filter(account=user).first()
    cached._citizen = citizen
    return citizen


def hold_remember(
    request: HttpRequest,
    *,
    slot_id: int,
    token: str,
    expires_ts: float,
    reason: str,
    patient: int | None = None,
) -> None:
    held: HeldSlot = {"slot": slot_id, "token": token, "expires": expires_ts, "reason": reason}
    if patient is not None:
        held["patient"] = patient
    request.session[HOLD_KEY] = held


def hold_for(request: HttpRequest, slot_id: int) -> HeldSlot | None:
    data: HeldSlot | None = request.session.get(HOLD_KEY)
    return data if data and data.get("slot") == slot_id else None


def found_remember(request: HttpRequest, appointment_id: int, *, new_session: bool = False) -> None:
    """Appointments opened with their reference and NAM: reachable from this browser for the same
    short time as an identification, the most recent ten."""
    data = _found(request)
    ids = [i for i in data if i != appointment_id] + [appointment_id]
    if new_session:
        request.session.cycle_key()
    request.session[FOUND_KEY] = {
        "ids": ids[-10:],
        "until": int(time.time()) + settings.CITIZEN_SESSION_SECONDS,
    }


def _found(request: HttpRequest) -> list[int]:
    data = request.session.get(FOUND_KEY)
    if not isinstance(data, dict) or data.get("until", 0) <= time.time():
        request.session.pop(FOUND_KEY, None)
        return []
    return list(data.get("ids", []))


def found_ids(request: HttpRequest) -> list[int]:
    return _found(request)


def reschedule_start(request: HttpRequest, appointment_id: int) -> None:
    """The next time chosen replaces this appointment (the views check it is the citizen's)."""
    request.session[RESCHEDULE_KEY] = appointment_id


def reschedule_end(request: HttpRequest) -> None:
    request.session.pop(RESCHEDULE_KEY, None)


def reschedule_id(request: HttpRequest) -> int | None:
    value = request.session.get(RESCHEDULE_KEY)
    return value if isinstance(value, int) else None
