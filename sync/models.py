"""EMR products, their API clients and the clinics that chose them.

An EMR client is one installation of an EMR product talking to us with OAuth 2.0 client
credentials (a django-oauth-toolkit ``Application``). It may act only for the clinics that chose its
product: a clinic is in scope while it has an active (unrevoked) grant for the product *and* its own
``Clinic.emr_product`` still names that product, so a clinic that changes product drops out of every
client of the old one at once, even before the old grant is revoked. ``sync.selectors`` holds the one
function that turns this into clinic ids; every API view goes through it.
"""

from django.conf import settings
from django.db import models
from django.db.models import Q
from django.utils.translation import gettext_lazy as _
from oauth2_provider.settings import oauth2_settings


class EmrProduct(models.Model):
    """An EMR software product, as clinics name it in ``Clinic.emr_product``."""

    vendor = models.CharField(max_length=100)
    name = models.CharField(max_length=100, help_text="As written in Clinic.emr_product.")

    class Meta:
        ordering = ["name"]
        verbose_name = "EMR product"
        constraints = [models.UniqueConstraint(fields=["vendor", "name"], name="emr_product_unique")]

    def __str__(self) -> str:
        return f"{self.vendor} | {self.name}"


class EmrClient(models.Model):
    """One API client of an EMR product (an OAuth 2.0 confidential client, client-credentials grant).

    ``scopes`` is the subset of ``settings.SYNC_SCOPES`` this client may ask for (space separated).
    An inactive client gets no token and its existing tokens are refused.
    """

    product = models.ForeignKey(EmrProduct, on_delete=models.PROTECT, related_name="clients")
    application = models.OneToOneField(
        oauth2_settings.APPLICATION_MODEL,
        on_delete=models.PROTECT,
        related_name="emr_client",
    )
    name = models.CharField(max_length=200)
    scopes = models.TextField(help_text="Allowed scopes, separated by spaces.")
    is_active = models.BooleanField(default=True)
    # A partner-sandbox client (docs/vendors.md): it acts only for sandbox clinics, and a production
    # client never for them (``sync.selectors.clinic_ids_for_emr_client``).
    is_sandbox = models.BooleanField(default=False, db_default=False)
    # The product version this installation runs: a production client acts for production clinics
    # only while this version is certified (``EmrProductVersion``).
    product_version = models.ForeignKey(
        "EmrProductVersion", null=True, blank=True, on_delete=models.PROTECT, related_name="clients"
    )
    created_at = models.DateTimeField(auto_now_add=True)
    # The last API call answered with a 2xx (to the minute: ``sync.health.emr_client_seen``), for the
    # clinic's "EMR health" panel.
    last_success_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        verbose_name = "EMR client"

    def __str__(self) -> str:
        return self.name

    @property
    def scope_list(self) -> list[str]:
        return [s for s in self.scopes.split() if s in settings.SYNC_SCOPES]


class EmrClientRetiredSecret(models.Model):
    """A client's previous secret while a rotation's overlap lasts (``sync.credentials``).

    Rotating gives the client a new secret at once (on its OAuth application, hashed by
    django-oauth-toolkit) and keeps the old one here, still hashed, until ``expires_at``: the token
    endpoint accepts either until then, so the vendor can roll the new secret out to every
    installation without a moment when none works; after it, only the new one.
    """

    emr_client = models.ForeignKey(EmrClient, on_delete=models.PROTECT, related_name="retired_secrets")
    secret_hash = models.CharField(
        max_length=255, help_text="The old secret, hashed as the application kept it."
    )
    retired_at = models.DateTimeField()
    expires_at = models.DateTimeField(db_index=True)

    class Meta:
        verbose_name = "EMR client retired secret"
        constraints = [
            models.CheckConstraint(
                condition=Q(expires_at__gte=models.F("retired_at")), name="retired_secret_expiry_valid"
            )
        ]

    def __str__(self) -> str:
        return f"retired secret of client #{self.emr_client_id} (until {self.expires_at:%Y-%m-%d %H:%M})"


class EmrClinicGrant(models.Model):
    """A clinic's choice of an EMR product: its clients may act for the clinic until revoked."""

    product = models.ForeignKey(EmrProduct, on_delete=models.PROTECT, related_name="grants")
    clinic = models.ForeignKey("clinics.Clinic", on_delete=models.PROTECT, related_name="+")
    granted_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    granted_at = models.DateTimeField(auto_now_add=True)
    revoked_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        verbose_name = "EMR access grant"
        constraints = [
            models.UniqueConstraint(
                fields=["product", "clinic"],
                condition=Q(revoked_at__isnull=True),
                name="emr_grant_one_active",
            )
        ]

    def __str__(self) -> str:
        return f"{self.product} → clinic #{self.clinic_id}"


class AuditEvent(models.Model):
    """One record of a citizen's data sent to an EMR client (invariant 7): who, which row, when, why.

    Ids only, never personal data, so that anonymizing old records keeps the log verifiable. One row
    per appointment returned, whether by a read, a search or a write's response. Each row is a link
    of a hash chain (``clinics.audit_chain``), so a row changed or deleted in SQL is detected.
    """

    class Action(models.TextChoices):
        READ = "read", "read"
        SEARCH = "search", "search"
        CREATE = "create", "create"
        UPDATE = "update", "update"
        FEED = "feed", "feed"
        WEBHOOK = "webhook", "webhook"

    emr_client = models.ForeignKey(EmrClient, on_delete=models.PROTECT, related_name="+")
    action = models.CharField(max_length=10, choices=Action.choices)
    resource_type = models.CharField(max_length=40)
    resource_id = models.BigIntegerField()
    at = models.DateTimeField(db_index=True)
    purpose = models.CharField(max_length=20, default="emr-sync")
    # The hash chain (clinics.audit_chain): written once by chain_append, checked by chain_verify.
    prev_hash = models.CharField(max_length=64, editable=False)
    chain_hash = models.CharField(max_length=64, editable=False)

    class Meta:
        verbose_name = "audit event"
        indexes = [models.Index(fields=["resource_type", "resource_id"], name="audit_resource")]

    def __str__(self) -> str:
        return f"{self.action} {self.resource_type}/{self.resource_id} by client #{self.emr_client_id}"


class WebhookSubscription(models.Model):
    """A webhook of an EMR client (FHIR ``Subscription``, channel ``rest-hook``): its change feed,
    pushed to its endpoint in feed order, signed with a secret that only we and the client hold.

    States: ``active`` (delivered by ``sync.webhooks``), ``dead`` (too many consecutive failures:
    nothing is sent until the client re-activates it; shown as FHIR status ``error``), ``off`` (the
    client deleted it; kept for history). ``last_delivered_seq`` is the subscription's cursor in the
    feed: it moves only when the endpoint acknowledged a delivery with a 2xx, so the events after it
    are exactly the ones not yet delivered (the dead letters, when the subscription is dead).

    ``secret`` is stored as given to the client, because signing needs it in the clear; it is shown
    once, in the answer to the creation, and never again.
    """

    class Status(models.TextChoices):
        ACTIVE = "active", "active"
        DEAD = "dead", "dead"
        OFF = "off", "off"

    emr_client = models.ForeignKey(EmrClient, on_delete=models.PROTECT, related_name="webhooks")
    endpoint = models.URLField(max_length=2000)
    secret = models.CharField(max_length=100, editable=False)
    # After a rotation (``webhooks.subscription_rotate_secret``), the old secret also signs each
    # delivery (X-RDV-Signature-Previous) until ``previous_secret_until``.
    previous_secret = models.CharField(max_length=100, blank=True, editable=False)
    previous_secret_until = models.DateTimeField(null=True, blank=True)
    criteria = models.CharField(max_length=200, default="Appointment")
    reason = models.CharField(max_length=200, blank=True)
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.ACTIVE)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)
    last_delivered_seq = models.BigIntegerField(default=0)
    last_delivered_at = models.DateTimeField(null=True, blank=True)
    last_attempt_at = models.DateTimeField(null=True, blank=True)
    # Consecutive failures since the last 2xx, and when that run of failures began.
    failures = models.PositiveIntegerField(default=0)
    failing_since = models.DateTimeField(null=True, blank=True)
    next_attempt_at = models.DateTimeField(null=True, blank=True)
    # An HTTP status or an exception class: never the endpoint's answer (it could echo anything).
    last_error = models.CharField(max_length=200, blank=True)

    class Meta:
        verbose_name = "webhook subscription"
        indexes = [models.Index(fields=["next_attempt_at"], name="webhook_due", condition=Q(status="active"))]
        constraints = [
            models.CheckConstraint(
                condition=Q(status__in=["active", "dead", "off"]), name="webhook_status_valid"
            )
        ]

    def __str__(self) -> str:
        return f"webhook #{self.pk} of client #{self.emr_client_id} ({self.status})"


class AgendaSnapshot(models.Model):
    """The complete agenda an EMR sent for one schedule (practitioner role) over ``[window_start,
    window_end)``: reconciled against the central store by ``sync.snapshots``.

    ``generation`` must grow per role: a snapshot whose generation is not above the last accepted one
    is refused (409), so that a stale snapshot arriving late can never bring withdrawn slots back.
    ``entries`` holds the validated slots (ids, times, codes: no personal data) for the worker;
    ``counts`` the outcome (created, updated, withdrawn, unchanged, conflicts, refused, kept).
    """

    class Status(models.TextChoices):
        RECEIVED = "received", "received"
        PROCESSING = "processing", "processing"
        DONE = "done", "done"
        FAILED = "failed", "failed"

    emr_client = models.ForeignKey(EmrClient, on_delete=models.PROTECT, related_name="+")
    role = models.ForeignKey("clinics.PractitionerRole", on_delete=models.PROTECT, related_name="+")
    window_start = models.DateTimeField()
    window_end = models.DateTimeField()
    generation = models.BigIntegerField()
    status = models.CharField(max_length=12, choices=Status.choices, default=Status.RECEIVED)
    received_at = models.DateTimeField(auto_now_add=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    digest = models.CharField(max_length=64, help_text="SHA-256 of the validated entries and window.")
    entries = models.JSONField(default=list)
    counts = models.JSONField(default=dict)
    error = models.TextField(blank=True)
    # The stuck-snapshot sweep (sync.snapshot_sweep): how many times it queued this snapshot again
    # because no worker had finished it, and when it last did.
    sweeps = models.PositiveSmallIntegerField(default=0)
    swept_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        verbose_name = "agenda snapshot"
        # The sweep reads only the unfinished ones, a handful among every snapshot ever received.
        indexes = [
            models.Index(
                fields=["received_at"],
                name="snapshot_unfinished",
                condition=Q(status__in=["received", "processing"]),
            )
        ]
        constraints = [
            models.UniqueConstraint(fields=["role", "generation"], name="snapshot_role_generation_unique"),
            models.CheckConstraint(
                condition=Q(window_end__gt=models.F("window_start")), name="snapshot_window_valid"
            ),
            models.CheckConstraint(
                condition=Q(status__in=["received", "processing", "done", "failed"]),
                name="snapshot_status_valid",
            ),
        ]

    def __str__(self) -> str:
        return f"snapshot #{self.pk} of role #{self.role_id} (generation {self.generation}, {self.status})"


class SyncConflict(models.Model):
    """A booked slot that an EMR snapshot removed or changed: the booking is kept, the slot is not
    touched, and the clinic decides. ``detail`` holds ids and times only, never personal data.

    The clinic resolves it once (``sync.conflicts.conflict_resolve``): ``keep`` the appointment as it
    is (the clinic puts it back in its EMR), ``move`` the citizen to another free slot (``moved_to``
    is the new appointment), or ``cancel`` it with notice. ``resolved_by`` and ``resolved_at`` say who
    and when; a resolved conflict never reopens (a later snapshot that still disagrees records a new
    one).
    """

    class Kind(models.TextChoices):
        BOOKED_SLOT_REMOVED = "booked_slot_removed", "booked slot removed"
        BOOKED_SLOT_CHANGED = "booked_slot_changed", "booked slot changed"
        # An EMR's desk booking (POST Appointment, e.g. sent on reconnection after being offline)
        # on a slot already booked here: the first committed booking stands, the desk one got 409.
        DESK_BOOKING_REFUSED = "desk_booking_refused", "desk booking refused"

    class Status(models.TextChoices):
        OPEN = "open", "open"
        RESOLVED = "resolved", "resolved"

    class Resolution(models.TextChoices):
        KEEP = "keep", "keep"
        MOVE = "move", "move"
        CANCEL = "cancel", "cancel"

    clinic = models.ForeignKey("clinics.Clinic", on_delete=models.PROTECT, related_name="+")
    slot = models.ForeignKey("booking.Slot", on_delete=models.PROTECT, related_name="+")
    appointment = models.ForeignKey(
        "booking.Appointment", null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    kind = models.CharField(max_length=25, choices=Kind.choices)
    # The snapshot that disagreed (none for a refused desk booking).
    snapshot = models.ForeignKey(
        AgendaSnapshot, null=True, blank=True, on_delete=models.PROTECT, related_name="conflicts"
    )
    detail = models.JSONField(default=dict)
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.OPEN)
    created_at = models.DateTimeField(auto_now_add=True)
    resolution = models.CharField(max_length=10, choices=Resolution.choices, blank=True)
    resolved_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    resolved_at = models.DateTimeField(null=True, blank=True)
    moved_to = models.ForeignKey(
        "booking.Appointment", null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    # Resolved through the FHIR API (Task/{id}/$resolve) by the clinic's EMR rather than by staff.
    resolved_by_client = models.ForeignKey(
        EmrClient, null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )

    class Meta:
        verbose_name = "synchronization conflict"
        indexes = [models.Index(fields=["clinic", "status"], name="sync_conflict_clinic_status")]
        constraints = [
            models.CheckConstraint(
                condition=Q(kind__in=["booked_slot_removed", "booked_slot_changed", "desk_booking_refused"]),
                name="sync_conflict_kind_valid",
            ),
            models.CheckConstraint(
                condition=Q(status__in=["open", "resolved"]), name="sync_conflict_status_valid"
            ),
            # Open: no resolution yet. Resolved: one of the three choices, with when.
            models.CheckConstraint(
                condition=Q(status="open", resolution="", resolved_at__isnull=True)
                | Q(status="resolved", resolution__in=["keep", "move", "cancel"], resolved_at__isnull=False),
                name="sync_conflict_resolution_valid",
            ),
            # One open conflict per slot and kind: a snapshot sent again records nothing new.
            models.UniqueConstraint(
                fields=["slot", "kind"], condition=Q(status="open"), name="sync_conflict_one_open"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.kind} on slot #{self.slot_id} ({self.status})"


class EmrProductVersion(models.Model):
    """One version of an EMR product and where it stands in certification (docs/vendors.md).

    ``sandbox``: the vendor is testing it in its partner sandbox; ``requested``: the vendor asked the
    board to certify it; ``certified``: the board confirmed its conformance, so clients declaring
    this version may act for production clinics; ``revoked``: the board withdrew the certification,
    and those clients lose their production clinics at once. Only ``sync.vendors`` changes it.
    """

    class Status(models.TextChoices):
        SANDBOX = "sandbox", _("In sandbox")
        REQUESTED = "requested", _("Certification requested")
        CERTIFIED = "certified", _("Certified")
        REVOKED = "revoked", _("Revoked")

    product = models.ForeignKey(EmrProduct, on_delete=models.PROTECT, related_name="versions")
    version = models.CharField(max_length=40)
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.SANDBOX)
    created_at = models.DateTimeField(auto_now_add=True)
    requested_at = models.DateTimeField(null=True, blank=True)
    decided_at = models.DateTimeField(null=True, blank=True)
    decided_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    note = models.TextField(blank=True, help_text="The board's note on its last decision.")
    # The conformance report (sync.conformance) as it stood when the vendor asked for certification:
    # what the board reviews.
    evidence = models.JSONField(default=dict, blank=True)

    class Meta:
        ordering = ["product_id", "created_at"]
        verbose_name = "EMR product version"
        constraints = [
            models.UniqueConstraint(fields=["product", "version"], name="emr_version_unique"),
            models.CheckConstraint(
                condition=Q(status__in=["sandbox", "requested", "certified", "revoked"]),
                name="emr_version_status_valid",
            ),
            # Certified or revoked: the board decided, and said why.
            models.CheckConstraint(
                condition=Q(status__in=["sandbox", "requested"])
                | (Q(decided_at__isnull=False) & ~Q(note="")),
                name="emr_version_decision_noted",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.product} {self.version} ({self.status})"


class EmrVendor(models.Model):
    """An EMR vendor's request for partner-sandbox access and, once approved, its sandbox.

    Pending until a board administrator approves it (the product, a sandbox client, sandbox clinics
    with synthetic practitioners and citizens are created in one transaction: ``sync.vendors``) or
    rejects it with a reason. ``user`` is the vendor's own account (django-allauth); the technical
    contact receives the decision in ``language``. One open request or approved vendor per account.
    """

    class Status(models.TextChoices):
        PENDING = "pending", _("Awaiting review")
        APPROVED = "approved", _("Approved")
        REJECTED = "rejected", _("Rejected")

    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+")
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.PENDING)
    company = models.CharField(max_length=200)
    product_name = models.CharField(max_length=100)
    technical_email = models.EmailField()
    language = models.CharField(max_length=2, default="fr")
    submitted_at = models.DateTimeField(db_index=True)
    decided_at = models.DateTimeField(null=True, blank=True)
    decided_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    decision_reason = models.TextField(blank=True)
    product = models.ForeignKey(
        EmrProduct, null=True, blank=True, on_delete=models.PROTECT, related_name="vendors"
    )
    sandbox_client = models.OneToOneField(
        EmrClient, null=True, blank=True, on_delete=models.PROTECT, related_name="sandbox_vendor"
    )
    # When the vendor last had its sandbox secret shown (None: never; the first one has no overlap).
    credentials_issued_at = models.DateTimeField(null=True, blank=True)
    sandbox_clinics = models.ManyToManyField("clinics.Clinic", blank=True, related_name="+")
    synthetic_citizens = models.ManyToManyField("citizens.Citizen", blank=True, related_name="+")

    class Meta:
        ordering = ["submitted_at"]
        verbose_name = "EMR vendor"
        constraints = [
            models.CheckConstraint(
                condition=Q(status__in=["pending", "approved", "rejected"]), name="vendor_status_valid"
            ),
            models.CheckConstraint(
                condition=Q(status="pending", decided_at__isnull=True, sandbox_client__isnull=True)
                | Q(status="approved", decided_at__isnull=False, sandbox_client__isnull=False)
                | (
                    Q(status="rejected", decided_at__isnull=False, sandbox_client__isnull=True)
                    & ~Q(decision_reason="")
                ),
                name="vendor_decision_consistent",
            ),
            models.UniqueConstraint(
                fields=["user"],
                condition=Q(status__in=["pending", "approved"]),
                name="vendor_one_open_per_user",
            ),
        ]

    def __str__(self) -> str:
        return f"EMR vendor #{self.pk} ({self.status})"


class SandboxRequest(models.Model):
    """One FHIR API request of a sandbox client, for the conformance kit (``sync.conformance``).

    Written by ``FhirView.finalize_response`` for sandbox clients only (one insert per request,
    nothing for production clients), pruned after ``SYNC_SANDBOX_REQUEST_DAYS``. What was asked and
    answered, never a body nor a person's data: ``identifier`` is the EMR's own identifier of the
    slot or booking (conditional update, ``Appointment.identifier``), ``resource_id`` our id.
    """

    emr_client = models.ForeignKey(EmrClient, on_delete=models.CASCADE, related_name="+")
    at = models.DateTimeField()
    method = models.CharField(max_length=8)
    resource_type = models.CharField(max_length=40, blank=True)
    interaction = models.CharField(max_length=20)
    status = models.PositiveSmallIntegerField()
    outcome_code = models.CharField(max_length=40, blank=True)
    if_match = models.BooleanField(default=False)
    if_none_exist = models.BooleanField(default=False)
    identifier = models.CharField(max_length=100, blank=True)
    resource_id = models.BigIntegerField(null=True, blank=True)
    # The change feed: the cursor asked for, the next one answered, the entries returned.
    cursor = models.BigIntegerField(null=True, blank=True)
    next_cursor = models.BigIntegerField(null=True, blank=True)
    entries = models.PositiveIntegerField(null=True, blank=True)

    class Meta:
        verbose_name = "sandbox request"
        indexes = [models.Index(fields=["emr_client", "at"], name="sandbox_request_client_at")]

    def __str__(self) -> str:
        return f"{self.method} {self.resource_type} {self.status}"
