"""The resource types this API serves, their search parameters, and searchset Bundles.

``RESOURCES`` is the single list the URLs, the views and the CapabilityStatement are built from, so
the CapabilityStatement cannot claim a parameter the search does not apply, or the reverse.

Search semantics (http://hl7.org/fhir/R4/search.html): a repeated parameter narrows (AND), a comma
inside one value widens (OR). Unknown parameters are refused (400 ``not-supported``) rather than
ignored: an EMR that believes it filtered must not receive everything. Pages are keyset-based: the
``next`` link carries an opaque ``_cursor``; following it to the end returns every match once, even
while rows are added (they appear in a later page or not at all, never twice).
"""

import datetime as dt
import re
from collections.abc import Callable, Collection
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlencode
from zoneinfo import ZoneInfo

from django.core import signing
from django.db.models import Model, Q, QuerySet
from django.utils.dateparse import parse_date

from booking.models import Slot
from sync import selectors

from . import resources, task
from .errors import FhirError

DEFAULT_COUNT = 50
MAX_COUNT = 500
CURSOR_SALT = "sync.fhir.search.cursor"
LOCAL_TZ = ZoneInfo("America/Toronto")
# Parameters every search understands, beside the resource's own.
CONTROL_PARAMS = ("_count", "_cursor", "_format")

Filter = Callable[[QuerySet[Any], str], QuerySet[Any]]


@dataclass(frozen=True)
class SearchParam:
    name: str
    type: str  # FHIR search parameter type, for the CapabilityStatement
    documentation: str
    apply: Filter


@dataclass(frozen=True)
class ResourceType:
    name: str
    queryset: Callable[[Collection[int]], QuerySet[Any]]
    to_fhir: Callable[[Any], dict[str, Any]]
    params: tuple[SearchParam, ...]
    order: tuple[str, ...] = ("pk",)
    versioned: bool = False
    includes: tuple[str, ...] = ()
    # Rows that exist but are deleted as far as FHIR goes: a read answers 410, searches skip them.
    deleted_status: str = ""
    # Rows carrying a citizen's data: every one returned writes an audit row (invariant 7).
    audited: bool = False
    param_map: dict[str, SearchParam] = field(init=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "param_map", {p.name: p for p in self.params})


# --- value parsers -------------------------------------------------------------------------------


def _bad(message: str, code: str = "invalid") -> FhirError:
    return FhirError(400, code, message)


def _is_number(text: str) -> bool:
    """ASCII digits only: ``str.isdigit`` also accepts "²" or "①", which ``int`` refuses."""
    return text.isascii() and text.isdigit()


def _ints(value: str) -> list[int]:
    """FHIR ids are strings; ours are numbers, so a non-numeric id simply matches nothing."""
    return [int(v) for v in value.split(",") if _is_number(v.strip())]


def _references(value: str, *types: str) -> list[tuple[str, int]]:
    """``Type/123`` or ``123`` (the parameter's first type), comma separated."""
    out = []
    for item in value.split(","):
        kind, _, pk = item.strip().rpartition("/")
        kind = kind.rsplit("/", 1)[-1] or types[0]
        if kind not in types:
            raise _bad(f"A reference to {' or '.join(types)} is expected, not {item!r}.")
        if _is_number(pk):
            out.append((kind, int(pk)))
    return out


_DATE_RE = re.compile(r"^(ge|gt|le|lt)(.+)$")
_DATE_LOOKUP = {"ge": "gte", "gt": "gt", "le": "lte", "lt": "lt"}


def _date(value: str, allowed: tuple[str, ...] = ("ge", "gt", "le", "lt")) -> tuple[str, dt.datetime]:
    """A prefixed instant: ``ge2026-05-01T08:00:00Z``; a bare date means midnight in Quebec."""
    match = _DATE_RE.match(value)
    if not match or match.group(1) not in allowed:
        raise _bad(
            f"Use a prefix ({', '.join(allowed)}) with a date or instant, e.g. ge2026-05-01T08:00:00Z."
        )
    prefix, text = match.groups()
    try:
        day = parse_date(text) if len(text) == 10 else None
    except ValueError:  # well formed but not a day of the calendar: 2026-02-30
        raise _bad(f"{text!r} is not a date of the calendar.") from None
    if day is not None:
        return _DATE_LOOKUP[prefix], dt.datetime.combine(day, dt.time(), tzinfo=LOCAL_TZ)
    try:
        moment = dt.datetime.fromisoformat(text)
    except ValueError:
        moment = None
    if moment is None or moment.tzinfo is None:
        raise _bad(f"{text!r} is not an instant with a time zone (e.g. 2026-05-01T08:00:00-04:00).")
    return _DATE_LOOKUP[prefix], moment


def _token(value: str) -> tuple[str | None, str]:
    """``system|code``, ``|code`` (no system) or ``code`` (any system)."""
    if "|" in value:
        system, _, code = value.partition("|")
        return system, code
    return None, value


# --- filters -------------------------------------------------------------------------------------


def _by_id(qs: QuerySet[Any], value: str) -> QuerySet[Any]:
    return qs.filter(pk__in=_ints(value))


def _id_param(resource: str) -> SearchParam:
    return SearchParam("_id", "token", f"{resource} id; several separated by commas.", _by_id)


def _identifier_filter(system: str, column: str) -> Filter:
    def apply(qs: QuerySet[Any], value: str) -> QuerySet[Any]:
        q = Q()
        for item in value.split(","):
            item_system, code = _token(item)
            if item_system in (None, system):
                q |= Q(**{column: code})
        return qs.filter(q) if q else qs.none()

    return apply


def _reference_filter(column: str, resource_type: str) -> Filter:
    def apply(qs: QuerySet[Any], value: str) -> QuerySet[Any]:
        return qs.filter(**{f"{column}__in": [pk for _, pk in _references(value, resource_type)]})

    return apply


def _schedule_actor(qs: QuerySet[Any], value: str) -> QuerySet[Any]:
    columns = {"PractitionerRole": "pk", "Practitioner": "practitioner_id", "Location": "clinic_id"}
    q = Q()
    for kind, pk in _references(value, *columns):
        q |= Q(**{columns[kind]: pk})
    return qs.filter(q) if q else qs.none()


def _slot_start(qs: QuerySet[Any], value: str) -> QuerySet[Any]:
    lookup, moment = _date(value)
    return qs.filter(**{f"start__{lookup}": moment})


def _slot_last_updated(qs: QuerySet[Any], value: str) -> QuerySet[Any]:
    lookup, moment = _date(value, ("ge", "gt"))
    return qs.filter(**{f"updated_at__{lookup}": moment})


def _slot_status(qs: QuerySet[Any], value: str) -> QuerySet[Any]:
    statuses = []
    for code in value.split(","):
        _system, code = _token(code.strip())
        if code not in resources.FHIR_SLOT_STATUS:
            raise _bad(
                f"Unknown slot status {code!r}: use {', '.join(resources.FHIR_SLOT_STATUS)}.", "code-invalid"
            )
        statuses.append(resources.FHIR_SLOT_STATUS[code])
    return qs.filter(status__in=statuses)


_SLOT_SYSTEM_RE = re.compile(re.escape(resources.CLINIC_SYSTEM) + r"/(\d+)/slot$")


def _slot_identifier(qs: QuerySet[Any], value: str) -> QuerySet[Any]:
    q = Q()
    for item in value.split(","):
        system, code = _token(item)
        if system is None:
            q |= Q(external_id=code)
        elif match := _SLOT_SYSTEM_RE.match(system):
            q |= Q(clinic_id=int(match.group(1)), external_id=code)
    return qs.filter(q & ~Q(external_id="")) if q else qs.none()


def _practitioner_identifier(qs: QuerySet[Any], value: str) -> QuerySet[Any]:
    return _identifier_filter(resources.RAMQ_PRACTITIONER_SYSTEM, "ramq_number")(qs, value)


def _clinic_identifier(qs: QuerySet[Any], value: str) -> QuerySet[Any]:
    items = [i for i in value.split(",") if _is_number(_token(i)[1])]
    return _identifier_filter(resources.CLINIC_SYSTEM, "pk")(qs, ",".join(items)) if items else qs.none()


def _appointment_status(qs: QuerySet[Any], value: str) -> QuerySet[Any]:
    statuses: list[str] = []
    supported = sorted(set(resources.APPOINTMENT_STATUS.values()))
    for code in value.split(","):
        _system, code = _token(code.strip())
        if code not in supported:
            raise _bad(f"Unknown appointment status {code!r}: use {', '.join(supported)}.", "code-invalid")
        statuses += [ours for ours, fhir in resources.APPOINTMENT_STATUS.items() if fhir == code]
    return qs.filter(status__in=statuses)


_EMR_APPOINTMENT_SYSTEM_RE = re.compile(re.escape(resources.BASE) + r"/sid/emr/(\d+)/appointment$")


def _appointment_identifier(qs: QuerySet[Any], value: str) -> QuerySet[Any]:
    q = Q()
    for item in value.split(","):
        system, code = _token(item)
        if not code:
            continue
        if system is None:
            q |= Q(reference=code) | Q(external_id=code)
        elif system == resources.APPOINTMENT_SYSTEM:
            q |= Q(reference=code)
        elif _EMR_APPOINTMENT_SYSTEM_RE.match(system):
            q |= Q(external_id=code)
    return qs.filter(q) if q else qs.none()


def _task_status(qs: QuerySet[Any], value: str) -> QuerySet[Any]:
    statuses = []
    for code in value.split(","):
        if code not in task.FHIR_TASK_STATUS:
            raise _bad(f"Unknown task status {code!r}: use requested or completed.", "code-invalid")
        statuses.append(task.FHIR_TASK_STATUS[code])
    return qs.filter(status__in=statuses)


def _task_code(qs: QuerySet[Any], value: str) -> QuerySet[Any]:
    kinds = []
    for item in value.split(","):
        system, code = _token(item)
        if system not in (None, task.CONFLICT_SYSTEM) or code not in task.KIND_DISPLAY:
            raise _bad(f"Unknown conflict code {item!r}: use {task.CONFLICT_SYSTEM}|<kind>.", "code-invalid")
        kinds.append(code)
    return qs.filter(kind__in=kinds)


RESOURCES: dict[str, ResourceType] = {
    r.name: r
    for r in (
        ResourceType(
            "Location",
            selectors.location_queryset,
            resources.location,
            (
                _id_param("Location"),
                SearchParam(
                    "identifier",
                    "token",
                    f"Clinic number, system {resources.CLINIC_SYSTEM}.",
                    _clinic_identifier,
                ),
            ),
        ),
        ResourceType(
            "Organization",
            selectors.organization_queryset,
            resources.organization,
            (_id_param("Organization"),),
        ),
        ResourceType(
            "Practitioner",
            selectors.practitioner_queryset,
            resources.practitioner,
            (
                _id_param("Practitioner"),
                SearchParam(
                    "identifier",
                    "token",
                    f"RAMQ practitioner number, system {resources.RAMQ_PRACTITIONER_SYSTEM}.",
                    _practitioner_identifier,
                ),
            ),
        ),
        ResourceType(
            "PractitionerRole",
            selectors.role_queryset,
            resources.practitioner_role,
            (
                _id_param("PractitionerRole"),
                SearchParam(
                    "practitioner",
                    "reference",
                    "Practitioner/id.",
                    _reference_filter("practitioner_id", "Practitioner"),
                ),
                SearchParam(
                    "location", "reference", "Location/id.", _reference_filter("clinic_id", "Location")
                ),
            ),
        ),
        ResourceType(
            "Schedule",
            selectors.role_queryset,
            resources.schedule,
            (
                _id_param("Schedule"),
                SearchParam(
                    "actor",
                    "reference",
                    "PractitionerRole/id, Practitioner/id or Location/id.",
                    _schedule_actor,
                ),
            ),
        ),
        ResourceType(
            "Slot",
            selectors.slot_queryset,
            resources.slot,
            (
                _id_param("Slot"),
                SearchParam(
                    "schedule",
                    "reference",
                    "Schedule/id (one schedule per practitioner role).",
                    _reference_filter("role_id", "Schedule"),
                ),
                SearchParam(
                    "start",
                    "date",
                    "Prefix ge, gt, le or lt, then an instant with its offset (or a date: midnight in "
                    "Quebec); repeat for a range: start=ge…&start=lt….",
                    _slot_start,
                ),
                SearchParam(
                    "status",
                    "token",
                    "free, busy or busy-unavailable; several separated by commas.",
                    _slot_status,
                ),
                SearchParam(
                    "identifier",
                    "token",
                    "The EMR's slot identifier: "
                    f"{resources.CLINIC_SYSTEM}/<Location id>/slot|<value>, or the value alone.",
                    _slot_identifier,
                ),
                SearchParam("_lastUpdated", "date", "Prefix ge or gt, then an instant.", _slot_last_updated),
            ),
            order=("start", "pk"),
            versioned=True,
            includes=("Slot:schedule",),
            deleted_status=Slot.Status.CANCELLED,
        ),
        ResourceType(
            "Appointment",
            selectors.appointment_queryset,
            resources.appointment,
            (
                _id_param("Appointment"),
                SearchParam("slot", "reference", "Slot/id.", _reference_filter("slot_id", "Slot")),
                SearchParam(
                    "date",
                    "date",
                    "The appointment's start: prefix ge, gt, le or lt, then an instant with its offset "
                    "(or a date: midnight in Quebec); repeat for a range.",
                    _slot_start,
                ),
                SearchParam(
                    "status",
                    "token",
                    "booked, arrived, fulfilled, noshow, cancelled or entered-in-error; comma = or.",
                    _appointment_status,
                ),
                SearchParam(
                    "identifier",
                    "token",
                    f"Our confirmation reference ({resources.APPOINTMENT_SYSTEM}|<value>), your EMR's "
                    f"identifier ({resources.BASE}/sid/emr/<product id>/appointment|<value>), "
                    "or a value alone.",
                    _appointment_identifier,
                ),
                SearchParam("_lastUpdated", "date", "Prefix ge or gt, then an instant.", _slot_last_updated),
            ),
            order=("start", "pk"),
            versioned=True,
            audited=True,
        ),
        ResourceType(
            "Task",
            selectors.conflict_queryset,
            task.task,
            (
                _id_param("Task"),
                SearchParam(
                    "status",
                    "token",
                    "requested (open conflicts) or completed (resolved); comma = or.",
                    _task_status,
                ),
                SearchParam(
                    "code",
                    "token",
                    f"The conflict's kind ({task.CONFLICT_SYSTEM}): booked_slot_removed or "
                    "booked_slot_changed; comma = or.",
                    _task_code,
                ),
                SearchParam(
                    "focus",
                    "reference",
                    "Appointment/id: the kept appointment.",
                    _reference_filter("appointment_id", "Appointment"),
                ),
            ),
        ),
    )
}


# --- running a search ----------------------------------------------------------------------------


@dataclass
class SearchPage:
    rows: list[Any]
    total: int
    count: int
    next_cursor: str | None
    included: list[dict[str, Any]]
    # The parameters as understood (no _cursor, _count made explicit): the base of every link.
    params: list[tuple[str, str]]


def _page_size(value: str) -> int:
    if not _is_number(value):
        raise _bad("_count must be a whole number.")
    return min(int(value), MAX_COUNT)


def _cursor_encode(resource: ResourceType, row: Model) -> str:
    values = [getattr(row, name) for name in resource.order]
    return signing.dumps(
        [v.isoformat() if isinstance(v, dt.datetime) else v for v in values], salt=CURSOR_SALT
    )


def _after(resource: ResourceType, cursor: str) -> Q:
    """Rows strictly after the cursor in the resource's order (keyset pagination)."""
    try:
        values = signing.loads(cursor, salt=CURSOR_SALT)
        if resource.order == ("start", "pk"):
            start, pk = dt.datetime.fromisoformat(values[0]), int(values[1])
            return Q(start__gt=start) | Q(start=start, pk__gt=pk)
        (pk,) = values
        return Q(pk__gt=int(pk))
    except (signing.BadSignature, ValueError, TypeError, IndexError) as exc:
        raise _bad("This _cursor is not valid; start the search again from its first page.") from exc


def search(resource: ResourceType, clinic_ids: Collection[int], params: list[tuple[str, str]]) -> SearchPage:
    """One page of ``resource`` within ``clinic_ids``: a count, a keyset page and any _include."""
    qs = resource.queryset(clinic_ids)
    if resource.deleted_status:
        qs = qs.exclude(status=resource.deleted_status)
    count, cursor, includes, understood = DEFAULT_COUNT, None, [], []
    for name, value in params:
        if "\x00" in name or "\x00" in value:  # PostgreSQL refuses NUL in text: a 400, not a 500
            raise _bad("Search parameters cannot contain a NUL character.")
        if name == "_count":
            count = _page_size(value)
            continue
        if name == "_cursor":
            cursor = value
            continue
        if name == "_format":
            continue
        if name == "_include":
            if value not in resource.includes:
                supported = ", ".join(resource.includes) or "none"
                raise _bad(
                    f"_include={value} is not supported here (supported: {supported}).", "not-supported"
                )
            includes.append(value)
        elif name in resource.param_map:
            qs = resource.param_map[name].apply(qs, value)
        else:
            supported = ", ".join(
                [*resource.param_map, *CONTROL_PARAMS, *(["_include"] if resource.includes else [])]
            )
            raise _bad(
                f"Unknown search parameter {name!r} for {resource.name} (supported: {supported}).",
                "not-supported",
            )
        understood.append((name, value))
    understood.append(("_count", str(count)))

    total = qs.count()
    rows: list[Any] = []
    next_cursor = None
    if count:
        ordered = qs.order_by(*resource.order)
        if cursor:
            ordered = ordered.filter(_after(resource, cursor))
        rows = list(ordered[: count + 1])
        if len(rows) > count:
            rows = rows[:count]
            next_cursor = _cursor_encode(resource, rows[-1])

    included: list[dict[str, Any]] = []
    if "Slot:schedule" in includes and rows:
        role_ids = {row.role_id for row in rows}
        roles = selectors.role_queryset(clinic_ids).filter(pk__in=role_ids).order_by("pk")
        included = [resources.schedule(role) for role in roles]
    return SearchPage(rows, total, count, next_cursor, included, understood)


def searchset(resource: ResourceType, page: SearchPage, *, base_url: str) -> dict[str, Any]:
    """The Bundle for a page; ``base_url`` is the FHIR base, ending with a slash."""
    type_url = f"{base_url}{resource.name}"
    links = [{"relation": "self", "url": f"{type_url}?{urlencode(page.params)}"}]
    if page.next_cursor:
        links.append(
            {
                "relation": "next",
                "url": f"{type_url}?{urlencode([*page.params, ('_cursor', page.next_cursor)])}",
            }
        )
    entries = [
        {"fullUrl": f"{type_url}/{row.pk}", "resource": resource.to_fhir(row), "search": {"mode": "match"}}
        for row in page.rows
    ]
    entries += [
        {
            "fullUrl": f"{base_url}{inc['resourceType']}/{inc['id']}",
            "resource": inc,
            "search": {"mode": "include"},
        }
        for inc in page.included
    ]
    return {
        "resourceType": "Bundle",
        "type": "searchset",
        "total": page.total,
        "link": links,
        "entry": entries,
    }
