"""The vendor portal (``/fournisseurs/``) and the board's vendor pages (docs/vendors.md).

Vendor pages need a signed-in account (django-allauth, as for every account here) and show only
that account's own vendor. The sandbox holds no real person's data, so no second factor is asked;
the sandbox secret is shown once, in the answer to the POST that makes it, never stored in clear.
Board pages are behind ``staff_required`` (second factor proven) and answer 404 to anyone who is
not a board administrator, as the clinic registration queue does.
"""

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import ValidationError
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils.translation import get_language
from django.utils.translation import gettext as _
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_http_methods, require_POST, require_safe

from citizens.models import User
from clinics.access import staff_required
from clinics.selectors_onboarding import is_board_admin
from clinics.views_board import board_review_post

from . import conformance, vendors
from .models import EmrProductVersion, EmrVendor
from .sandbox_stream import sandbox_stream_step
from .vendor_forms import NoteForm, TakeSlotForm, VendorRegistrationForm, VersionForm


def _user(request: HttpRequest) -> User:
    user = request.user
    assert isinstance(user, User)  # login_required / staff_required let only accounts in
    return user


def _board_admin(request: HttpRequest) -> User:
    user = _user(request)
    if not is_board_admin(user):
        raise Http404
    return user


def _approved_vendor(request: HttpRequest) -> EmrVendor:
    vendor = vendors.vendor_for_user(_user(request))
    if vendor is None or vendor.status != EmrVendor.Status.APPROVED:
        raise Http404
    return vendor


def _home_context(request: HttpRequest, vendor: EmrVendor | None, **extra: object) -> dict[str, object]:
    context: dict[str, object] = {
        "vendor": vendor,
        "version_form": VersionForm(),
        "take_form": TakeSlotForm(),
        **extra,
    }
    if vendor is not None and vendor.status == EmrVendor.Status.APPROVED:
        context.update(vendors.vendor_sandbox(vendor))
        context["versions"] = vendors.versions_of_vendor(vendor)
        context["report"] = conformance.conformance_report(vendor=vendor)
        context["fhir_base"] = request.build_absolute_uri(reverse("sync:base"))
        context["token_url"] = request.build_absolute_uri(reverse("oauth-token"))
    return context


@require_safe
@login_required
def vendor_home(request: HttpRequest) -> HttpResponse:
    vendor = vendors.vendor_for_user(_user(request))
    response = render(request, "sync/vendors/home.html", _home_context(request, vendor))
    response["Cache-Control"] = "no-store, private"
    return response


@require_http_methods(["GET", "POST"])
@login_required
def vendor_register(request: HttpRequest) -> HttpResponse:
    user = _user(request)
    current = vendors.vendor_for_user(user)
    if current is not None and current.status != EmrVendor.Status.REJECTED:
        return redirect("vendors:home")
    form = VendorRegistrationForm(request.POST or None, initial={"technical_email": user.email})
    if request.method == "POST" and form.is_valid():
        try:
            vendors.vendor_register(
                user=user,
                company=form.cleaned_data["company"],
                product_name=form.cleaned_data["product_name"],
                technical_email=form.cleaned_data["technical_email"],
                language=get_language() or "fr",
            )
        except ValidationError as exc:
            form.add_error(None, exc)
        else:
            messages.success(
                request, _("Your request is sent. The board reviews it; you will be told by e-mail.")
            )
            return redirect("vendors:home")
    return render(request, "sync/vendors/register.html", {"form": form}, status=422 if form.errors else 200)


@never_cache
@require_POST
@login_required
def vendor_credentials(request: HttpRequest) -> HttpResponse:
    """A new sandbox secret, shown in this answer only."""
    vendor = _approved_vendor(request)
    client_id, secret, old_until = vendors.vendor_credentials_issue(vendor=vendor)
    vendor.refresh_from_db()
    response = render(
        request,
        "sync/vendors/home.html",
        _home_context(
            request,
            vendor,
            new_secret=secret,
            new_client_id=client_id,
            old_until=old_until
            if vendor.credentials_issued_at and old_until > vendor.credentials_issued_at
            else None,
        ),
    )
    response["Cache-Control"] = "no-store, private"
    return response


@require_POST
@login_required
def version_new(request: HttpRequest) -> HttpResponse:
    vendor = _approved_vendor(request)
    form = VersionForm(request.POST)
    if form.is_valid():
        try:
            version = vendors.version_declare(vendor=vendor, version=form.cleaned_data["version"])
        except ValidationError as exc:
            form.add_error("version", exc)
        else:
            messages.success(request, _("Version %(version)s is declared.") % {"version": version.version})
            return redirect("vendors:home")
    return render(
        request, "sync/vendors/home.html", _home_context(request, vendor, version_form=form), status=422
    )


@require_POST
@login_required
def sandbox_take(request: HttpRequest) -> HttpResponse:
    """A synthetic citizen books one of the vendor's sandbox slots now, through the portal's booking
    service: the citizen-side event of the desk-booking scenario (the vendor's desk then tries the same
    slot and must handle the 409), on demand instead of waiting for the simulated stream."""
    vendor = _approved_vendor(request)
    form = TakeSlotForm(request.POST)
    if form.is_valid():
        slot_id = form.cleaned_data["slot"]
        if sandbox_stream_step(vendor=vendor, slot_id=slot_id).booked:
            messages.success(
                request,
                _(
                    "A synthetic citizen booked Slot/%(slot)s on the portal. Your client sees it in the "
                    "change feed; a desk booking of that slot now gets a 409 to handle."
                )
                % {"slot": slot_id},
            )
            return redirect(reverse("vendors:home") + "#conformance")
        form.add_error(
            "slot",
            _(
                "No synthetic citizen could book this slot: it must be a free, public slot of your sandbox "
                "clinics, after the clinic's minimum notice. Read it with GET Slot/%(slot)s."
            )
            % {"slot": slot_id},
        )
    return render(
        request, "sync/vendors/home.html", _home_context(request, vendor, take_form=form), status=422
    )


@require_POST
@login_required
def version_request(request: HttpRequest, version_id: int) -> HttpResponse:
    vendor = _approved_vendor(request)
    try:
        version = vendors.version_request_certification(vendor=vendor, version_id=version_id)
    except ValidationError as exc:
        messages.error(request, " ".join(exc.messages))
    else:
        messages.success(
            request,
            _("Certification of version %(version)s is requested; the board reviews your sandbox evidence.")
            % {"version": version.version},
        )
    return redirect("vendors:home")


# --- the board --------------------------------------------------------------------------------------


@require_safe
@staff_required
def board_queue(request: HttpRequest) -> HttpResponse:
    _board_admin(request)
    status = request.GET.get("status", EmrVendor.Status.PENDING)
    if status not in EmrVendor.Status.values:
        status = EmrVendor.Status.PENDING
    return render(
        request,
        "sync/vendors/board_queue.html",
        {"rows": vendors.vendor_queue(status=status), "status": status, "statuses": EmrVendor.Status.choices},
    )


@require_http_methods(["GET", "POST"])
@staff_required
def board_review(request: HttpRequest, vendor_id: int) -> HttpResponse:
    user = _board_admin(request)
    item = EmrVendor.objects.filter(pk=vendor_id).select_related("product").first()
    if item is None:
        raise Http404

    def approve() -> str:
        vendors.vendor_approve(vendor_id=item.pk, by=user)
        return _("%(company)s has its sandbox; its technical contact is told by e-mail.") % {
            "company": item.company
        }

    def reject(reason: str) -> None:
        vendors.vendor_reject(vendor_id=item.pk, by=user, reason=reason)

    review = board_review_post(
        request,
        approve=approve,
        reject=reject,
        queue_url=reverse("vendors:board_queue"),
        review_url=reverse("vendors:board_review", kwargs={"vendor_id": item.pk}),
    )
    if review.response is not None:
        return review.response
    return render(
        request,
        "sync/vendors/board_review.html",
        {
            "item": item,
            "reject_form": review.reject_form,
            "pending": item.status == EmrVendor.Status.PENDING,
            "versions": vendors.versions_of_vendor(item),
        },
        status=review.status,
    )


@require_safe
@staff_required
def board_versions(request: HttpRequest) -> HttpResponse:
    _board_admin(request)
    status = request.GET.get("status", EmrProductVersion.Status.REQUESTED)
    if status not in EmrProductVersion.Status.values:
        status = EmrProductVersion.Status.REQUESTED
    return render(
        request,
        "sync/vendors/board_versions.html",
        {
            "rows": vendors.versions_queue(status=status),
            "status": status,
            "statuses": EmrProductVersion.Status.choices,
        },
    )


@require_http_methods(["GET", "POST"])
@staff_required
def board_version(request: HttpRequest, version_id: int) -> HttpResponse:
    user = _board_admin(request)
    version = EmrProductVersion.objects.filter(pk=version_id).select_related("product").first()
    if version is None:
        raise Http404
    form = NoteForm()
    status = 200
    if request.method == "POST":
        action = request.POST.get("action")
        form = NoteForm(request.POST)
        if action not in ("certify", "revoke"):
            status = 400
        elif form.is_valid():
            decide = vendors.version_certify if action == "certify" else vendors.version_revoke
            try:
                decide(version_id=version.pk, by=user, note=form.cleaned_data["note"])
            except ValidationError as exc:
                messages.error(request, " ".join(exc.messages))
                return redirect("vendors:board_version", version_id=version.pk)
            if action == "certify":
                messages.success(request, _("The version is certified: it may now connect to clinics."))
            else:
                messages.success(
                    request, _("The certification is revoked: this version reaches no clinic now.")
                )
            return redirect("vendors:board_versions")
        else:
            status = 422
    return render(
        request,
        "sync/vendors/board_version.html",
        {
            "version": version,
            "form": form,
            "can_certify": version.status == EmrProductVersion.Status.REQUESTED,
            "can_revoke": version.status
            in (EmrProductVersion.Status.REQUESTED, EmrProductVersion.Status.CERTIFIED),
            "clients": version.clients.filter(is_active=True).count(),
            "report": conformance.stored_results(version.evidence),
            "report_at": version.evidence.get("at") if isinstance(version.evidence, dict) else None,
        },
        status=status,
    )
