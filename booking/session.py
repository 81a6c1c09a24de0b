"""Who the citizen is on the pages: a verified card kept in the session for a short time, or the
card linked to the signed-in account. Views never read the session keys directly."""

import time

from django.conf import settings

from citizens.models import Citizen

KEY = "citizen"
HOLD_KEY = "hold"
FOUND_KEY = "found_appointments"


def citizen_sign_in(request, citizen: Citizen) -> None:
    # Whatever the previous person at this browser held or found is not carried over.
    for key in (HOLD_KEY, FOUND_KEY):
        request.session.pop(key, None)
    request.session.cycle_key()  # a new session id once identified: no fixation
    request.session[KEY] = {"id": citizen.pk, "until": int(time.time()) + settings.CITIZEN_SESSION_SECONDS}


def citizen_sign_out(request) -> None:
    for key in (KEY, HOLD_KEY, FOUND_KEY):
        request.session.pop(key, None)


def current_citizen(request) -> Citizen | None:
    if hasattr(request, "_citizen"):
        return request._citizen
    citizen = None
    data = request.session.get(KEY)
    if data and data.get("until", 0) > time.time():
        citizen = Citizen.objects.filter(pk=data["id"]).first()
    elif data:
        citizen_sign_out(request)
    if citizen is None and getattr(request, "user", None) is not None and request.user.is_authenticated:
        citizen = Citizen.objects.filter(account=request.user).first()
    request._citizen = citizen
    return citizen


def hold_remember(request, *, slot_id: int, token: str, expires_ts: float, reason: str) -> None:
    request.session[HOLD_KEY] = {"slot": slot_id, "token": token, "expires": expires_ts, "reason": reason}


def hold_for(request, slot_id: int) -> dict | None:
    data = request.session.get(HOLD_KEY)
    return data if data and data.get("slot") == slot_id else None


def found_remember(request, appointment_id: int, *, new_session: bool = False) -> None:
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


def _found(request) -> list[int]:
    data = request.session.get(FOUND_KEY)
    if not isinstance(data, dict) or data.get("until", 0) <= time.time():
        request.session.pop(FOUND_KEY, None)
        return []
    return list(data.get("ids", []))


def found_ids(request) -> list[int]:
    return _found(request)
