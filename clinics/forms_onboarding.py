"""Onboarding forms: the public registration request, the board's decision, the invitation's account."""

import re
from typing import Any

from django import forms
from django.contrib.auth.password_validation import validate_password
from django.utils.translation import gettext_lazy as _

from citizens.forms import AccessibleFormMixin

from .models import QUEBEC_TIME_ZONES, Fsa, Gmf
from .selectors_onboarding import emr_product_names, gmf_choices
from .services_onboarding import PractitionerEntry

POSTAL_CODE_RE = re.compile(r"^([A-Z]\d[A-Z])\s?(\d[A-Z]\d)$")
PHONE_DIGITS_RE = re.compile(r"\D")
RAMQ_RE = re.compile(r"^\d{6}$")
NAME_RE = re.compile(r"^[^\W\d_](?:[^\W\d_]|[ '’.-])*$")
MAX_PRACTITIONERS = 60

TIME_ZONE_LABELS = {
    "America/Toronto": _("Eastern time (most of Quebec) — America/Toronto"),
    "America/Halifax": _("Atlantic time (Îles-de-la-Madeleine) — America/Halifax"),
    "America/Blanc-Sablon": _("Atlantic time, no daylight saving (Basse-Côte-Nord) — America/Blanc-Sablon"),
}
NO_EMR = ""


def postal_code_normalize(value: str) -> str:
    """``h2x1k4`` or ``H2X 1K4`` → ``H2X 1K4``; a ValidationError when it is not a Canadian code."""
    match = POSTAL_CODE_RE.match(value.strip().upper())
    if not match:
        raise forms.ValidationError(_("Enter the postal code in the format A1A 1A1."))
    return f"{match.group(1)} {match.group(2)}"


def phone_normalize(value: str) -> str:
    """Ten digits (a leading 1 is dropped), written ``514 555-0100``."""
    digits = PHONE_DIGITS_RE.sub("", value)
    if len(digits) == 11 and digits.startswith("1"):
        digits = digits[1:]
    if len(digits) != 10:
        raise forms.ValidationError(_("Enter a 10-digit phone number, for example 514 555-0100."))
    return f"{digits[:3]} {digits[3:6]}-{digits[6:]}"


class GmfChoiceField(forms.ModelChoiceField):
    def label_from_instance(self, obj: Gmf) -> str:
        return f"{obj.name} ({obj.region.name_fr})"


class RegistrationForm(AccessibleFormMixin, forms.Form):
    """What a clinic tells the board to join. Practitioners: one per line, ``RAMQ, first, last``."""

    name = forms.CharField(
        label=_("Clinic name"),
        max_length=200,
        error_messages={"required": _("Enter the clinic's name.")},
    )
    address = forms.CharField(
        label=_("Street address"),
        help_text=_("Number and street, for example 1234 rue Saint-Denis, bureau 200."),
        max_length=200,
        error_messages={"required": _("Enter the clinic's street address.")},
    )
    city = forms.CharField(label=_("City"), max_length=100, error_messages={"required": _("Enter the city.")})
    postal_code = forms.CharField(
        label=_("Postal code"),
        help_text=_("For example H2X 1K4. It tells us the clinic's health region."),
        max_length=8,
        widget=forms.TextInput(attrs={"autocomplete": "postal-code"}),
        error_messages={"required": _("Enter the postal code.")},
    )
    phone = forms.CharField(
        label=_("Clinic phone number"),
        help_text=_("The number patients call, for example 514 555-0100."),
        max_length=25,
        widget=forms.TextInput(attrs={"type": "tel", "autocomplete": "tel"}),
        error_messages={"required": _("Enter the clinic's phone number.")},
    )
    time_zone = forms.ChoiceField(
        label=_("Time zone"),
        choices=[(value, TIME_ZONE_LABELS[value]) for value, _label in QUEBEC_TIME_ZONES],
        initial="America/Toronto",
        widget=forms.RadioSelect,
        error_messages={"required": _("Choose the clinic's time zone.")},
    )
    gmf = GmfChoiceField(
        label=_("Family-medicine group (GMF)"),
        queryset=Gmf.objects.none(),
        required=False,
        empty_label=_("None: the clinic is not part of a GMF"),
        error_messages={"invalid_choice": _("Choose a GMF from the list, or none.")},
    )
    emr_product = forms.ChoiceField(
        label=_("Electronic medical record (EMR)"),
        help_text=_(
            "With an EMR, the clinic publishes its slots from it. "
            "Without one, it runs its agenda on this site."
        ),
        required=False,
        error_messages={"invalid_choice": _("Choose an EMR product from the list, or none.")},
    )
    practitioners = forms.CharField(
        label=_("Practitioners"),
        help_text=_(
            "One per line: RAMQ practitioner number (6 digits), first name, last name, separated by "
            "commas. For example: 123456, Marie, Tremblay"
        ),
        widget=forms.Textarea(attrs={"rows": 6, "spellcheck": "false"}),
        error_messages={"required": _("Name at least one practitioner.")},
    )
    admin_name = forms.CharField(
        label=_("Your name"),
        help_text=_("The person who will administer the clinic's account."),
        max_length=200,
        widget=forms.TextInput(attrs={"autocomplete": "name"}),
        error_messages={"required": _("Enter your name.")},
    )
    admin_email = forms.EmailField(
        label=_("Your e-mail address"),
        help_text=_("The decision, and the invitation if the request is approved, are sent here."),
        max_length=254,
        widget=forms.EmailInput(attrs={"autocomplete": "email"}),
        error_messages={
            "required": _("Enter your e-mail address."),
            "invalid": _("Enter an e-mail address such as name@example.ca."),
        },
    )
    attestation = forms.BooleanField(
        label=_(
            "I attest that I am authorized to register this clinic and that this information is accurate."
        ),
        error_messages={"required": _("Check the attestation to send the request.")},
    )

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.fields["gmf"].queryset = gmf_choices()  # type: ignore[attr-defined]
        products = emr_product_names()
        self.fields["emr_product"].choices = [  # type: ignore[attr-defined]
            (NO_EMR, _("None: the clinic will use this site's agenda")),
            *[(name, name) for name in products],
        ]

    def clean_name(self) -> str:
        return " ".join(self.cleaned_data["name"].split())

    def clean_address(self) -> str:
        return " ".join(self.cleaned_data["address"].split())

    def clean_city(self) -> str:
        return " ".join(self.cleaned_data["city"].split())

    def clean_postal_code(self) -> str:
        value = postal_code_normalize(self.cleaned_data["postal_code"])
        if not Fsa.objects.filter(code=value[:3]).exists():
            raise forms.ValidationError(
                _("%(code)s is not a Quebec postal code we know: check the first three characters."),
                params={"code": value},
            )
        return value

    def clean_phone(self) -> str:
        return phone_normalize(self.cleaned_data["phone"])

    def clean_admin_name(self) -> str:
        return " ".join(self.cleaned_data["admin_name"].split())

    def clean_practitioners(self) -> list[PractitionerEntry]:
        entries: list[PractitionerEntry] = []
        problems: list[forms.ValidationError] = []
        seen: set[str] = set()
        lines = [line.strip() for line in self.cleaned_data["practitioners"].splitlines()]
        for number, line in enumerate(lines, start=1):
            if not line:
                continue
            parts = [part.strip() for part in line.split(",")]
            if len(parts) != 3 or not all(parts):
                problems.append(
                    forms.ValidationError(
                        _(
                            "Line %(line)s: write the RAMQ number, the first name and the last name, "
                            "separated by commas."
                        ),
                        params={"line": number},
                    )
                )
                continue
            ramq, first, last = parts
            ramq = ramq.replace(" ", "")
            if not RAMQ_RE.match(ramq):
                problems.append(
                    forms.ValidationError(
                        _("Line %(line)s: a RAMQ practitioner number has exactly 6 digits."),
                        params={"line": number},
                    )
                )
            elif ramq in seen:
                problems.append(
                    forms.ValidationError(
                        _("Line %(line)s: this RAMQ number is already on an earlier line."),
                        params={"line": number},
                    )
                )
            if not (NAME_RE.match(first) and NAME_RE.match(last)) or len(first) > 100 or len(last) > 100:
                problems.append(
                    forms.ValidationError(
                        _(
                            "Line %(line)s: check the first and last names "
                            "(letters, spaces, hyphens, apostrophes)."
                        ),
                        params={"line": number},
                    )
                )
            seen.add(ramq)
            entries.append(PractitionerEntry(ramq_number=ramq, first_name=first, last_name=last))
        if problems:
            raise forms.ValidationError(problems)
        if not entries:
            raise forms.ValidationError(_("Name at least one practitioner."))
        if len(entries) > MAX_PRACTITIONERS:
            raise forms.ValidationError(
                _("At most %(max)s practitioners per request: send the others once the clinic is open."),
                params={"max": MAX_PRACTITIONERS},
            )
        return entries


class RejectForm(AccessibleFormMixin, forms.Form):
    reason = forms.CharField(
        label=_("Reason for the rejection"),
        help_text=_("Sent to the requester by e-mail. Say what is missing or wrong."),
        max_length=2000,
        widget=forms.Textarea(attrs={"rows": 4}),
        error_messages={"required": _("Give the reason for the rejection: the requester will read it.")},
    )


class InvitationAccountForm(AccessibleFormMixin, forms.Form):
    """The invited person's password, for a new account under the invited e-mail address."""

    password1 = forms.CharField(
        label=_("Choose a password"),
        help_text=_("At least 10 characters; avoid a password you use elsewhere."),
        strip=False,
        widget=forms.PasswordInput(attrs={"autocomplete": "new-password"}),
        error_messages={"required": _("Choose a password.")},
    )
    password2 = forms.CharField(
        label=_("The same password again"),
        strip=False,
        widget=forms.PasswordInput(attrs={"autocomplete": "new-password"}),
        error_messages={"required": _("Type the password a second time.")},
    )

    def __init__(self, *args: Any, email: str, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.email = email

    def clean(self) -> dict[str, Any]:
        data = super().clean() or {}
        first, second = data.get("password1"), data.get("password2")
        if first and second and first != second:
            self.add_error("password2", _("The two passwords differ."))
        elif first:
            from citizens.models import User

            try:
                validate_password(first, User(email=self.email))
            except forms.ValidationError as exc:
                self.add_error("password1", exc)
        return data
