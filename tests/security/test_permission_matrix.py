"""Who may open what: every URL of the project, for every persona, with the status it must answer.

The table below is the specification (ARCHITECTURE.md invariant 7: clinic staff see only their
clinics, an EMR client only its clinics, a citizen only their own appointments). Each row is a
concrete request on an object of clinic A or of citizen A; the columns are the personas:

    anonymous   nobody signed in or identified
    citizen_a   citizen A, identified with the health-insurance card (session) and holding an API token
    citizen_b   another citizen, identified the same way
    guardian    a citizen with an account (password, card linked) who books for a dependant, and holds
                an API token; the dependant's objects are ``dependant`` and ``dependant_appointment``
    admin_a     clinic A's administrator, signed in with password and TOTP
    admin_b     clinic B's administrator, signed in the same way
    emr_a       EMR client A (clinic A), with its OAuth bearer token
    emr_b       EMR client B (clinic B), with its OAuth bearer token
    board       a board administrator (provincial), signed in with TOTP
    analyst     a provincial analyst (BoardRole analyst), signed in with TOTP: the reporting pages and
                API only, nothing else of the staff area

Rows run in order within one persona (the hold comes before the confirmation page that needs it,
signing out comes last). Django's admin (/gestion/) is one group: nobody here is ``is_staff``, so
every admin page sends everyone to the admin sign-in. A URL pattern that no row reaches fails the
test: add it to the matrix with what each persona must get.
"""

from dataclasses import dataclass, field
from datetime import date, timedelta

import pytest
from django.test import Client
from django.urls import URLPattern, URLResolver, get_resolver, resolve
from django.utils import timezone

from booking.api.auth import citizen_token_make
from booking.models import Reason
from booking.notifications import cancel_token_make
from booking.reporting.opendata import opendata_publish
from booking.services import appointment_book
from booking.waitlist.offers import waitlist_offer_next
from booking.waitlist.services import waitlist_request_create
from citizens.models import Dependant
from clinics.models import BoardRole, ClinicMembership, RegistrationRequest
from clinics.services_staff import staff_invite
from sync.models import (
    AgendaSnapshot,
    EmrClient,
    EmrProduct,
    EmrProductVersion,
    SyncConflict,
    WebhookSubscription,
)
from sync.vendors import vendor_register
from tests.clinics.conftest import make_account, sign_in
from tests.conftest import identify_payload
from tests.factories import CitizenFactory, ClinicFactory, FsaFactory, SlotFactory
from tests.sync.conftest import EmrPersona, create_client, get_token

PERSONAS = (
    "anonymous",
    "citizen_a",
    "citizen_b",
    "guardian",
    "admin_a",
    "admin_b",
    "emr_a",
    "emr_b",
    "board",
    "analyst",
)
SIGNED_IN = ("guardian", "admin_a", "admin_b", "board", "analyst")  # people with an account session (allauth)


def everyone(status: int) -> dict[str, int]:
    return dict.fromkeys(PERSONAS, status)


def but(default: int, **exceptions: int) -> dict[str, int]:
    """``default`` for every persona except those named."""
    unknown = set(exceptions) - set(PERSONAS)
    assert not unknown, unknown
    return {**everyone(default), **exceptions}


def account(*, signed_out: int, signed_in: int) -> dict[str, int]:
    """An allauth page: citizens and EMR clients have no account session, so they see what a
    signed-out visitor sees."""
    return {p: signed_in if p in SIGNED_IN else signed_out for p in PERSONAS}


@dataclass(frozen=True)
class Row:
    path: str  # with {placeholders} for the objects of clinic A / citizen A (see ``objects``)
    expected: dict[str, int]
    method: str = "GET"
    data: dict[str, str] = field(default_factory=dict)


def GET(path: str, expected: dict[str, int]) -> Row:  # named as the HTTP verb it sends
    return Row(path, expected)


def POST(path: str, expected: dict[str, int], **data: str) -> Row:
    return Row(path, expected, method="POST", data=data)


FHIR = "/fhir/r4"
# The EMR API answers only EMR tokens (citizen tokens and sessions are not EMR credentials). A search
# answers both clients (what each bundle holds is tests/sync/test_scoping.py's subject); a resource
# of clinic A is 404 for client B.
FHIR_SEARCH = but(401, emr_a=200, emr_b=200)
FHIR_OWN_A = but(401, emr_a=200, emr_b=404)
FHIR_POST_ONLY = but(401, emr_a=405, emr_b=405)  # the _search forms, checked with GET
# The citizen API: a citizen token; an EMR token there is an invalid token (401), never anonymous.
API_CITIZEN = but(401, citizen_a=200, citizen_b=200, guardian=200)
API_OWN_A = but(401, citizen_a=200, citizen_b=404, guardian=404)
API_POST_ONLY = but(401, citizen_a=405, citizen_b=405, guardian=405)
# The dependant's own objects: their guardian only.
API_OWN_DEPENDANT = but(401, citizen_a=404, citizen_b=404, guardian=200)
PAGE_OWN_DEPENDANT = but(404, guardian=200)
# Pages that need a card identified in this session (or an account with a linked card): the
# others are sent to identify first.
IDENTIFIED = but(302, citizen_a=200, citizen_b=200, guardian=200)
# Clinic pages: staff of the clinic, past a second factor. Citizens and EMR clients have no account
# session (302 to sign in); clinic B's admin, the board administrator and the analyst get 404 on
# clinic A; a citizen's account is not staff (403).
STAFF_OF_A = but(302, admin_a=200, admin_b=404, board=404, analyst=404, guardian=403)

MATRIX: list[Row] = [
    # Probes.
    GET("/healthz", everyone(200)),
    GET("/readyz", everyone(200)),
    # Prometheus metrics: an allow-listed address (none here, see ``objects``) or the metrics token,
    # which no persona holds (tests/ops/test_metrics.py tests both ways in).
    GET("/metrics", everyone(404)),
    # The API description and its documentation page are public.
    GET("/api/schema/", but(200, emr_a=401, emr_b=401)),
    GET("/api/docs/", but(200, emr_a=401, emr_b=401)),
    # The citizen JSON API.
    GET("/api/v1/identify", everyone(405)),  # POST only, no token needed
    GET(
        "/api/v1/slots", but(401, citizen_a=400, citizen_b=400, guardian=400)
    ),  # 400: no search criteria given
    GET("/api/v1/holds", API_POST_ONLY),
    GET("/api/v1/appointments", API_CITIZEN),  # each citizen's own list
    GET("/api/v1/appointments/{appointment}", API_OWN_A),
    GET("/api/v1/appointments/{dependant_appointment}", API_OWN_DEPENDANT),
    GET("/api/v1/appointments?patient={dependant}", but(401, citizen_a=404, citizen_b=404, guardian=200)),
    GET("/api/v1/dependants", API_CITIZEN),  # each citizen's own list (empty for most)
    GET("/api/v1/appointments/{appointment}/cancel", API_POST_ONLY),
    GET("/api/v1/appointments/{appointment}/reschedule", API_POST_ONLY),
    # The waitlist: each citizen's own requests and their dependants'; the offer is answered with its
    # token in a JSON body (tests/booking/test_api_waitlist.py), so only the GETs are here.
    GET("/api/v1/waitlist", API_CITIZEN),
    GET("/api/v1/waitlist/{waitlist_a}/withdraw", API_POST_ONLY),
    GET("/api/v1/waitlist/offers/accept", API_POST_ONLY),
    GET("/api/v1/waitlist/offers/decline", API_POST_ONLY),
    # The EMR API (FHIR R4). Metadata is public, as FHIR requires.
    GET(f"{FHIR}/", FHIR_POST_ONLY),  # transaction / batch Bundles: POST only
    GET(f"{FHIR}/metadata", everyone(200)),
    GET(f"{FHIR}/.well-known/smart-configuration", everyone(200)),
    GET(f"{FHIR}/openapi.json", everyone(200)),  # public, as the CapabilityStatement
    GET(f"{FHIR}/$feed", FHIR_SEARCH),
    GET(f"{FHIR}/Appointment/_history", FHIR_SEARCH),
    GET(f"{FHIR}/Subscription", FHIR_SEARCH),
    GET(f"{FHIR}/Subscription/{{subscription_a}}", FHIR_OWN_A),
    GET(f"{FHIR}/Subscription/{{subscription_a}}/$rotate-secret", FHIR_POST_ONLY),
    GET(f"{FHIR}/Location", FHIR_SEARCH),
    GET(f"{FHIR}/Location/_search", FHIR_POST_ONLY),
    GET(f"{FHIR}/Location/{{clinic_a}}", FHIR_OWN_A),
    GET(f"{FHIR}/Organization", FHIR_SEARCH),
    GET(f"{FHIR}/Organization/_search", FHIR_POST_ONLY),
    GET(f"{FHIR}/Organization/{{gmf_a}}", FHIR_OWN_A),
    GET(f"{FHIR}/Practitioner", FHIR_SEARCH),
    GET(f"{FHIR}/Practitioner/_search", FHIR_POST_ONLY),
    GET(f"{FHIR}/Practitioner/{{practitioner_a}}", FHIR_OWN_A),
    GET(f"{FHIR}/PractitionerRole", FHIR_SEARCH),
    GET(f"{FHIR}/PractitionerRole/_search", FHIR_POST_ONLY),
    GET(f"{FHIR}/PractitionerRole/{{role_a}}", FHIR_OWN_A),
    GET(f"{FHIR}/Schedule", FHIR_SEARCH),
    GET(f"{FHIR}/Schedule/_search", FHIR_POST_ONLY),
    GET(f"{FHIR}/Schedule/{{role_a}}", FHIR_OWN_A),
    GET(f"{FHIR}/Schedule/{{role_a}}/$snapshot", FHIR_POST_ONLY),  # POST only (tests/sync/test_snapshots.py)
    GET(f"{FHIR}/Schedule/{{role_a}}/$snapshot-status/{{snapshot_a}}", FHIR_OWN_A),
    GET(f"{FHIR}/Slot", FHIR_SEARCH),
    GET(f"{FHIR}/Slot/_search", FHIR_POST_ONLY),
    GET(f"{FHIR}/Slot/{{slot}}", FHIR_OWN_A),
    GET(f"{FHIR}/Appointment", FHIR_SEARCH),
    GET(f"{FHIR}/Appointment/_search", FHIR_POST_ONLY),
    GET(f"{FHIR}/Appointment/{{appointment}}", FHIR_OWN_A),
    # Agenda conflicts as Task (tests/sync/test_tasks.py); $resolve is POST only.
    GET(f"{FHIR}/Task", FHIR_SEARCH),
    GET(f"{FHIR}/Task/_search", FHIR_POST_ONLY),
    GET(f"{FHIR}/Task/{{conflict_a}}", FHIR_OWN_A),
    GET(f"{FHIR}/Task/{{conflict_a}}/$resolve", FHIR_POST_ONLY),
    # Our vocabularies: public and read-only (tests/sync/test_terminology.py).
    GET(f"{FHIR}/CodeSystem", everyone(200)),
    GET(f"{FHIR}/CodeSystem/reason", everyone(200)),
    GET(f"{FHIR}/ValueSet", everyone(200)),
    GET(f"{FHIR}/ValueSet/reason", everyone(200)),
    # Patients: looked up by NAM with POST Patient/_search only; a GET is refused (no NAM in a URL).
    GET(f"{FHIR}/Patient", but(401, emr_a=400, emr_b=400)),
    GET(f"{FHIR}/Patient/_search", FHIR_POST_ONLY),
    GET(f"{FHIR}/Nothing-here", everyone(404)),
    GET("/oauth/token/", everyone(405)),  # POST only, with the client's own credentials
    # Accounts (allauth). Signing in and resetting a password are open to all; the rest needs an
    # account session; pages of a flow not started (a code to confirm, a key to add) send back.
    GET("/comptes/login/", account(signed_out=200, signed_in=302)),
    GET("/comptes/logout/", account(signed_out=302, signed_in=200)),
    GET("/comptes/inactive/", everyone(200)),
    GET("/comptes/signup/", account(signed_out=200, signed_in=302)),
    GET("/comptes/reauthenticate/", account(signed_out=302, signed_in=200)),
    GET("/comptes/reauthenticate/code/", account(signed_out=302, signed_in=200)),
    GET("/comptes/reauthenticate/code/confirm/", everyone(302)),
    GET("/comptes/email/", account(signed_out=302, signed_in=200)),
    GET("/comptes/confirm-email/", everyone(200)),
    GET("/comptes/confirm-email/not-a-key/", everyone(200)),  # "this link is invalid"
    GET("/comptes/password/change/", account(signed_out=302, signed_in=200)),
    GET("/comptes/password/set/", everyone(302)),  # these accounts have a password already
    GET("/comptes/password/reset/", everyone(200)),
    GET("/comptes/password/reset/done/", everyone(200)),
    GET("/comptes/password/reset/key/1-not-a-key/", everyone(200)),  # "this link is invalid"
    GET("/comptes/password/reset/key/done/", everyone(200)),
    GET("/comptes/login/code/confirm/", everyone(302)),
    GET("/comptes/2fa/", account(signed_out=302, signed_in=200)),
    GET("/comptes/2fa/authenticate/", everyone(302)),
    GET("/comptes/2fa/reauthenticate/", {**account(signed_out=302, signed_in=200), "guardian": 302}),
    GET("/comptes/2fa/totp/activate/", everyone(302)),  # staff have a TOTP already
    # Needs a recent re-authentication; an account without TOTP has nothing to deactivate.
    GET("/comptes/2fa/totp/deactivate/", but(302, guardian=404)),
    GET("/comptes/2fa/recovery-codes/", account(signed_out=302, signed_in=404)),  # none generated
    GET("/comptes/2fa/recovery-codes/generate/", everyone(302)),
    GET("/comptes/2fa/recovery-codes/download/", account(signed_out=302, signed_in=404)),
    GET("/comptes/2fa/webauthn/", account(signed_out=302, signed_in=200)),
    GET("/comptes/2fa/webauthn/add/", everyone(302)),  # needs a recent re-authentication
    GET("/comptes/2fa/webauthn/reauthenticate/", everyone(302)),
    GET("/comptes/2fa/webauthn/keys/1/remove/", everyone(302)),
    GET("/comptes/2fa/webauthn/keys/1/edit/", everyone(302)),
    # A citizen account links its health-insurance card (any signed-in account).
    GET("/compte/carte/", account(signed_out=302, signed_in=200)),
    # People in an account holder's care: an account with a linked card (staff accounts have none,
    # so they are sent to link one); someone else's dependant is not found.
    GET("/compte/personnes/", but(302, guardian=200)),
    GET(
        "/compte/personnes/{dependant}/retirer/",
        but(302, guardian=200, admin_a=404, admin_b=404, board=404, analyst=404),
    ),
    # Clinic pages.
    GET(
        "/clinique/", but(302, guardian=403, admin_a=200, admin_b=200, board=200, analyst=200)
    ),  # each sees their own list (an analyst: a link to the reporting pages)
    # The audit logs' hash-chain check: board administrators only; other staff learn nothing (404).
    GET("/clinique/registre/", but(302, guardian=403, admin_a=404, admin_b=404, board=200, analyst=404)),
    GET("/clinique/{clinic_a}/agenda/", STAFF_OF_A),
    GET("/clinique/{clinic_a}/agenda/feuille/", STAFF_OF_A),
    GET("/clinique/{clinic_a}/personnel/", STAFF_OF_A),
    GET("/clinique/{clinic_a}/personnel/{membership_a}/desactiver/", STAFF_OF_A),
    GET("/clinique/{clinic_a}/personnel/inviter/", STAFF_OF_A),
    GET("/clinique/{clinic_a}/personnel/invitations/{invitation_a}/renvoyer/", everyone(405)),
    GET("/clinique/{clinic_a}/personnel/invitations/{invitation_a}/retirer/", everyone(405)),
    GET("/clinique/{clinic_a}/personnel/{membership_a}/deuxieme-facteur/", STAFF_OF_A),
    GET("/clinique/{clinic_a}/parametres/", STAFF_OF_A),  # also for a clinic with an EMR
    # Slots from the web agenda: refused (403) for a clinic whose EMR publishes its slots, as
    # clinic A's does; open to the admin of a clinic without an EMR (``web_a``, also admin A's).
    GET(
        "/clinique/{clinic_a}/plages/modele/",
        but(302, guardian=403, admin_a=403, admin_b=404, board=404, analyst=404),
    ),
    GET(
        "/clinique/{clinic_a}/plages/bloquer/",
        but(302, guardian=403, admin_a=403, admin_b=404, board=404, analyst=404),
    ),
    GET(
        "/clinique/{clinic_a}/plages/modifier/",
        but(302, guardian=403, admin_a=403, admin_b=404, board=404, analyst=404),
    ),
    GET(
        "/clinique/{clinic_a}/plages/nouvelle/",
        but(302, guardian=403, admin_a=403, admin_b=404, board=404, analyst=404),
    ),
    GET("/clinique/{web_a}/plages/nouvelle/", STAFF_OF_A),
    GET("/clinique/{web_a}/plages/modele/", STAFF_OF_A),
    GET("/clinique/{web_a}/plages/bloquer/", STAFF_OF_A),
    GET("/clinique/{web_a}/plages/modifier/", STAFF_OF_A),
    # The phone channel: clinics without an EMR; clinic A keeps its agenda in an EMR (403 page).
    GET(
        "/clinique/{clinic_a}/telephone/",
        but(302, guardian=403, admin_a=403, admin_b=404, board=404, analyst=404),
    ),
    GET("/clinique/{web_a}/telephone/", STAFF_OF_A),
    GET(
        "/clinique/{clinic_a}/rendez-vous/{appointment}/deplacer/",
        but(302, guardian=403, admin_a=403, admin_b=404, board=404, analyst=404),
    ),
    # Onboarding: the request form and an invitation link are public (the token is the credential);
    # the review queue is for board administrators only.
    GET("/clinique/inscription/", everyone(200)),
    GET("/clinique/inscription/envoyee/", everyone(200)),
    GET("/clinique/invitation/not-a-token/", everyone(404)),
    GET(
        "/clinique/conseil/demandes/",
        but(302, guardian=403, admin_a=404, admin_b=404, board=200, analyst=404),
    ),
    GET(
        "/clinique/conseil/demandes/{registration}/",
        but(302, guardian=403, admin_a=404, admin_b=404, board=200, analyst=404),
    ),
    # A lost second factor: the board resets clinic administrators' (admin A's here).
    GET(
        "/clinique/conseil/administrateurs/",
        but(302, guardian=403, admin_a=404, admin_b=404, board=200, analyst=404),
    ),
    GET(
        "/clinique/conseil/administrateurs/{admin_membership_a}/deuxieme-facteur/",
        but(302, guardian=403, admin_a=404, admin_b=404, board=200, analyst=404),
    ),
    # The clinic's EMR health and agenda conflicts (pages served by sync): any staff role of the clinic.
    GET("/clinique/{clinic_a}/dme/", STAFF_OF_A),
    GET("/clinique/{clinic_a}/dme/conflits/{conflict_a}/", STAFF_OF_A),
    # The EMR vendor portal: any account (a vendor signs up through allauth like everyone); nobody here
    # is a vendor, so the sandbox actions find nothing (404). The board reviews vendors and versions.
    GET("/fournisseurs/", account(signed_out=302, signed_in=200)),
    GET("/fournisseurs/inscription/", account(signed_out=302, signed_in=200)),
    GET("/fournisseurs/identifiants/", everyone(405)),
    GET("/fournisseurs/versions/", everyone(405)),
    GET("/fournisseurs/bac-a-sable/reserver/", everyone(405)),
    GET("/fournisseurs/versions/{version}/certification/", everyone(405)),
    GET("/fournisseurs/conseil/", but(302, guardian=403, admin_a=404, admin_b=404, board=200, analyst=404)),
    GET(
        "/fournisseurs/conseil/{vendor}/",
        but(302, guardian=403, admin_a=404, admin_b=404, board=200, analyst=404),
    ),
    GET(
        "/fournisseurs/conseil/versions/",
        but(302, guardian=403, admin_a=404, admin_b=404, board=200, analyst=404),
    ),
    GET(
        "/fournisseurs/conseil/versions/{version}/",
        but(302, guardian=403, admin_a=404, admin_b=404, board=200, analyst=404),
    ),
    # Which EMR product may act for the clinic: its administrators and the board (no patient data).
    GET(
        "/clinique/{clinic_a}/dme/acces/",
        but(302, guardian=403, admin_a=200, admin_b=404, board=200, analyst=404),
    ),
    # POST-only actions: any GET is refused before anything else.
    GET("/clinique/{clinic_a}/telephone/reserver/", everyone(405)),
    GET("/clinique/{clinic_a}/rendez-vous/{appointment}/annuler/", everyone(405)),
    GET("/clinique/{clinic_a}/rendez-vous/{appointment}/presence/", everyone(405)),
    # Django's admin (the board's register of privacy incidents): board administrators who proved
    # their second factor; everyone else is sent to its sign-in. The rest are in ``admin_rows``.
    GET("/gestion/login/", but(200, board=302)),  # already in: sent on to the index
    GET("/gestion/logout/", but(302, board=405)),  # signing out is a POST
    GET("/gestion/auth/", but(302, board=404)),  # no model of that app is theirs
    GET("/gestion/nothing-here/", but(302, board=404)),
    # Provincial reporting (booking/reporting): analysts only; clinic staff and the board
    # administrator hold no analyst role (403). The analysts' API takes a session only: a citizen's
    # or an EMR's bearer token is no analyst (403).
    GET("/analyses/", but(302, guardian=403, admin_a=403, admin_b=403, board=403, analyst=200)),
    GET("/analyses/export.csv", but(302, guardian=403, admin_a=403, admin_b=403, board=403, analyst=200)),
    GET("/analyses/export.json", but(302, guardian=403, admin_a=403, admin_b=403, board=403, analyst=200)),
    GET("/api/reporting/v1/figures", but(403, analyst=200)),
    GET("/api/reporting/v1/rows", but(403, analyst=200)),
    # A clinic's own figures beside its region's: the clinic's administrator only.
    GET(
        "/clinique/{clinic_a}/indicateurs/",
        but(302, guardian=403, admin_a=200, admin_b=404, board=404, analyst=404),
    ),
    # Open data (SMART Scheduling Links): public files, written by a task in the fixture below.
    GET("/donnees-ouvertes/$bulk-publish", everyone(200)),
    GET("/donnees-ouvertes/nothing-here.ndjson", everyone(404)),
    # Citizen pages.
    GET("/", everyone(200)),
    GET("/identification/", everyone(200)),
    GET("/recherche/", IDENTIFIED),
    # The waiting room's queue page: off here (WAITING_ROOM_ENABLED false), it sends everyone on to the
    # search (tests/booking/test_waiting_room.py tests it on).
    GET("/file-attente/", everyone(302)),
    # The challenge under abnormal load: off here, it sends everyone on (tests/booking/test_challenge.py).
    GET("/verification/", everyone(302)),
    POST("/verification/", everyone(302)),
    GET("/rendez-vous/", IDENTIFIED),
    GET("/rendez-vous/retrouver/", everyone(200)),
    GET("/rendez-vous/{appointment}/", but(404, citizen_a=200)),
    GET("/rendez-vous/{appointment}/calendrier.ics", but(404, citizen_a=200)),
    GET("/rendez-vous/{appointment}/annuler/", but(404, citizen_a=200)),
    GET("/rendez-vous/{appointment}/changer/", but(302, citizen_a=200, citizen_b=404, guardian=404)),
    # A dependant's appointment: their guardian acts on it, nobody else reaches it.
    GET("/rendez-vous/{dependant_appointment}/", PAGE_OWN_DEPENDANT),
    GET("/rendez-vous/{dependant_appointment}/calendrier.ics", PAGE_OWN_DEPENDANT),
    GET("/rendez-vous/{dependant_appointment}/annuler/", PAGE_OWN_DEPENDANT),
    GET(
        "/rendez-vous/{dependant_appointment}/changer/",
        but(302, citizen_a=404, citizen_b=404, guardian=200),
    ),
    GET("/recherche/?patient={dependant}", but(302, citizen_a=404, citizen_b=404, guardian=200)),
    # The e-mail's cancel link: the signed token is the credential, whoever opens it.
    GET("/annulation/{cancel_token}/", everyone(200)),
    GET("/annulation/not-a-token/", everyone(404)),
    # The waitlist: asking needs a card identified in this session; the offer's link carries its own
    # single-use token, the credential whoever opens it (its POST books: tests/booking).
    GET("/liste-attente/demande/", IDENTIFIED),
    GET("/liste-attente/demande/?patient={dependant}", but(302, citizen_a=404, citizen_b=404, guardian=200)),
    # Law 25: the citizen's own data (their dependants' too) and closing the account (docs/privacy.md).
    GET("/mes-donnees/", IDENTIFIED),
    GET("/fermer-mon-compte/", IDENTIFIED),
    GET("/liste-attente/{waitlist_a}/retirer/", everyone(405)),
    GET("/offre/{offer_token}/", everyone(200)),
    GET("/offre/not-a-token/", everyone(404)),
    # The board's help desk: board administrators only (tests/ops/test_helpdesk.py for the lookups).
    GET("/soutien/", but(302, guardian=403, admin_a=403, admin_b=403, board=200, analyst=403)),
    # A public slot: any identified citizen may hold it (the others are sent to identify), then
    # sees its confirmation page.
    POST("/plages/{slot}/retenir/", everyone(302)),
    GET("/plages/{slot}/confirmer/", IDENTIFIED),
    # Writes by the wrong person change nothing (the right person's come last, they change state).
    POST("/rendez-vous/{appointment}/annuler/", but(404, citizen_a=302), reason="other"),
    POST("/mes-donnees/", IDENTIFIED),  # the JSON file, of the caller's own data only
    # Without the confirmation box: refused (400) before anything is closed.
    POST("/fermer-mon-compte/", but(302, citizen_a=400, citizen_b=400, guardian=400)),
    POST(
        "/liste-attente/{waitlist_a}/retirer/", but(302, citizen_b=404, guardian=404)
    ),  # others: sent to identify
    POST("/api/v1/waitlist/{waitlist_a}/withdraw", but(401, citizen_a=200, citizen_b=404, guardian=404)),
    POST("/rendez-vous/{dependant_appointment}/annuler/", but(404, guardian=302), reason="other"),
    POST(
        "/clinique/{clinic_a}/telephone/",
        but(302, guardian=403, admin_a=403, admin_b=404, board=404, analyst=404),
        action="find",
    ),
    POST(
        "/clinique/{clinic_a}/telephone/reserver/",
        but(302, guardian=403, admin_a=403, admin_b=404, board=404, analyst=404),
        slot="1",
    ),
    POST(
        "/clinique/{clinic_a}/rendez-vous/{appointment}/annuler/",
        but(302, guardian=403, admin_a=403, admin_b=404, board=404, analyst=404),
    ),
    POST(
        "/clinique/{clinic_a}/rendez-vous/{appointment}/presence/",
        but(302, guardian=403, admin_a=403, admin_b=404, board=404, analyst=404),
        status="noshow",
    ),
    POST(
        "/clinique/{clinic_a}/parametres/",
        but(302, guardian=403, admin_a=422, admin_b=404, board=404, analyst=404),
        phone="1",
    ),
    POST(
        "/clinique/{clinic_a}/plages/nouvelle/",
        but(302, guardian=403, admin_a=403, admin_b=404, board=404, analyst=404),
    ),
    POST(
        "/clinique/{clinic_a}/personnel/{membership_a}/deuxieme-facteur/",
        but(302, guardian=403, admin_b=404, board=404, analyst=404),
    ),
    POST(
        "/clinique/{clinic_a}/personnel/inviter/",  # nothing filled in: the form's errors
        but(302, guardian=403, admin_a=422, admin_b=404, board=404, analyst=404),
    ),
    POST(
        "/clinique/{clinic_a}/personnel/invitations/{invitation_a}/renvoyer/",
        but(302, guardian=403, admin_b=404, board=404, analyst=404),
    ),
    POST(
        "/clinique/{clinic_a}/personnel/invitations/{invitation_a}/retirer/",
        but(302, guardian=403, admin_b=404, board=404, analyst=404),
    ),
    POST(
        "/clinique/{clinic_a}/personnel/{membership_a}/desactiver/",
        but(302, guardian=403, admin_b=404, board=404, analyst=404),
    ),
    POST(
        "/clinique/conseil/demandes/{registration}/",
        but(302, guardian=403, admin_a=404, admin_b=404, board=302, analyst=404),
        action="reject",
        reason="Incomplete.",
    ),
    POST(
        "/clinique/{clinic_a}/dme/conflits/{conflict_a}/",
        but(302, guardian=403, admin_b=404, board=404, analyst=404),
        resolution="keep",
    ),
    POST("/fournisseurs/inscription/", account(signed_out=302, signed_in=422), company=""),
    POST("/fournisseurs/identifiants/", account(signed_out=302, signed_in=404)),
    POST("/fournisseurs/versions/", account(signed_out=302, signed_in=404), version="2.0"),
    POST("/fournisseurs/bac-a-sable/reserver/", account(signed_out=302, signed_in=404), slot="1"),
    POST("/fournisseurs/versions/{version}/certification/", account(signed_out=302, signed_in=404)),
    POST(
        "/fournisseurs/conseil/{vendor}/",
        but(302, guardian=403, admin_a=404, admin_b=404, board=302, analyst=404),
        action="reject",
        reason="Incomplete.",
    ),
    POST(
        "/fournisseurs/conseil/versions/{version}/",
        but(302, guardian=403, admin_a=404, admin_b=404, board=302, analyst=404),
        action="revoke",
        note="Checked.",
    ),
    POST(
        "/clinique/{clinic_a}/dme/acces/",  # clinic A's product is granted already: nothing changes
        but(302, guardian=403, admin_b=404, analyst=404),
        action="grant",
    ),
    # Last: these end or change the session.
    POST("/i18n/setlang/", everyone(302), language="en"),
    POST("/fin-de-session/", everyone(302)),
]


def admin_rows() -> list[Row]:
    """Every other /gestion/ page, on object 1: Django's admin sends everyone here to its sign-in."""
    rows = []
    for route in all_routes():
        if route.startswith("gestion/") and "^" not in route and "(?P" not in route:
            path = "/" + route.replace("<path:object_id>", "1").replace("<path:content_type_id>", "1")
            if path not in {row.path for row in MATRIX}:
                rows.append(GET(path, everyone(302)))
    return rows


def all_routes() -> list[str]:
    def walk(patterns, prefix=""):
        for pattern in patterns:
            if isinstance(pattern, URLResolver):
                yield from walk(pattern.url_patterns, prefix + str(pattern.pattern))
            else:
                assert isinstance(pattern, URLPattern)
                # Django's resolver reports regex routes without their "^" anchors.
                yield (prefix + str(pattern.pattern)).replace("^", "")

    return list(walk(get_resolver().url_patterns))


# The objects each row is about, and the personas' clients.


@dataclass
class Objects:
    ids: dict[str, object]
    clients: dict[str, Client]


@pytest.fixture
def objects(world, settings, tmp_path) -> Objects:
    # The feed's polling budget (one poll per interval) is tested in tests/sync; here both feed
    # endpoints are read one after the other.
    settings.SYNC_FEED_MIN_INTERVAL_SECONDS = 0
    # The test client's loopback address is allow-listed for /metrics by default; not here.
    settings.METRICS_ALLOWED_IPS = []
    settings.OPENDATA_ROOT = tmp_path / "opendata"
    web_a = ClinicFactory(name="Clinique A sans DME")
    ClinicMembership.objects.create(user=world.admin_a, clinic=web_a, role=ClinicMembership.Role.CLINIC_ADMIN)
    world.clinic_a.emr_product = "ClinIQ"
    world.clinic_a.save(update_fields=["emr_product"])
    world.clinic_b.emr_product = "Santexa"
    world.clinic_b.save(update_fields=["emr_product"])
    citizen_a = CitizenFactory()
    citizen_b = CitizenFactory(first_name="Paul", last_name="Roy", sex="M")
    booked = SlotFactory(role=world.role_a)
    appointment = appointment_book(
        slot_id=booked.pk, citizen=citizen_a, reason=Reason.FOLLOW_UP, channel="portal"
    )
    slot = SlotFactory(role=world.role_a)
    FsaFactory()
    today = timezone.localdate()
    # Through the day after tomorrow: the offered slot starts in 5 h, on the next day after 19:00.
    waiting = waitlist_request_create(
        citizen=citizen_a,
        path="near",
        reason=Reason.FOLLOW_UP,
        date_from=today,
        date_to=today + timedelta(days=2),
        fsa="H2X",
    )
    offer = waitlist_offer_next(
        slot_id=SlotFactory(role=world.role_a, start=timezone.now() + timedelta(hours=5)).pk
    )
    assert offer is not None
    guardian = CitizenFactory(first_name="Marc", last_name="Côté", sex="M", account=make_account())
    dependant = Dependant.objects.create(
        guardian=guardian,
        citizen=CitizenFactory(first_name="Léa", last_name="Côté", birth_date=date(2019, 6, 1)),
        relationship=Dependant.Relationship.PARENT,
        attested_at=timezone.now(),
    )
    dependant_appointment = appointment_book(
        slot_id=SlotFactory(role=world.role_a).pk,
        citizen=dependant.citizen,
        reason=Reason.CHILD,
        channel="portal",
    )
    opendata_publish()
    analyst = make_account(with_totp=True)
    BoardRole.objects.create(user=analyst, role=BoardRole.Role.ANALYST)
    emr = {}
    for name, product, clinic, role in (
        ("emr_a", "Vendeur A|ClinIQ", world.clinic_a, world.role_a),
        ("emr_b", "Vendeur B|Santexa", world.clinic_b, world.role_b),
    ):
        client_id, secret = create_client(product, clinic)
        emr[name] = EmrPersona(client_id, secret, clinic, role)
    subscription = WebhookSubscription.objects.create(
        emr_client=EmrClient.objects.get(application__client_id=emr["emr_a"].client_id),
        endpoint="https://emr-a.example.ca/hook",
        secret="s" * 32,
    )
    snapshot = AgendaSnapshot.objects.create(
        emr_client=subscription.emr_client,
        role=world.role_a,
        window_start=booked.start,
        window_end=booked.end,
        generation=1,
        status=AgendaSnapshot.Status.DONE,
        digest="0" * 64,
    )
    registration = RegistrationRequest.objects.create(
        name="Clinique demandée",
        address="1 rue Principale",
        city="Montréal",
        postal_code="H2X 1K4",
        region=world.clinic_a.region,
        phone="514 555-0100",
        admin_name="Admin",
        admin_email="admin@example.org",
        attested=True,
        submitted_at=appointment.created_at,
    )
    vendor = vendor_register(
        user=make_account(),
        company="Éditeur",
        product_name="NouveauDME",
        technical_email="tech@editeur.example",
        language="fr",
    )
    version = EmrProductVersion.objects.create(
        product=EmrProduct.objects.get(name="Santexa"), version="2.0", status="requested"
    )
    conflict = SyncConflict.objects.create(
        clinic=world.clinic_a,
        slot=booked,
        appointment=appointment,
        kind=SyncConflict.Kind.BOOKED_SLOT_REMOVED,
        snapshot=snapshot,
    )
    ids = {
        "clinic_a": world.clinic_a.pk,
        "registration": registration.pk,
        "vendor": vendor.pk,
        "version": version.pk,
        "conflict_a": conflict.pk,
        "snapshot_a": snapshot.pk,
        "web_a": web_a.pk,
        "gmf_a": world.clinic_a.gmf_id,
        "practitioner_a": world.role_a.practitioner_id,
        "role_a": world.role_a.pk,
        "membership_a": ClinicMembership.objects.get(user=world.receptionist_a).pk,
        "invitation_a": staff_invite(
            clinic=world.clinic_a,
            by=world.admin_a,
            email="invitee@example.org",
            role="receptionist",
            language="fr",
        ).pk,
        "admin_membership_a": world.membership(world.admin_a).pk,
        "slot": slot.pk,
        "appointment": appointment.pk,
        "cancel_token": cancel_token_make(appointment),
        "waitlist_a": waiting.pk,
        "offer_token": offer.token,
        "subscription_a": subscription.pk,
        "dependant": dependant.pk,
        "dependant_appointment": dependant_appointment.pk,
    }

    def citizen_client(citizen) -> Client:
        client = Client()
        assert client.post("/identification/", identify_payload(citizen)).status_code == 302
        client.defaults["HTTP_AUTHORIZATION"] = f"Bearer {citizen_token_make(citizen)[0]}"
        return client

    def guardian_client() -> Client:
        client = sign_in(Client(), guardian.account)  # an account with the card linked: no card asked
        client.defaults["HTTP_AUTHORIZATION"] = f"Bearer {citizen_token_make(guardian)[0]}"
        return client

    def emr_client(persona: EmrPersona) -> Client:
        client = Client()
        client.defaults["HTTP_AUTHORIZATION"] = f"Bearer {get_token(Client(), persona)}"
        return client

    clients = {
        "anonymous": lambda: Client(),
        "citizen_a": lambda: citizen_client(citizen_a),
        "citizen_b": lambda: citizen_client(citizen_b),
        "guardian": guardian_client,
        "admin_a": lambda: sign_in(Client(), world.admin_a),
        "admin_b": lambda: sign_in(Client(), world.admin_b),
        "emr_a": lambda: emr_client(emr["emr_a"]),
        "emr_b": lambda: emr_client(emr["emr_b"]),
        "board": lambda: sign_in(Client(), world.board_admin),
        "analyst": lambda: sign_in(Client(), analyst),
    }
    return Objects(ids=ids, clients=clients)


def test_every_url_of_the_project_is_in_the_matrix():
    # A row may carry a query string (a dependant's id as ``patient``): the route is the path's.
    covered = {resolve(row.path.split("?")[0].format_map(_AnyId())).route for row in MATRIX + admin_rows()}
    missing = [route for route in all_routes() if route not in covered]
    assert missing == [], "add this URL to the matrix (tests/security/test_permission_matrix.py): " + str(
        missing
    )


class _AnyId(dict):
    def __missing__(self, key):
        return "1"


@pytest.mark.parametrize("persona", PERSONAS)
def test_each_persona_gets_the_expected_status_on_every_url(persona, objects):
    client = objects.clients[persona]()
    wrong = []
    for row in MATRIX + admin_rows():
        path = row.path.format(**objects.ids)
        response = client.post(path, row.data) if row.method == "POST" else client.get(path)
        if response.status_code != row.expected[persona]:
            wrong.append(f"{row.method} {row.path}: {response.status_code}, expected {row.expected[persona]}")
    assert wrong == [], f"{persona}:\n" + "\n".join(wrong)
