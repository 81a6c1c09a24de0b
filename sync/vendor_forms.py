"""Forms of the vendor portal and of the board's vendor pages (docs/vendors.md)."""

from django import forms
from django.utils.translation import gettext_lazy as _

from citizens.forms import AccessibleFormMixin


class VendorRegistrationForm(AccessibleFormMixin, forms.Form):
    company = forms.CharField(
        label=_("Company"),
        max_length=200,
        error_messages={"required": _("Enter your company's name.")},
    )
    product_name = forms.CharField(
        label=_("EMR product"),
        help_text=_("The product's name as clinics know it, without its version."),
        max_length=100,
        error_messages={"required": _("Enter the name of your EMR product.")},
    )
    technical_email = forms.EmailField(
        label=_("Technical contact e-mail"),
        help_text=_("The board's decision and technical notices are sent there."),
        error_messages={
            "required": _("Enter the e-mail address of your technical contact."),
            "invalid": _("Enter an e-mail address such as name@example.com."),
        },
    )


class VersionForm(AccessibleFormMixin, forms.Form):
    version = forms.CharField(
        label=_("Product version"),
        help_text=_("As your product shows it, for example 4.2.1."),
        max_length=40,
        error_messages={"required": _("Give the version as your product shows it, for example 4.2.1.")},
    )


class NoteForm(AccessibleFormMixin, forms.Form):
    note = forms.CharField(
        label=_("Note"),
        help_text=_("Kept with the decision and shown to the vendor: what was checked, or what is missing."),
        max_length=2000,
        widget=forms.Textarea(attrs={"rows": 4}),
        error_messages={"required": _("Write a note: it stays with the decision.")},
    )


class TakeSlotForm(AccessibleFormMixin, forms.Form):
    slot = forms.IntegerField(
        label=_("Slot id"),
        help_text=_("The id our API gave one of your sandbox slots (Slot/<id>)."),
        min_value=1,
        error_messages={
            "required": _("Give the id of one of your sandbox slots, for example 1234."),
            "invalid": _("A slot id is a whole number, for example 1234."),
            "min_value": _("A slot id is a whole number, for example 1234."),
        },
    )
