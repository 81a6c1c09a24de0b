"""Analysts' dashboard and exports, and each clinic's own figures beside its region's.

Thin callers of ``booking.reporting.selectors``: every figure arrives suppressed. Every read writes one
``ReportAccess`` row (who, what, which filters). The pages read summary tables only; sync health is
read through sync's selectors, as a page that shows sync state must (docs/ARCHITECTURE.md).
"""

import csv
import json
from collections.abc import Callable, Iterable
from datetime import datetime
from functools import wraps
from typing import Any

from django.conf import settings
from django.core.serializers.json import DjangoJSONEncoder
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.utils import timezone
from django.utils.translation import gettext as _
from django.views.decorators.http import require_safe

from citizens.models import User
from clinics.access import staff_required
from clinics.models import BoardRole, ClinicMembership
from clinics.selectors import board_roles_for, clinic_get_for_staff

from . import selectors
from .charts import bar_chart
from .forms import FiltersForm, WeeksForm
from .models import ReportAccess

ANALYST = BoardRole.Role.ANALYST


def report_access_record(*, user: User, what: str, filters: dict[str, Any]) -> None:
    ReportAccess.objects.create(user=user, what=what, filters=filters, at=timezone.now())


def analyst_required(view: Callable[..., HttpResponse]) -> Callable[..., HttpResponse]:
    """Signed in with a second factor (``staff_required``) and holding the provincial analyst role."""

    @wraps(view)
    def wrapper(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        if ANALYST not in board_roles_for(request.user):  # type: ignore[arg-type]
            return render(request, "booking/reporting/analysts_only.html", status=403)
        return view(request, *args, **kwargs)

    return staff_required(wrapper)


def sync_last_snapshot(clinic_ids: Iterable[int]) -> dict[int, datetime]:
    # A page that shows sync state reads it through sync's selectors (docs/ARCHITECTURE.md). Imported
    # here, in the page, so that the booking app never depends on sync at import time.
    from sync.selectors import last_snapshot_by_clinic

    return last_snapshot_by_clinic(clinic_ids)


def _sync_health(f: selectors.Filters) -> selectors.SyncHealth:
    # A subquery, not a list of ids: the province has about two thousand clinics.
    clinic_ids = selectors.emr_clinics_in_scope(f).values_list("pk", flat=True)
    return selectors.sync_health(
        f,
        last_snapshot=sync_last_snapshot(clinic_ids),
        now=timezone.now(),
        stale_after_hours=settings.REPORTING_SYNC_STALE_HOURS,
    )


def payload(d: selectors.Dashboard, health: selectors.SyncHealth) -> dict[str, Any]:
    """The JSON export and the analysts' API answer: the same figures as the page, suppressed."""
    return {
        "filters": d.filters.as_dict(),
        "computed_at": d.computed_at.isoformat() if d.computed_at else None,
        "suppression": {"below": 5, "shown_as": "<5"},
        "figures": d.headline,
        "weeks": d.weeks,
        "regions": d.regions if not d.filters.by_clinic else [],
        "breakdowns": {
            name: [{k: row[k] for k in ("code", "count", "share")} for row in rows]
            for name, rows in d.breakdowns.items()
        },
        "unmet_demand": {k: v for k, v in d.demand.items() if k != "by_region"}
        | {"by_region": [{k: r[k] for k in ("region", "misses")} for r in d.demand["by_region"]]},
        "sync_health": {
            "emr_clinics": health.emr_clinics,
            "stale_after_hours": health.stale_after_hours,
            "stale": [
                {
                    "clinic": row["clinic"],
                    "region": row["region"],
                    "last_sync": row["last_sync"].isoformat() if row["last_sync"] else None,
                }
                for row in health.stale
            ],
        },
    }


@require_safe
@analyst_required
def dashboard(request: HttpRequest) -> HttpResponse:
    form = FiltersForm(request.GET or None)
    f = form.filters()
    d = selectors.dashboard(f)
    health = _sync_health(f)
    report_access_record(user=request.user, what="dashboard", filters=f.as_dict())  # type: ignore[arg-type]
    demand_chart = bar_chart(
        _("Searches without result, by health region"),
        [(row["name"] or _("Region not known"), row["misses"]) for row in d.demand["by_region"]],
    )
    fill_chart = bar_chart(
        _("Fill rate by week"),
        [(w["week"].strftime("%Y-%m-%d"), w["fill_rate"]) for w in d.weeks],
        unit=" %",
        maximum=100,
    )
    audience_chart = bar_chart(
        _("Slots offered by audience"),
        [(row["label"], row["count"]) for row in d.breakdowns["offered_by_audience"]],
    )
    status = 400 if form.is_bound and not form.is_valid() else 200
    return render(
        request,
        "booking/reporting/dashboard.html",
        {
            "form": form,
            "d": d,
            "health": health,
            "charts": {"demand": demand_chart, "fill": fill_chart, "audience": audience_chart},
            "query": request.GET.urlencode(),
        },
        status=status,
    )


@require_safe
@analyst_required
def export_json(request: HttpRequest) -> HttpResponse:
    form = FiltersForm(request.GET or None)
    if form.is_bound and not form.is_valid():
        return HttpResponse(
            json.dumps({"errors": form.errors.get_json_data()}), status=400, content_type="application/json"
        )
    f = form.filters()
    report_access_record(user=request.user, what="export.json", filters=f.as_dict())  # type: ignore[arg-type]
    body = json.dumps(
        payload(selectors.dashboard(f), _sync_health(f)), cls=DjangoJSONEncoder, ensure_ascii=False
    )
    response = HttpResponse(body, content_type="application/json; charset=utf-8")
    response["Content-Disposition"] = 'attachment; filename="indicateurs.json"'
    return response


@require_safe
@analyst_required
def export_csv(request: HttpRequest) -> HttpResponse:
    form = FiltersForm(request.GET or None)
    if form.is_bound and not form.is_valid():
        return HttpResponse(form.errors.as_text(), status=400, content_type="text/plain; charset=utf-8")
    f = form.filters()
    report_access_record(user=request.user, what="export.csv", filters=f.as_dict())  # type: ignore[arg-type]
    rows = selectors.export_rows(f)
    response = HttpResponse(content_type="text/csv; charset=utf-8")
    response["Content-Disposition"] = 'attachment; filename="indicateurs.csv"'
    response.write("\ufeff")  # a byte-order mark, so that spreadsheet software reads UTF-8
    columns = list(selectors.EXPORT_COLUMNS)
    writer = csv.DictWriter(response, fieldnames=columns, extrasaction="ignore", restval=0)
    writer.writeheader()
    for row in rows:
        writer.writerow({k: ("" if v is None else v) for k, v in row.items()})
    return response


@require_safe
@staff_required
def clinic_figures(request: HttpRequest, clinic_id: int) -> HttpResponse:
    """A clinic administrator's own figures, beside the median of the clinics of the region."""
    user = request.user
    assert isinstance(user, User)
    clinic = clinic_get_for_staff(user, clinic_id, roles=(ClinicMembership.Role.CLINIC_ADMIN,))
    form = WeeksForm(request.GET or None)
    week_from, week_to = form.weeks()
    comparison = selectors.clinic_comparison(clinic=clinic, week_from=week_from, week_to=week_to)
    report_access_record(
        user=user,
        what="clinic",
        filters={"clinic": clinic.pk, "week_from": str(week_from), "week_to": str(week_to)},
    )
    rows = [
        (key, label, comparison.own[key], comparison.region_median[key] if comparison.region_median else None)
        for key, label in (
            ("fill_rate", _("Fill rate")),
            ("lead_time_median_hours", _("Median lead time")),
            ("noshow_rate", _("No-show rate")),
            ("emr_share", _("Share of slots from the EMR")),
        )
    ]
    return render(
        request,
        "booking/reporting/clinic.html",
        {
            "clinic": clinic,
            "form": form,
            "comparison": comparison,
            "rows": rows,
            "week_from": week_from,
            "week_to": week_to,
            "min_peers": selectors.MIN_PEERS,
        },
        status=400 if form.is_bound and not form.is_valid() else 200,
    )
