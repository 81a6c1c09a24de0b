"""Screenshots of the clinic pages for docs/clinic-guide.md, in French, taken in headless Chromium.

Rerun from the repository root (nothing else needed than `make install` and Debian's chromium):

    SCREENSHOTS_DATABASE_URL=postgres://postgres@127.0.0.1:5432/<an empty database> \
        .venv/bin/python docs/screenshots.py

It touches no database but the one you name: it builds a throwaway demo in that empty PostgreSQL database
(or in SQLite in a temporary directory, which fails since the privacy-incident register's
ArrayField) (`manage.py migrate`, then `manage.py seed_demo --clinics 3 --days 7 --seed 1`), adds one demo
clinic administrator with a TOTP authenticator, signs them in the real way (password, then a TOTP
code) with Django's test client, starts `manage.py runserver` on a free port, copies the session
cookie into a Playwright context driving /usr/bin/chromium (never a downloaded browser), and saves
1280x800 PNGs under docs/img/clinic-guide/. The pages show the demo's invented people only.
Not part of `make test`. The demo data is built relative to today, so dates differ between runs.
"""

import os
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from datetime import date, timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "docs" / "img" / "clinic-guide"
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [  # as tests/browser_support.py: no background calls to Google's hosts
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
FRENCH = ["--lang=fr-CA"]  # the date and time inputs' own display follows the browser's language
PASSWORD = "demo-screenshots-only"  # noqa: S105 (a throwaway demo account)
MAX_BYTES = 250_000


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def manage(env: dict[str, str], *args: str) -> None:
    subprocess.run([sys.executable, "manage.py", *args], cwd=ROOT, env=env, check=True)  # noqa: S603


def wait_for(url: str, seconds: float = 60) -> None:
    deadline = time.monotonic() + seconds
    while True:
        try:
            urllib.request.urlopen(url, timeout=2)  # noqa: S310 (our own local server)
            return
        except urllib.error.HTTPError:
            return  # the server answers (a redirect to sign in, a 404: it is up)
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.5)


def main() -> None:
    workdir = Path(tempfile.mkdtemp(prefix="rdv-screenshots-"))
    env = {k: v for k, v in os.environ.items() if k not in {"REDIS_URL", "DATABASE_URL"}}
    env.update(
        DJANGO_DEBUG="true",
        DJANGO_SETTINGS_MODULE="config.settings",
        # An empty PostgreSQL database of your own (SCREENSHOTS_DATABASE_URL), or a throwaway SQLite
        # file; SQLite cannot build the privacy-incident register's ArrayField, so its migrate fails.
        DATABASE_URL=os.environ.get("SCREENSHOTS_DATABASE_URL") or f"sqlite:///{workdir / 'demo.sqlite3'}",
        ALLOWED_HOSTS="127.0.0.1,localhost,testserver",
    )
    manage(env, "compilemessages", "--ignore=.venv", "-v", "0")  # the .mo files are not in git
    manage(env, "migrate", "--no-input", "-v", "0")
    manage(env, "seed_demo", "--clinics", "3", "--days", "7", "--seed", "1")

    os.environ.update(env)
    sys.path.insert(0, str(ROOT))
    import django

    django.setup()
    from allauth.account.models import EmailAddress
    from allauth.mfa import app_settings as mfa_settings
    from allauth.mfa.totp.internal.auth import TOTP, format_hotp_value, generate_totp_secret, hotp_value
    from django.conf import settings
    from django.test import Client
    from django.urls import reverse
    from django.utils import timezone

    from booking.models import Appointment
    from citizens.models import Citizen, User
    from clinics.models import Clinic, ClinicMembership

    clinic = Clinic.objects.filter(emr_product="").order_by("pk").first()
    assert clinic is not None, "the demo has no clinic without an EMR"
    user = User.objects.create_user(email="admin.demo@example.org", password=PASSWORD)
    EmailAddress.objects.create(user=user, email=user.email, verified=True, primary=True)
    secret = generate_totp_secret()
    TOTP.activate(user, secret)
    ClinicMembership.objects.create(user=user, clinic=clinic, role=ClinicMembership.Role.CLINIC_ADMIN)

    client = Client()
    response = client.post(reverse("account_login"), {"login": user.email, "password": PASSWORD})
    assert response.status_code == 302 and response["Location"].startswith(reverse("mfa_authenticate"))
    code = format_hotp_value(hotp_value(secret, int(time.time()) // mfa_settings.TOTP_PERIOD))
    response = client.post(reverse("mfa_authenticate"), {"code": code})
    assert response.status_code == 302, response.content[:300]
    session_id = client.cookies[settings.SESSION_COOKIE_NAME].value

    # What the pages are shown with: the next booked appointment at least two hours ahead gives the
    # day, the practitioner and the phone caller; a clean week two weeks ahead for the template.
    today = timezone.now().astimezone(clinic.tz).date()
    tomorrow = today + timedelta(days=1)
    booked = Appointment.objects.filter(
        slot__role__clinic=clinic,
        status=Appointment.Status.BOOKED,
        slot__start__gte=timezone.now() + timedelta(hours=2),
    )
    first = booked.select_related("slot__role").order_by("slot__start").first()
    assert first is not None, "the demo clinic has no upcoming appointment"
    role = first.slot.role
    sheet_day = first.slot.start.astimezone(clinic.tz).date()
    caller = Citizen.objects.get(pk=first.citizen_id)
    monday = today + timedelta(days=14 - today.weekday())
    friday: date = monday + timedelta(days=4)

    port = free_port()
    base = f"http://127.0.0.1:{port}"
    server = subprocess.Popen(  # noqa: S603 (our own manage.py)
        [sys.executable, "manage.py", "runserver", "--noreload", f"127.0.0.1:{port}"],
        cwd=ROOT,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        wait_for(f"{base}/")
        take(
            base, session_id, clinic.pk, role.practitioner_id, caller.nam, sheet_day, tomorrow, monday, friday
        )
    finally:
        server.terminate()
        server.wait(timeout=20)
    for png in sorted(OUT.glob("*.png")):
        size = png.stat().st_size
        print(f"{png.relative_to(ROOT)}  {size // 1000} KB{'  TOO BIG' if size > MAX_BYTES else ''}")


def take(
    base: str,
    session_id: str,
    clinic_id: int,
    practitioner_id: int,
    nam: str,
    sheet_day: date,
    tomorrow: date,
    monday: date,
    friday: date,
) -> None:
    from playwright.sync_api import sync_playwright

    OUT.mkdir(parents=True, exist_ok=True)
    clinic = f"{base}/clinique/{clinic_id}"
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=CHROMIUM,
            args=CHROMIUM_ARGS + FRENCH,
            env=dict(os.environ, LANG="fr_CA.UTF-8", LANGUAGE="fr_CA:fr"),
        )
        context = browser.new_context(viewport={"width": 1280, "height": 800}, locale="fr-CA")
        context.add_cookies(
            [
                {"name": "sessionid", "value": session_id, "url": base},
                {"name": "django_language", "value": "fr", "url": base},
            ]
        )
        page = context.new_page()

        def shot(name: str, url: str = "", *, top: str = "") -> None:
            if url:
                page.goto(url)
            if top:  # the part the guide talks about at the top of the picture
                page.locator(top).evaluate(
                    "element => { element.scrollIntoView(); window.scrollBy(0, -24); }"
                )
            assert "/accounts/" not in page.url, f"{name}: sent to {page.url}"
            page.screenshot(path=str(OUT / f"{name}.png"))

        shot("accueil-personnel", f"{base}/clinique/")
        shot("agenda", f"{clinic}/agenda/?date={sheet_day:%Y-%m-%d}&view=day&practitioner={practitioner_id}")

        page.goto(f"{clinic}/plages/modele/")
        page.select_option("select[name=practitioner]", str(practitioner_id))
        for weekday in range(5):
            page.check(f"input[name=weekdays][value='{weekday}']")
        page.fill("input[name=time_from]", "08:00")
        page.fill("input[name=time_to]", "12:00")
        page.fill("input[name=date_from]", f"{monday:%Y-%m-%d}")
        page.fill("input[name=date_to]", f"{friday:%Y-%m-%d}")
        page.locator("input[name=reasons]").first.check()
        page.locator("input[name=audience]").first.check()
        page.locator("form:has(input[name=time_from]) button[type=submit]").first.click()
        page.wait_for_load_state()
        shot("modele-apercu", top="#preview-title")

        page.goto(f"{clinic}/plages/bloquer/")
        page.select_option("select[name=practitioner]", str(practitioner_id))
        page.fill("input[name=start]", f"{sheet_day:%Y-%m-%d} 00:00")
        page.fill("input[name=end]", f"{sheet_day:%Y-%m-%d} 23:59")
        page.fill("[name=note]", "Congé de maladie")
        page.locator("form:has(input[name=start]) button[type=submit]").first.click()
        page.wait_for_load_state()
        shot("bloquer-periode", top="label[for=id_note]")

        page.goto(f"{clinic}/telephone/")
        page.fill("input[name=nam]", nam)
        page.locator("form:has(input[name=nam]) button").first.click()
        page.wait_for_load_state()
        shot("telephone")

        shot(
            "feuille-du-jour",
            f"{clinic}/agenda/feuille/?date={sheet_day:%Y-%m-%d}&practitioner={practitioner_id}",
        )
        shot("parametres", f"{clinic}/parametres/")
        shot("personnel", f"{clinic}/personnel/", top="#invitations")
        shot("acces-dme", f"{clinic}/dme/acces/")
        browser.close()


if __name__ == "__main__":
    main()
