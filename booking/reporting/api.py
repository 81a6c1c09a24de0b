"""The analysts' read-only API: the dashboard's figures and export rows as JSON, same filters.

Scoped to provincial analysts: a signed-in session that proved a second factor and holds the analyst
role (the same gate as the dashboard). Read-only (GET); every call writes one ``ReportAccess`` row.
"""

from typing import Any

from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema, inline_serializer
from rest_framework import serializers
from rest_framework.authentication import SessionAuthentication
from rest_framework.exceptions import ValidationError
from rest_framework.permissions import BasePermission
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from citizens.models import User
from clinics.access import mfa_enabled, mfa_proven_in_session
from clinics.models import BoardRole
from clinics.selectors import board_roles_for

from . import selectors
from .forms import FiltersForm
from .views import _sync_health, payload, report_access_record

TAGS = ["reporting (analysts)"]
FILTER_PARAMETERS = [
    OpenApiParameter("region", OpenApiTypes.STR, description="Health region code (01–18)."),
    OpenApiParameter("gmf", OpenApiTypes.INT, description="GMF id."),
    OpenApiParameter("clinic", OpenApiTypes.INT, description="Clinic id (of the region or GMF given)."),
    OpenApiParameter("week_from", OpenApiTypes.DATE, description="First week (any day of it)."),
    OpenApiParameter(
        "week_to", OpenApiTypes.DATE, description="Last week (any day of it); 53 weeks at most."
    ),
]
ERRORS = {
    400: OpenApiResponse(description="A filter is not valid (for example the last week before the first)."),
    403: OpenApiResponse(description="Not signed in, no second factor in this session, or not an analyst."),
}
SUPPRESSED_NOTE = (
    'Counts from 1 to 4, and the rates and lead times that would reveal them, are the string "<5".'
)


class IsProvincialAnalyst(BasePermission):
    """A signed-in account with the analyst role, whose session proved its second factor."""

    def has_permission(self, request: Request, view: APIView) -> bool:
        user = request.user
        if user is None or not user.is_authenticated:
            return False
        if BoardRole.Role.ANALYST not in board_roles_for(user):
            return False
        return mfa_enabled(user) and mfa_proven_in_session(request._request)


def _user(request: Request) -> User:
    assert isinstance(request.user, User)  # IsProvincialAnalyst has let only accounts through
    return request.user


class _AnalystApi(APIView):
    authentication_classes = [SessionAuthentication]
    permission_classes = [IsProvincialAnalyst]

    def filters(self, request: Request) -> selectors.Filters:
        form = FiltersForm(request.query_params or None)
        if form.is_bound and not form.is_valid():
            raise ValidationError(form.errors.get_json_data())
        return form.filters()


class FiguresApi(_AnalystApi):
    @extend_schema(
        tags=TAGS,
        summary="The dashboard's figures: headline, weeks, regions, breakdowns, unmet demand, sync health",
        description="Read from the summary tables (docs/metrics.md). " + SUPPRESSED_NOTE,
        parameters=FILTER_PARAMETERS,
        responses={
            200: inline_serializer(
                "ReportingFigures",
                {
                    "filters": serializers.DictField(),
                    "computed_at": serializers.DateTimeField(allow_null=True),
                    "suppression": serializers.DictField(),
                    "figures": serializers.DictField(help_text=SUPPRESSED_NOTE),
                    "weeks": serializers.ListField(child=serializers.DictField()),
                    "regions": serializers.ListField(child=serializers.DictField()),
                    "breakdowns": serializers.DictField(),
                    "unmet_demand": serializers.DictField(),
                    "sync_health": serializers.DictField(),
                },
            ),
            **ERRORS,
        },
    )
    def get(self, request: Request) -> Response:
        f = self.filters(request)
        report_access_record(user=_user(request), what="api.figures", filters=f.as_dict())
        return Response(payload(selectors.dashboard(f), _sync_health(f)))


class RowsApi(_AnalystApi):
    @extend_schema(
        tags=TAGS,
        summary="One row per week and region (or per week and clinic with a GMF or clinic filter)",
        description="The rows of the CSV export. " + SUPPRESSED_NOTE,
        parameters=FILTER_PARAMETERS,
        responses={
            200: inline_serializer(
                "ReportingRows", {"rows": serializers.ListField(child=serializers.DictField())}
            ),
            **ERRORS,
        },
    )
    def get(self, request: Request) -> Response:
        f = self.filters(request)
        report_access_record(user=_user(request), what="api.rows", filters=f.as_dict())
        rows: list[dict[str, Any]] = selectors.export_rows(f)
        return Response({"rows": rows})
