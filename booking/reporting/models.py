"""Summary tables of provincial reporting: one row per clinic and ISO week, rolled up per region.

No personal data: counts only. Filled by ``booking.reporting.aggregate`` from slots, appointments and
searches without result; read by ``booking.reporting.selectors``. docs/metrics.md defines each figure.
"""

from django.db import models
from django.db.models import Q
from django.utils.translation import gettext_lazy as _


class WeekStat(models.Model):
    """The figures of one clinic (``clinic`` set) or one region (``clinic`` empty: the rollup of that
    region's clinic rows) for one ISO week, Monday to Sunday in the clinic's time zone.

    Region and GMF are copied from the clinic when the row is computed, so that the dashboard filters
    without joins. Breakdowns are small JSON maps (code → count). ``lead_hist`` counts occupying
    appointments by lead time bin (``booking.reporting.figures.LEAD_BINS``): medians and 90th
    percentiles of any set of rows are read from the sum of their histograms.
    """

    week = models.DateField(help_text=_("Monday of the ISO week."))
    clinic = models.ForeignKey(
        "clinics.Clinic", null=True, blank=True, on_delete=models.CASCADE, related_name="+"
    )
    region = models.ForeignKey("clinics.Region", on_delete=models.PROTECT, related_name="+")
    gmf = models.ForeignKey("clinics.Gmf", null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    clinics = models.PositiveIntegerField(default=1)
    slots_offered = models.PositiveIntegerField(default=0)
    slots_booked = models.PositiveIntegerField(default=0)
    slots_emr = models.PositiveIntegerField(default=0)
    appointments = models.PositiveIntegerField(default=0)
    attended = models.PositiveIntegerField(default=0)
    noshow = models.PositiveIntegerField(default=0)
    cancelled = models.PositiveIntegerField(default=0)
    offered_by_audience = models.JSONField(default=dict)
    offered_by_reason = models.JSONField(default=dict)
    offered_by_modality = models.JSONField(default=dict)
    booked_by_channel = models.JSONField(default=dict)
    cancelled_by_reason = models.JSONField(default=dict)
    cancelled_by_timing = models.JSONField(default=dict)
    cancelled_by_actor = models.JSONField(default=dict)
    lead_hist = models.JSONField(default=list)
    computed_at = models.DateTimeField()

    class Meta:
        verbose_name = _("weekly figures")
        indexes = [
            models.Index(fields=["region", "week"], name="weekstat_region_week"),
            models.Index(fields=["gmf", "week"], name="weekstat_gmf_week"),
        ]
        constraints = [
            models.UniqueConstraint(
                fields=["clinic", "week"],
                condition=Q(clinic__isnull=False),
                name="weekstat_one_per_clinic_week",
            ),
            models.UniqueConstraint(
                fields=["region", "week"],
                condition=Q(clinic__isnull=True),
                name="weekstat_one_rollup_per_region",
            ),
        ]

    def __str__(self) -> str:
        return f"Week {self.week} clinic #{self.clinic_id} region {self.region_id}"


class DemandWeek(models.Model):
    """Searches that found no slot, by ISO week (Quebec time), region, FSA and reason.

    ``waitlist_length`` stays empty until the waitlist exists: ``booking.reporting.hooks`` names the
    one function that will fill it, per region and week, on the region's row with an empty FSA.
    """

    week = models.DateField()
    region = models.ForeignKey(
        "clinics.Region", null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    fsa = models.CharField(max_length=3, blank=True)
    reason = models.CharField(max_length=20, blank=True)
    misses = models.PositiveIntegerField(default=0)
    waitlist_length = models.PositiveIntegerField(null=True, blank=True)
    computed_at = models.DateTimeField()

    class Meta:
        verbose_name = _("unmet demand")
        indexes = [models.Index(fields=["week", "region"], name="demandweek_week_region")]

    def __str__(self) -> str:
        return f"Demand {self.week} {self.region_id} {self.fsa} {self.reason}"


class ReportingWatermark(models.Model):
    """Where the incremental aggregation stopped, per source ("outbox", "searchmiss")."""

    source = models.CharField(max_length=20, primary_key=True)
    until = models.DateTimeField()

    class Meta:
        verbose_name = _("reporting watermark")

    def __str__(self) -> str:
        return f"{self.source} until {self.until:%Y-%m-%d %H:%M}Z"


class ClinicActivity(models.Model):
    """The last change an EMR made to a clinic's slots or appointments, as the outbox recorded it:
    one of the two signals of sync health (the other, snapshots received, is sync's own)."""

    clinic = models.OneToOneField(
        "clinics.Clinic", primary_key=True, on_delete=models.CASCADE, related_name="+"
    )
    last_emr_change_at = models.DateTimeField()

    class Meta:
        verbose_name = _("clinic EMR activity")

    def __str__(self) -> str:
        return f"Clinic #{self.clinic_id} EMR activity {self.last_emr_change_at:%Y-%m-%d %H:%M}Z"


class ReportAccess(models.Model):
    """One read of the management information: who, what, with which filters, when (access audit).

    Filters hold codes and ids of regions, GMFs, clinics and weeks only, never personal data.
    """

    user = models.ForeignKey("citizens.User", on_delete=models.PROTECT, related_name="+")
    what = models.CharField(max_length=30)
    filters = models.JSONField(default=dict)
    at = models.DateTimeField(db_index=True)

    class Meta:
        verbose_name = _("report access")

    def __str__(self) -> str:
        return f"{self.what} by user #{self.user_id} at {self.at:%Y-%m-%d %H:%M}Z"
