"""Deterministic demo data at any size: GMFs, clinic sites, practitioners, insured citizens,
enrolments, a few weeks of slots, and a share of them already booked.

The same ``(clinics, days, seed, start_date)`` always gives the same rows (database ids and
timestamps aside): every choice comes from ``random.Random`` streams seeded from the arguments,
never from the clock, and slot times are computed from ``start_date`` in each clinic's own time
zone (so they are right on both sides of a daylight-saving change).

The data keeps every invariant the real paths keep: a slot's practitioner and clinic are its
role's; a practitioner's slots never overlap, even across two sites of a GMF (the sites of a GMF
share a region and a time zone); a citizen's appointments never overlap and number at most two; an
appointment's reason is one its slot accepts and its citizen is one the slot's audience allows; each
NAM is well formed and agrees with the person's names, birth date and sex. It fills an empty
database only: the demo table of insured persons *is* the registry, so mixing it with other rows
would make NAMs collide.

At provincial size (2,000 sites, 10,000 practitioners, 60 days: about four million slots) the big
tables go in with PostgreSQL ``COPY`` inside one transaction, and the slot table's indexes and
constraints are rebuilt after the load, which re-checks every row (the exclusion constraint is
most of the time). SQLite (the embedded demo) gets batched ``bulk_create`` with the same rows.
No outbox events are written: this is the initial state, not a change anyone must be told about.
"""

import math
import random
import time
import unicodedata
import zoneinfo
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import TypeVar

from django.db import connection, models, transaction
from django.utils import timezone

from booking.models import (
    ALL_REASONS_MASK,
    Appointment,
    Audience,
    Modality,
    Slot,
    mask_to_reasons,
    reasons_to_mask,
)
from citizens.models import Citizen, Enrolment
from citizens.nam import nam_matches_birth_date, parse_nam
from clinics.models import Clinic, Fsa, Gmf, Practitioner, PractitionerRole
from clinics.reference import reference_load

from .demo_families import seed_families

DEFAULT_TIME_ZONE = "America/Toronto"
# Îles-de-la-Madeleine keep Atlantic time; Basse-Côte-Nord east of 63°W keeps Atlantic standard time
# all year (America/Blanc-Sablon). The demo puts G0G clinics at Blanc-Sablon itself.
MAGDALEN_FSAS = frozenset({"G0B", "G4T"})
BLANC_SABLON_FSA = "G0G"
BLANC_SABLON = (51.4264, -57.1313)
CITIZENS_PER_PRACTITIONER = 20
MAX_CITIZENS = 200_000
PRACTITIONERS_PER_CLINIC = 5
# Site sizes before the total is evened out to exactly PRACTITIONERS_PER_CLINIC per site.
PRACTITIONERS_PER_SITE = {1: 5, 2: 8, 3: 12, 4: 15, 5: 15, 6: 13, 7: 10, 8: 8, 9: 6, 10: 4, 12: 3, 15: 1}
ENROLLED_SHARE = 0.85
BATCH = 5_000

Progress = Callable[[str], None]
T = TypeVar("T")
M = TypeVar("M", bound=models.Model)
Row = tuple[str, ...]
Counts = dict[str, int | float]
# (practitioner id, slot start, citizen id, clinic id, start text, end text, reason, channel, external id)
AppointmentRow = tuple[int, datetime, int, int, str, str, str, str, str]


class DemoDataError(RuntimeError):
    """The database already holds clinics, practitioners or citizens: the demo fills an empty one."""


def _split(text: str) -> list[str]:
    return [item.strip() for item in text.split(";") if item.strip()]


def _pairs(text: str) -> dict[str, str]:
    return dict(item.split("=", 1) for item in _split(text))


def _words(text: str) -> list[str]:
    return text.split()


# --- names, streets, products -------------------------------------------------------------------

FIRST_NAMES = {
    ("fr", "F"): _words(
        "Marie Julie Catherine Isabelle Nathalie Sophie Mélanie Geneviève Valérie Émilie Chantal "
        "Sylvie Karine Annie Josée Caroline Stéphanie Véronique Marie-Ève Audrey Camille Léa Chloé "
        "Rosalie Florence Alice Béatrice Maude Gabrielle Laurence Emma Charlotte Zoé Jeanne Océane "
        "Noémie Sarah Anne-Marie Louise Francine Lise Ginette Diane Johanne Monique Hélène Manon "
        "Danielle Nicole Élisabeth Ariane Justine Mégane Rose Clara Juliette Maëlle"
    ),
    ("fr", "M"): _words(
        "Jean Pierre Michel Martin François Louis Marc Luc Simon Alexandre Mathieu Philippe "
        "Sébastien Éric Stéphane Patrick Nicolas Maxime Olivier Guillaume Julien Samuel Félix "
        "William Thomas Gabriel Jacob Antoine Raphaël Étienne Benoît Denis Réjean Gilles Claude "
        "André Yves Normand Sylvain Daniel Jean-François Marc-André Hugo Zacharie Léo Émile Nathan "
        "Xavier Louis-Philippe Vincent Jérôme Mathis Loïc Édouard"
    ),
    ("en", "F"): _words(
        "Emily Sarah Jessica Jennifer Amanda Ashley Hannah Olivia Emma Megan Rachel Laura Katherine "
        "Elizabeth Margaret Susan Linda Karen Patricia Grace Chloe Abigail Madison"
    ),
    ("en", "M"): _words(
        "James John Robert Michael David William Richard Thomas Christopher Daniel Matthew Andrew "
        "Ryan Kevin Brian Jason Liam Noah Ethan Benjamin Owen Connor Patrick"
    ),
    ("other", "F"): _words(
        "Fatima Amira Yasmine Nadia Samira Leila Mireille Nadège Widlene Guerline Linh Mai Mei Ying "
        "Priya Anjali Sofia Valentina Gabriela Maria Ana Aïcha Mariam Elena Roxana Tatiana"
    ),
    ("other", "M"): _words(
        "Mohamed Ahmed Karim Youssef Omar Ali Samir Wesner Jean-Robert Ricardo Duc Minh Huy Wei Jun "
        "Arjun Rahul Carlos Luis Diego Mamadou Ibrahima Moussa Dimitri Andrei Bogdan"
    ),
}
LAST_NAMES = {
    "fr": _words(
        "Tremblay Gagnon Roy Côté Bouchard Gauthier Morin Lavoie Fortin Gagné Ouellet Pelletier "
        "Bélanger Lévesque Bergeron Leblanc Paquette Girard Simard Boucher Caron Beaulieu Cloutier "
        "Dubé Poirier Fournier Lapointe Leclerc Lefebvre Poulin Thibault St-Pierre Nadeau Martin "
        "Landry Martel Bédard Grenier Lessard Bernier Richard Michaud Hébert Desjardins Couture "
        "Turcotte Lachance Parent Blais Gosselin Savard Proulx Beaudoin Demers Perreault Boudreau "
        "Lemieux Cyr Perron Dufour Dion Mercier Bolduc Bérubé Boisvert Langlois Ménard Therrien "
        "Plante Bilodeau Blanchette Dubois Champagne Paradis Fortier Arsenault Dupuis Gaudreault "
        "Hamel Houle Villeneuve Rousseau Gravel Thériault Lemay Robert Labelle Morissette "
        "Charbonneau Brassard Lacroix Lafleur Vachon Ouellette Jacques Allard Audet Racine Poitras "
        "D'Amours L'Heureux Aubé Gélinas Giguère Harvey Boily Laflamme Tanguay Ng"
    ),
    "en": _words(
        "Smith Brown Wilson Campbell Stewart Murphy O'Brien MacDonald Johnson Taylor Anderson "
        "Thompson White Clarke Scott Young Ross Fraser Kelly Walsh Ryan Miller Reid Morrison"
    ),
    "other": _words(
        "Nguyen Tran Pham Le Haddad Khoury Benali Saint-Fleur Jean-Baptiste Pierre Joseph "
        "Louis-Jeune Garcia Rodriguez Gonzalez Rossi Russo Ferrari Chen Wang Li Zhang Singh Patel "
        "Diallo Traoré Ly Bouzid Cherif Papadopoulos Cohen Levy Silva Santos Kaur Popescu"
    ),
}


STREETS = _split(
    "rue Saint-Denis; rue Notre-Dame; rue Principale; boulevard Saint-Laurent; chemin Sainte-Foy; "
    "rue Saint-Jean; boulevard Laurier; rue King Ouest; rue Wellington; avenue du Parc; "
    "boulevard des Laurentides; boulevard Taschereau; boulevard de la Concorde; rue Saint-Georges; "
    "boulevard Saint-Joseph; rue Racine; rue de l'Église; rue du Collège; boulevard Lacroix; "
    "rue des Érables; rue Dufferin; boulevard Talbot; rue Jean-Talon Est; boulevard Henri-Bourassa; "
    "rue Fleury Est; rue Beaubien Est; rue Masson; boulevard Décarie; boulevard Pie-IX; "
    "boulevard du Curé-Labelle; rue Saint-Charles; boulevard Wilfrid-Hamel; avenue Cartier; rue Frontenac; "
    "boulevard Saint-Martin Ouest; boulevard des Forges; boulevard Gréber; boulevard de l'Hôpital; "
    "avenue Larivière; rue Sherbrooke Est; chemin de Chambly; boulevard René-Lévesque; route 132; "
    "boulevard Sainte-Anne; rue Principale Nord; avenue Bourgogne; rue Papineau"
)
NAME_SAINTS = _split(
    "Saint-Louis; Sainte-Anne; Saint-Joseph; Notre-Dame; des Érables; des Pins; du Vieux-Moulin; de la Rive; "
    "des Cèdres; du Carrefour; de la Cité; des Promenades; du Parc; Boréale; de la Colline; du Boisé; "
    "de l'Estuaire; des Rapides"
)
CLINIC_PATTERNS = _split(
    "Clinique médicale {area}; Centre médical {area}; Polyclinique {area}; Clinique familiale {area}; "
    "Clinique médicale {saint}; Centre médical {saint}; Clinique de médecine familiale {area}; "
    "Clinique santé {saint}"
)
GMF_PATTERNS = _split("GMF {area}; GMF {saint}; GMF Clinique médicale {area}; GMF de la {family}")
GMF_FAMILIES = _split("Famille; Santé; Vallée; Rivière; Montagne; Côte; Seigneurie; Capitale")
EMR_PRODUCTS = [("Boréal DMÉ", 40), ("ClinIQ", 25), ("Médidossier", 20), ("Santexa", 15)]
POSTAL_LETTERS = "ABCEGHJKLMNPRSTVWXYZ"
REFERENCE_ALPHABET = "23456789ABCDEFGHJKMNPQRSTUVWXYZ"
FIXED_HOLIDAYS = {(1, 1), (6, 24), (7, 1), (12, 25)}

# Telephone area codes by health region; everything else is 418/581. Numbers are 555-01xx, the
# range reserved for fiction.
AREA_CODES = {
    **dict.fromkeys(["06"], ("514", "438")),
    **dict.fromkeys(["13", "14", "15", "16"], ("450", "579")),
    **dict.fromkeys(["04", "05", "07", "08", "10", "17", "18"], ("819", "873")),
}

# FSA place names are GeoNames' (often English, with a compass suffix): turn them into French
# municipality and neighbourhood names good enough for a demo.
_PLACE_FIXES = _pairs(
    "Montreal East=Montréal-Est; Montreal West=Montréal-Ouest; Montreal North North=Montréal-Nord; "
    "Montreal North South=Montréal-Nord; Quebec Provincial Government=Colline Parlementaire; "
    "Tour de la Bourse=Centre-ville; Place Bonaventure=Centre-ville; Place Desjardins=Centre-ville; "
    "Black Lake=Thetford Mines; Becancour=Bécancour; Degelis=Dégelis; Lac-Megantic=Lac-Mégantic; "
    "Saint-Sophie=Sainte-Sophie; Asbestos=Val-des-Sources; Chatham=Brownsburg-Chatham; "
    "Valleyfield=Salaberry-de-Valleyfield; Dorval Outskirts=Dorval; L'Île-Dorval=Dorval; "
    "L'Île Bizard Northeast=L'Île-Bizard; Vaudreuil-Dorion RCM=Vaudreuil-Dorion; Akwesasne Region=Akwesasne"
)
_PLACE_WORDS = _pairs(
    "Quebec City=Québec; Downtown Montreal=Centre-ville; Old Montreal=Vieux-Montréal; "
    "Mount Royal=Mont-Royal; Sainte-Thérèse-de-Blainville=Sainte-Thérèse"
)
_SUFFIX_WORDS = frozenset(
    _words(
        "North South East West Central Northeast Northwest Southeast Southwest Inner Outer Upper Lower "
        "Mid-Riverbank Riverbank Outskirts Extremities RCM and southeast"
    )
)
_CITY_OF_AREA = {
    **dict.fromkeys(
        _split(
            "Beauport; Charlesbourg; Sainte-Foy; Cap-Rouge; Loretteville; Jean-Talon; Saint-Émile; "
            "Lac-Saint-Charles; Val-Bélair; Colline Parlementaire"
        ),
        "Québec",
    ),
    **dict.fromkeys(_split("Chicoutimi; Jonquière; La Baie; Laterrière"), "Saguenay"),
    **dict.fromkeys(_split("Hull; Aylmer; Buckingham; Masson-Angers"), "Gatineau"),
    **dict.fromkeys(_split("Saint-Hubert; Greenfield Park"), "Longueuil"),
    **dict.fromkeys(_split("Rock Forest; Bromptonville; Saint-Élie-d'Orford"), "Sherbrooke"),
    **dict.fromkeys(
        _split(
            "Charny; Saint-Nicolas; Saint-Jean-Chrysostome; Saint-Redempteur; Saint-Etienne-de-Lauzon; "
            "Pintendre"
        ),
        "Lévis",
    ),
    **dict.fromkeys(_split("Cap-aux-Meules; Les Îles-de-la-Madeleine"), "Les Îles-de-la-Madeleine"),
    **_pairs("Cap-de-la-Madeleine=Trois-Rivières; Saint-Luc=Saint-Jean-sur-Richelieu; Grand-Mère=Shawinigan"),
}
# Island FSAs that are municipalities of their own (and Akwesasne); other H FSAs are Montréal.
_MONTREAL_ENCLAVES = frozenset(
    _words("H1B H3X H3Y H3Z H4V H4W H3P H3R H4P H4X H4Y H9P H9S H9A H9B H9G H9R H9J H9W H9X H9K H0M")
)
_LOWER_PARTICLES = ("De", "Des", "La", "Le", "Les", "Du", "Sur", "Aux", "En")


def _tidy_place(name: str) -> str:
    for particle in _LOWER_PARTICLES:
        name = name.replace(f"-{particle}-", f"-{particle.lower()}-")
    return name.replace("St-", "Saint-")


def fsa_places(code: str, place_name: str) -> tuple[str, str]:
    """(municipality, neighbourhood) for an FSA, from GeoNames' place name."""
    name = place_name.strip()
    if "(" in name:
        outside, inside = name.split("(", 1)
        inside = inside.rstrip(") ")
        # Rural FSAs read "Region (Village)": the village is the place; urban ones add a remark.
        name = inside if code[1] == "0" and not inside.startswith("Includes") else outside.strip()
    name = _PLACE_FIXES.get(name, name)
    for english, french in _PLACE_WORDS.items():
        if name.startswith(english):
            name = french + name[len(english) :]
    words = name.split()
    while len(words) > 1 and words[-1] in _SUFFIX_WORDS:
        words.pop()
    area = _tidy_place(" ".join(words))
    if code.startswith("H7"):
        city = "Laval"
    elif code[0] == "H" and code not in _MONTREAL_ENCLAVES:
        city = "Montréal"
    elif code[:2] in {"G1", "G2"} and code not in {"G2E", "G2G"}:
        city = "Québec"
    else:
        city = _CITY_OF_AREA.get(area, area)
    return city, area


def fsa_time_zone(code: str) -> str:
    if code in MAGDALEN_FSAS:
        return "America/Halifax"
    if code == BLANC_SABLON_FSA:
        return "America/Blanc-Sablon"
    return DEFAULT_TIME_ZONE


def fsa_weight(code: str) -> float:
    """Relative chance that a clinic sits in this FSA: a rough stand-in for population."""
    if code in {"H4Z", "H5A", "H5B", "G1A"}:  # office towers and the parliament: few residents
        return 0.3
    if code in {"J0M", "J0Y", "H0M", "G0G"}:  # Nunavik, Eeyou Istchee, Akwesasne, Basse-Côte-Nord
        return 0.4
    if code[1] == "0":  # a rural FSA covers a whole county
        return 1.5
    if code[:2] in {"H1", "H2", "H3", "H4", "H7", "H8", "H9", "G1", "G2", "J4"}:
        return 1.6
    return 1.0


def name_letters(name: str) -> str:
    """Upper-case A–Z only, accents removed: what the NAM takes its letters from."""
    decomposed = unicodedata.normalize("NFKD", name)
    return "".join(c for c in decomposed.upper() if "A" <= c <= "Z")


def nam_for(*, last_name: str, first_name: str, birth_date: date, sex: str, admin: int) -> str:
    """Letters 1–3 from the family name (padded with X), 4 from the given name, YYMMDD with the
    month +50 for females, then two administrative digits."""
    letters = name_letters(last_name)[:3].ljust(3, "X") + (name_letters(first_name)[:1] or "X")
    month = birth_date.month + (50 if sex == "F" else 0)
    return f"{letters}{birth_date.year % 100:02d}{month:02d}{birth_date.day:02d}{admin:02d}"


def _slug(name: str) -> str:
    decomposed = unicodedata.normalize("NFKD", name)
    return "".join(c for c in decomposed.lower() if "a" <= c <= "z" or c == "-")


def _table(weighted: Sequence[tuple[T, float]], size: int = 1000) -> list[T]:
    """A lookup table for weighted draws: ``table[int(random() * len(table))]`` (0.1% resolution)."""
    total = sum(weight for _, weight in weighted)
    table: list[T] = []
    cumulative = 0.0
    for item, weight in weighted:
        cumulative += weight
        table.extend([item] * (round(cumulative / total * size) - len(table)))
    return table


def _picker(rng: random.Random, weighted: Sequence[tuple[T, float]]) -> Callable[[], T]:
    table, rand = _table(weighted), rng.random
    size = len(table)
    return lambda: table[int(rand() * size)]


# --- plans: plain objects built in memory before anything is written ----------------------------


@dataclass
class FsaInfo:
    code: str
    latitude: float
    longitude: float
    place_name: str
    region_id: str
    time_zone: str
    nearby: list[str] = field(default_factory=list)  # same region and time zone, nearest first


@dataclass
class ClinicPlan:
    fsa: FsaInfo
    gmf_index: int | None
    instance: Clinic


@dataclass
class Session:
    """A weekly half-day of one practitioner at one of their clinics (local time, minutes)."""

    weekday: int
    start: int
    end: int
    kind: str  # regular, walkin, pregnancy, child
    role_position: int
    slot_minutes: int


@dataclass
class PractitionerPlan:
    instance: Practitioner
    clinic_indexes: list[int]
    sessions: list[Session] = field(default_factory=list)
    role_ids: list[int] = field(default_factory=list)


def _load_fsas() -> dict[str, FsaInfo]:
    fsas = {
        f.code: FsaInfo(f.code, f.latitude, f.longitude, f.place_name, f.region_id, fsa_time_zone(f.code))
        for f in Fsa.objects.order_by("code")
    }

    def distance(a: FsaInfo, b: FsaInfo) -> float:
        dx = (a.longitude - b.longitude) * math.cos(math.radians((a.latitude + b.latitude) / 2))
        return math.hypot(dx, a.latitude - b.latitude)

    for info in fsas.values():
        peers = [o for o in fsas.values() if o.region_id == info.region_id and o.time_zone == info.time_zone]
        info.nearby = [o.code for o in sorted(peers, key=lambda o: (distance(info, o), o.code))[:8]]
    return fsas


def _plan_clinics(
    rng: random.Random, fsas: dict[str, FsaInfo], count: int
) -> tuple[list[Gmf], list[ClinicPlan]]:
    codes = list(fsas)
    pick_anchor = _picker(rng, [(c, fsa_weight(c)) for c in codes])
    pick_gmf_size = _picker(rng, [(1, 35), (2, 30), (3, 20), (4, 15)])
    pick_emr = _picker(rng, EMR_PRODUCTS)
    gmfs: list[Gmf] = []
    plans: list[ClinicPlan] = []
    used_names: set[str] = set()

    def unique(make_name: Callable[[], str]) -> str:
        # Try a few names before numbering sites: two sites rarely share a name.
        for _ in range(6):
            name = make_name()
            if name not in used_names:
                break
        candidate, n = name, 1
        while candidate in used_names:
            n += 1
            candidate = f"{name} – site {n}"
        used_names.add(candidate)
        return candidate

    def place(fsa: FsaInfo, gmf_index: int | None, emr: str) -> None:
        city, area = fsa_places(fsa.code, fsa.place_name)
        latitude, longitude = fsa.latitude, fsa.longitude
        if fsa.code == BLANC_SABLON_FSA:
            city, area, (latitude, longitude) = "Blanc-Sablon", "Blanc-Sablon", BLANC_SABLON
        distance_m, bearing = 100 + rng.random() * 500, rng.random() * 2 * math.pi
        latitude += distance_m * math.cos(bearing) / 111_320
        longitude += distance_m * math.sin(bearing) / (111_320 * math.cos(math.radians(latitude)))
        name = unique(lambda: rng.choice(CLINIC_PATTERNS).format(area=area, saint=rng.choice(NAME_SAINTS)))
        suite = (
            f", bureau {rng.randint(1, 4)}{rng.randint(0, 2)}{rng.randint(0, 9)}"
            if rng.random() < 0.4
            else ""
        )
        area_code = rng.choice(AREA_CODES.get(fsa.region_id, ("418", "581")))
        clinic = Clinic(
            name=name,
            address=f"{rng.randint(10, 9999)}, {rng.choice(STREETS)}{suite}",
            city=city,
            postal_code=f"{fsa.code} {rng.randint(0, 9)}{rng.choice(POSTAL_LETTERS)}{rng.randint(0, 9)}",
            latitude=round(latitude, 6),
            longitude=round(longitude, 6),
            region_id=fsa.region_id,
            time_zone=fsa.time_zone,
            phone=f"{area_code}-555-01{rng.randint(0, 99):02d}",
            emr_product=emr,
            min_notice=timedelta(minutes=rng.choice((0, 60, 60, 120))),
            cancel_cutoff_hours=rng.choice((1, 2, 2, 4, 12, 24, 24)),
        )
        plans.append(ClinicPlan(fsa, gmf_index, clinic))

    def new_gmf(fsa: FsaInfo) -> int:
        _, area = fsa_places(fsa.code, fsa.place_name)
        name = unique(
            lambda: rng.choice(GMF_PATTERNS).format(
                area=area, saint=rng.choice(NAME_SAINTS), family=rng.choice(GMF_FAMILIES)
            )
        )
        gmfs.append(Gmf(name=name, region_id=fsa.region_id))
        return len(gmfs) - 1

    if count >= 2:
        # Always one site on the Îles-de-la-Madeleine, whose clinic time is Atlantic.
        islands = fsas["G0B"]
        place(islands, new_gmf(islands), pick_emr() if rng.random() < 0.4 else "")
    while len(plans) < count:
        anchor = fsas[pick_anchor()]
        emr = pick_emr() if rng.random() < 0.4 else ""
        if rng.random() < 0.3:
            place(anchor, None, emr)
            continue
        gmf_index = new_gmf(anchor)
        for position in range(min(pick_gmf_size(), count - len(plans))):
            site = anchor if position == 0 else fsas[rng.choice(anchor.nearby)]
            place(site, gmf_index, emr)
    return gmfs, plans


MORNING, AFTERNOON, EVENING, SATURDAY = (
    (8 * 60, 12 * 60),
    (13 * 60, 17 * 60),
    (18 * 60, 21 * 60),
    (9 * 60, 12 * 60),
)
MIN_WEEKLY_SLOTS, MAX_WEEKLY_SLOTS = 30, 60


def _plan_sessions(rng: random.Random, plan: PractitionerPlan) -> None:
    """A weekly pattern of half-days worth 30–60 slots: weekday mornings and afternoons, for some an
    evening or a Saturday morning (mostly walk-in). The half-days are distinct, so a practitioner's
    slots never overlap, even when the week is split between two sites."""
    slot_minutes = rng.choice((15, 20, 20, 30)) if plan.instance.kind == "doctor" else rng.choice((20, 30))
    candidates = [(day, *MORNING) for day in range(5)] + [(day, *AFTERNOON) for day in range(5)]
    rng.shuffle(candidates)
    if rng.random() < 0.2:
        candidates.insert(rng.randrange(3), (rng.randint(0, 3), *EVENING))
    if rng.random() < 0.12:
        candidates.insert(rng.randrange(3), (5, *SATURDAY))
    target, total, sessions = rng.randint(MIN_WEEKLY_SLOTS, MAX_WEEKLY_SLOTS), 0, []
    for day, start, end in candidates:
        if total >= target:
            break
        after_hours = day == 5 or start == EVENING[0]
        walk_in = rng.random() < (0.8 if after_hours else 0.2)
        length = 15 if walk_in else slot_minutes
        count = (end - start) // length
        if total and total + count > MAX_WEEKLY_SLOTS:
            continue
        sessions.append(Session(day, start, end, "walkin" if walk_in else "regular", 0, length))
        total += count
    regular = [s for s in sessions if s.kind == "regular"]
    if regular and plan.instance.kind == "doctor" and rng.random() < 0.25:
        rng.choice(regular).kind = rng.choice(("pregnancy", "child"))
    sessions.sort(key=lambda s: (s.weekday, s.start))
    if len(plan.clinic_indexes) > 1:
        for position, session in enumerate(sessions):
            session.role_position = position % 2
    plan.sessions = sessions


def _is_holiday(day: date) -> bool:
    return (day.month, day.day) in FIXED_HOLIDAYS


# --- writing ---------------------------------------------------------------------------------------


NULL = "\\N"  # COPY's text-format null; the SQLite path turns it back into None


def _columns(model: type[models.Model], field_names: Sequence[str]) -> list[tuple[str, str]]:
    """(attname, column) of each named field; each must be a column of the model's table."""
    columns = []
    for name in field_names:
        model_field = model._meta.get_field(name)
        if not isinstance(model_field, models.Field) or model_field.column is None:
            raise ValueError(f"{model.__name__}.{name} is not a column")
        columns.append((model_field.attname, model_field.column))
    return columns


@contextmanager
def _row_writer(model: type[models.Model], field_names: Sequence[str]) -> Iterator[Callable[[Row], None]]:
    """Append rows of strings (``NULL`` for none) in ``field_names`` order: COPY on PostgreSQL,
    batched bulk_create elsewhere. The values come from this module's own lists, so they never
    hold a tab, a newline or a backslash that COPY would need escaped."""
    fields = _columns(model, field_names)
    if connection.vendor == "postgresql":
        quote = connection.ops.quote_name
        columns = ", ".join(quote(column) for _, column in fields)
        lines: list[str] = []
        with (
            connection.cursor() as cursor,
            cursor.copy(f"COPY {quote(model._meta.db_table)} ({columns}) FROM STDIN") as copy,
        ):

            def write_line(row: Row) -> None:
                lines.append("\t".join(row))
                if len(lines) >= BATCH:
                    copy.write("\n".join(lines) + "\n")
                    lines.clear()

            yield write_line
            if lines:
                copy.write("\n".join(lines) + "\n")
        return
    attnames = [attname for attname, _ in fields]
    batch: list[models.Model] = []

    def write(row: Row) -> None:
        values = (None if value == NULL else value for value in row)
        batch.append(model(**dict(zip(attnames, values, strict=True))))
        if len(batch) >= BATCH:
            model._default_manager.bulk_create(batch)
            batch.clear()

    yield write
    if batch:
        model._default_manager.bulk_create(batch)


@contextmanager
def _indexes_built_after(model: type[models.Model]) -> Iterator[None]:
    """On PostgreSQL, load a big table the way pg_restore does: drop its secondary indexes, its
    exclusion and foreign-key constraints, load, then recreate each from its own catalogue
    definition (same names, same predicates). Building an index once costs a fraction of
    maintaining it row by row, and re-adding a constraint checks every row, so the invariants are
    verified, not skipped. Everything stays inside the caller's transaction."""
    if connection.vendor != "postgresql":
        yield
        return
    table = connection.ops.quote_name(model._meta.db_table)
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT conname, pg_get_constraintdef(oid) FROM pg_constraint "
            "WHERE conrelid = %s::regclass AND contype IN ('x', 'f') ORDER BY contype DESC, conname",
            [model._meta.db_table],
        )
        constraints = cursor.fetchall()
        cursor.execute(
            "SELECT indexrelid::regclass::text, pg_get_indexdef(indexrelid) FROM pg_index "
            "WHERE indrelid = %s::regclass AND NOT indisprimary AND indexrelid NOT IN (SELECT conindid "
            "FROM pg_constraint WHERE conrelid = %s::regclass AND contype IN ('p', 'u', 'x'))",
            [model._meta.db_table, model._meta.db_table],
        )
        indexes = cursor.fetchall()
        # Dropping or adding a foreign key also alters the referenced tables, which PostgreSQL
        # refuses while they have deferred checks queued: run those checks now (they would run at
        # commit anyway), then go back to Django's deferred foreign keys.
        cursor.execute("SET CONSTRAINTS ALL IMMEDIATE")
        cursor.execute("SET CONSTRAINTS ALL DEFERRED")
        for name, _ in constraints:
            cursor.execute(f"ALTER TABLE {table} DROP CONSTRAINT {connection.ops.quote_name(name)}")
        for name, _ in indexes:
            cursor.execute(f"DROP INDEX {name}")
    yield
    with connection.cursor() as cursor:
        cursor.execute("SET LOCAL maintenance_work_mem = '256MB'")
        cursor.execute("SET CONSTRAINTS ALL IMMEDIATE")
        cursor.execute("SET CONSTRAINTS ALL DEFERRED")
        for _, definition in indexes:
            cursor.execute(definition)
        for name, definition in constraints:  # exclusion first, then foreign keys
            cursor.execute(
                f"ALTER TABLE {table} ADD CONSTRAINT {connection.ops.quote_name(name)} {definition}"
            )


def _bulk(model: type[M], objects: list[M]) -> list[M]:
    return model._default_manager.bulk_create(objects, batch_size=BATCH)


# --- the generator ---------------------------------------------------------------------------------


def demo_is_seeded() -> bool:
    return Clinic.objects.exists()


def demo_seed(
    *,
    clinics: int,
    days: int,
    seed: int,
    start_date: date | None = None,
    if_empty: bool = False,
    progress: Progress | None = None,
) -> dict[str, int | float]:
    """Fill an empty database with demo data; return the counts and the elapsed seconds.

    ``start_date`` (default: today in Montreal) is the first day of slots, in each clinic's local
    time. With ``if_empty``, a database that already has clinics is left alone (counts are zero and
    ``skipped`` is 1), so ``make run`` can call it on every start.
    """
    if clinics < 1 or days < 1:
        raise ValueError("clinics and days must be at least 1")
    started = time.monotonic()
    reference_load()
    counts: Counts = dict.fromkeys(
        ("clinics", "gmfs", "practitioners", "roles", "citizens", "enrolments", "slots", "appointments"), 0
    )
    if if_empty and demo_is_seeded():
        return {**counts, "skipped": 1, "seconds": round(time.monotonic() - started, 2)}
    if start_date is None:
        start_date = timezone.now().astimezone(zoneinfo.ZoneInfo(DEFAULT_TIME_ZONE)).date()

    def say(message: str) -> None:
        if progress:
            progress(f"{time.monotonic() - started:6.1f} s  {message}")

    with transaction.atomic():
        if Clinic.objects.exists() or Practitioner.objects.exists() or Citizen.objects.exists():
            raise DemoDataError(
                "The database already has clinics, practitioners or citizens; the demo fills an empty "
                "database (use --if-empty to skip when it is already seeded)."
            )
        fsas = _load_fsas()
        supply = _seed_supply(seed=seed, clinics=clinics, fsas=fsas, counts=counts)
        say(f"{counts['clinics']} sites, {counts['gmfs']} GMFs, {counts['practitioners']} practitioners")
        citizens = _seed_citizens(seed=seed, start_date=start_date, fsas=fsas, supply=supply, counts=counts)
        say(f"{counts['citizens']} citizens, {counts['enrolments']} enrolments")
        counts["dependants"] = seed_families(start_date=start_date)  # a few accounts with children
        _seed_slots(
            seed=seed,
            start_date=start_date,
            days=days,
            supply=supply,
            citizens=citizens,
            counts=counts,
            say=say,
        )
        say(f"{counts['appointments']} appointments; committing")
    if connection.vendor == "postgresql":
        # Fresh statistics, so that the first queries (and EXPLAIN) see the real table sizes.
        with connection.cursor() as cursor:
            for model in (Citizen, Enrolment, Slot, Appointment, Clinic, Practitioner, PractitionerRole):
                cursor.execute(f"ANALYZE {connection.ops.quote_name(model._meta.db_table)}")
        say("analyzed")
    counts["seconds"] = round(time.monotonic() - started, 2)
    return counts


@dataclass
class Supply:
    clinics: list[ClinicPlan]
    practitioners: list[PractitionerPlan]


def _seed_supply(*, seed: int, clinics: int, fsas: dict[str, FsaInfo], counts: Counts) -> Supply:
    rng = random.Random(f"rdv-demo-{seed}-supply")
    gmfs, clinic_plans = _plan_clinics(rng, fsas, clinics)
    gmf_ids = [g.pk for g in _bulk(Gmf, gmfs)]
    for plan in clinic_plans:
        plan.instance.gmf_id = None if plan.gmf_index is None else gmf_ids[plan.gmf_index]
    _bulk(Clinic, [p.instance for p in clinic_plans])

    # Practitioners per site average exactly PRACTITIONERS_PER_CLINIC (2,000 sites: 10,000).
    pick_size = _picker(rng, list(PRACTITIONERS_PER_SITE.items()))
    sizes = [pick_size() for _ in clinic_plans]
    target, total = PRACTITIONERS_PER_CLINIC * len(clinic_plans), sum(sizes)
    while total != target:
        i = rng.randrange(len(sizes))
        step = -1 if total > target else 1
        if sizes[i] + step >= 1:
            sizes[i] += step
            total += step
    ramq_numbers = rng.sample(range(100_000, 1_000_000), target)
    pick_languages = _picker(rng, [("fr", 55), ("fr,en", 35), ("fr,en,es", 5), ("en", 5)])
    pick_origin = _picker(rng, [("fr", 75), ("en", 10), ("other", 15)])
    sites_of_gmf: dict[int, list[int]] = {}
    for index, plan in enumerate(clinic_plans):
        if plan.gmf_index is not None:
            sites_of_gmf.setdefault(plan.gmf_index, []).append(index)

    practitioners: list[PractitionerPlan] = []
    for clinic_index, size in enumerate(sizes):
        for _ in range(size):
            origin, sex = pick_origin(), rng.choice("FFFMM")
            languages = pick_languages()
            if origin == "en" and languages == "fr":
                languages = "fr,en"
            practitioner = Practitioner(
                ramq_number=str(ramq_numbers[len(practitioners)]),
                first_name=rng.choice(FIRST_NAMES[(origin, sex)]),
                last_name=rng.choice(LAST_NAMES[origin]),
                kind=Practitioner.Kind.DOCTOR if rng.random() < 0.9 else Practitioner.Kind.NURSE_PRACTITIONER,
                languages=languages,
                feminine_title=sex == "F",
            )
            indexes = [clinic_index]
            gmf_index = clinic_plans[clinic_index].gmf_index
            siblings = sites_of_gmf.get(gmf_index, []) if gmf_index is not None else []
            if len(siblings) > 1 and rng.random() < 0.08:
                indexes.append(rng.choice([s for s in siblings if s != clinic_index]))
            practitioner_plan = PractitionerPlan(practitioner, indexes)
            _plan_sessions(rng, practitioner_plan)
            practitioners.append(practitioner_plan)
    _bulk(Practitioner, [p.instance for p in practitioners])
    roles = [
        PractitionerRole(practitioner_id=p.instance.pk, clinic_id=clinic_plans[i].instance.pk)
        for p in practitioners
        for i in p.clinic_indexes
    ]
    role_ids = iter(r.pk for r in _bulk(PractitionerRole, roles))
    for p in practitioners:
        p.role_ids = [next(role_ids) for _ in p.clinic_indexes]
    counts.update(
        gmfs=len(gmfs), clinics=len(clinic_plans), practitioners=len(practitioners), roles=len(roles)
    )
    return Supply(clinic_plans, practitioners)


@dataclass
class Citizens:
    """The demo registry in columns (index = citizen number), for the booking pass."""

    ids: list[int]
    sex: list[str]
    age: list[int]
    # How many appointments the demo may still give each citizen (0–2). A fifth get none, so that
    # plenty of demo citizens start with an empty agenda.
    room: list[int]
    by_practitioner: list[list[int]]  # enrolled citizens per practitioner index
    by_gmf: dict[int, list[int]]  # enrolled citizens per GMF id
    by_clinic: list[list[int]]  # everyone living around each site


def _seed_citizens(
    *, seed: int, start_date: date, fsas: dict[str, FsaInfo], supply: Supply, counts: Counts
) -> Citizens:
    rng = random.Random(f"rdv-demo-{seed}-citizens")
    practitioners = supply.practitioners
    total = min(len(practitioners) * CITIZENS_PER_PRACTITIONER, MAX_CITIZENS)
    pick_origin = {
        "fr": _picker(rng, [("fr", 85), ("other", 13), ("en", 2)]),
        "en": _picker(rng, [("en", 65), ("other", 25), ("fr", 10)]),
    }
    pick_age = _picker(
        rng,
        [
            ((0, 5), 7),
            ((6, 17), 13),
            ((18, 34), 20),
            ((35, 49), 20),
            ((50, 64), 20),
            ((65, 79), 15),
            ((80, 99), 5),
        ],
    )
    pick_sequence = _picker(rng, [("01", 40), ("02", 30), ("03", 18), ("04", 8), ("05", 4)])
    pick_room = _picker(rng, [(0, 20), (1, 40), (2, 40)])
    nams: set[str] = set()
    now = timezone.now().isoformat()
    nam_list, sexes, ages, rooms, enrolled_with = [], [], [], [], []
    enrolment_rows = []
    fields = (
        "nam",
        "card_sequence",
        "first_name",
        "last_name",
        "birth_date",
        "sex",
        "postal_code",
        "card_expires",
        "preferred_language",
        "email",
        "mobile",
        "account",
        "created_at",
    )
    with _row_writer(Citizen, fields) as write:
        for n in range(total):
            home = practitioners[n % len(practitioners)]
            clinic = supply.clinics[home.clinic_indexes[0]]
            language = "fr" if rng.random() < 0.8 else "en"
            origin, sex = pick_origin[language](), rng.choice("FM")
            first_name = rng.choice(FIRST_NAMES[(origin, sex)])
            last_name = rng.choice(LAST_NAMES[origin])
            if rng.random() < 0.06:
                last_name = f"{last_name}-{rng.choice(LAST_NAMES['fr'])}"
            low, high = pick_age()
            birth_date = start_date - timedelta(days=rng.randint(low * 365 + 1, (high + 1) * 365 - 1))
            admin = rng.randint(10, 99)
            nam = nam_for(
                last_name=last_name, first_name=first_name, birth_date=birth_date, sex=sex, admin=admin
            )
            while nam in nams:  # same letters and birthday: the administrative digits tell them apart
                admin = (admin + 1) % 100
                nam = nam[:10] + f"{admin:02d}"
            nams.add(nam)
            nam_list.append(nam)
            if not nam_matches_birth_date(parse_nam(nam), birth_date):
                raise AssertionError(f"demo NAM disagrees with its birth date: {nam}")
            fsa = clinic.fsa if rng.random() < 0.7 else fsas[rng.choice(clinic.fsa.nearby)]
            area_code = rng.choice(AREA_CODES.get(fsa.region_id, ("418", "581")))
            write(
                (
                    nam,
                    pick_sequence(),
                    first_name,
                    last_name,
                    birth_date.isoformat(),
                    sex,
                    f"{fsa.code} {rng.randint(0, 9)}{rng.choice(POSTAL_LETTERS)}{rng.randint(0, 9)}",
                    (start_date + timedelta(days=rng.randint(90, 8 * 365))).isoformat(),
                    language,
                    f"{_slug(first_name)}.{_slug(last_name)}.{n + 1}@example.org",
                    f"+1{area_code}55501{rng.randint(0, 99):02d}",
                    NULL,
                    now,
                )
            )
            sexes.append(sex)
            ages.append((start_date - birth_date).days // 365)
            rooms.append(pick_room())
            enrolled = rng.random() < ENROLLED_SHARE
            enrolled_with.append(n % len(practitioners) if enrolled else -1)
            if enrolled:
                earliest = max(birth_date, start_date - timedelta(days=15 * 365))
                span = max((start_date - timedelta(days=30) - earliest).days, 0)
                since = earliest + timedelta(days=rng.randint(0, span))
                enrolment_rows.append((nam, home, clinic.instance.gmf_id, since.isoformat()))
    ids_by_nam = dict(Citizen.objects.values_list("nam", "id"))
    with _row_writer(Enrolment, ("citizen", "practitioner", "gmf", "is_active", "since")) as write:
        for nam, home, gmf_id, since_text in enrolment_rows:
            write(
                (
                    str(ids_by_nam[nam]),
                    str(home.instance.pk),
                    NULL if gmf_id is None else str(gmf_id),
                    "t",
                    since_text,
                )
            )
    by_practitioner: list[list[int]] = [[] for _ in practitioners]
    by_gmf: dict[int, list[int]] = {}
    by_clinic: list[list[int]] = [[] for _ in supply.clinics]
    for n in range(total):
        if not rooms[n]:
            continue
        home_index = n % len(practitioners)
        clinic = supply.clinics[practitioners[home_index].clinic_indexes[0]]
        by_clinic[practitioners[home_index].clinic_indexes[0]].append(n)
        if enrolled_with[n] >= 0:
            by_practitioner[home_index].append(n)
            if clinic.instance.gmf_id is not None:
                by_gmf.setdefault(clinic.instance.gmf_id, []).append(n)
    counts.update(citizens=total, enrolments=len(enrolment_rows))
    ids = [ids_by_nam[nam] for nam in nam_list]
    return Citizens(ids, sexes, ages, rooms, by_practitioner, by_gmf, by_clinic)


# Column order of the rows written below: what varies first, the constant tail last.
SLOT_FIELDS = (
    *("role", "practitioner", "clinic", "start", "end", "reasons", "audience", "modality", "status"),
    *("external_id", "source", "holder", "hold_expires", "hold_token", "version", "created_at", "updated_at"),
)
APPOINTMENT_FIELDS = (
    *("slot", "citizen", "clinic", "start", "end", "reason", "status", "channel", "reference", "external_id"),
    *(
        "booked_by_user",
        "idempotency_key",
        "cancel_reason",
        "cancelled_at",
        "version",
        "created_at",
        "updated_at",
    ),
)
_R = reasons_to_mask
SESSION_REASONS = {
    "walkin": [(_R(["urgent", "semi_urgent"]), 70), (_R(["urgent"]), 30)],
    "regular": [
        (_R(["follow_up", "periodic"]), 35),
        (_R(["follow_up", "periodic", "semi_urgent"]), 30),
        (_R(["follow_up"]), 15),
        (_R(["semi_urgent", "urgent"]), 10),
        (ALL_REASONS_MASK, 10),
    ],
    "pregnancy": [(_R(["pregnancy", "follow_up"]), 60), (_R(["pregnancy"]), 40)],
    "child": [(_R(["child_0_5", "follow_up", "periodic"]), 70), (_R(["child_0_5"]), 30)],
}
# Walk-in half-days are public or GMF; the rest mostly the doctor's own patients (and a site outside
# any GMF turns "GMF" into "own"). Overall about 35% own patients, 25% GMF, 35% public, 5% not online.
_SCHEDULED_AUDIENCES = [
    (Audience.OWN_PATIENTS.value, 45),
    (Audience.GMF_PATIENTS.value, 25),
    (Audience.PUBLIC.value, 23),
    (Audience.NOT_ONLINE.value, 7),
]
SESSION_AUDIENCES = {
    "walkin": [(Audience.PUBLIC.value, 65), (Audience.GMF_PATIENTS.value, 35)],
    "regular": _SCHEDULED_AUDIENCES,
    "pregnancy": _SCHEDULED_AUDIENCES,
    "child": _SCHEDULED_AUDIENCES,
}
_USUAL_MODALITIES = [(Modality.IN_PERSON.value, 78), (Modality.PHONE.value, 16), (Modality.VIDEO.value, 6)]
SESSION_MODALITIES = {
    "walkin": [(Modality.IN_PERSON.value, 90), (Modality.PHONE.value, 10)],
    "regular": _USUAL_MODALITIES,
    "pregnancy": _USUAL_MODALITIES,
    "child": _USUAL_MODALITIES,
}
CHANNELS_EMR = [("portal", 40), ("api", 10), ("agenda", 15), ("emr", 35)]
CHANNELS_WEB = [("portal", 60), ("api", 10), ("agenda", 30)]


def _booking_share(day_index: int) -> float:
    """Near days are fuller: about 10% of all slots end up booked over a few weeks."""
    if day_index < 7:
        return 0.16
    if day_index < 14:
        return 0.12
    return 0.09 if day_index < 28 else 0.06


class _Booker:
    """Picks who already holds a demo appointment in a slot: a citizen the slot's audience allows,
    with room left (at most two each), free at that time, and a reason the slot accepts that fits
    them (pregnancy: a woman of 16–45; child 0–5: a young child)."""

    def __init__(self, rng: random.Random, citizens: Citizens) -> None:
        self.rand, self.choice = rng.random, rng.choice
        self.citizens = citizens
        self.times: dict[int, list[tuple[datetime, datetime]]] = {}
        self.reasons_of = {
            str(mask): mask_to_reasons(mask) for weights in SESSION_REASONS.values() for mask, _ in weights
        }

    def pool(
        self, audience: str, practitioner_index: int, clinic_index: int, gmf_id: int | None
    ) -> list[int]:
        if audience == Audience.OWN_PATIENTS:
            return self.citizens.by_practitioner[practitioner_index]
        if audience == Audience.GMF_PATIENTS:
            return self.citizens.by_gmf.get(gmf_id, []) if gmf_id is not None else []
        return self.citizens.by_clinic[clinic_index]

    def fits(self, reason: str, n: int) -> bool:
        if reason == "pregnancy":
            return self.citizens.sex[n] == "F" and 16 <= self.citizens.age[n] <= 45
        if reason == "child_0_5":
            return self.citizens.age[n] <= 5
        return True

    def book(self, pool: list[int], start: datetime, end: datetime, mask: str) -> tuple[int, str] | None:
        room = self.citizens.room
        for _ in range(4):
            if not pool:
                return None
            j = int(self.rand() * len(pool))
            n = pool[j]
            if room[n] <= 0:  # used up: drop it from this pool for good
                pool[j] = pool[-1]
                pool.pop()
                continue
            if any(s < end and start < e for s, e in self.times.get(n, ())):
                continue
            options = [r for r in self.reasons_of[mask] if self.fits(r, n)]
            if not options:
                continue
            room[n] -= 1
            self.times.setdefault(n, []).append((start, end))
            return n, self.choice(options)
        return None


def _seed_slots(
    *,
    seed: int,
    start_date: date,
    days: int,
    supply: Supply,
    citizens: Citizens,
    counts: Counts,
    say: Progress,
) -> None:
    rng = random.Random(f"rdv-demo-{seed}-slots")
    rand = rng.random
    zones = {tz: zoneinfo.ZoneInfo(tz) for tz in {c.instance.time_zone for c in supply.clinics}}
    dates = [start_date + timedelta(days=i) for i in range(days)]
    runs: dict[tuple[str, int, int, int, int], list[tuple[datetime, datetime, str, str, str]]] = {}

    def run(tz: str, day_index: int, session: Session) -> list[tuple[datetime, datetime, str, str, str]]:
        """The slots of one half-day: (start, end, start text, end text, compact start), in UTC.

        Each local wall time goes through zoneinfo for that very day, so a DST change between two
        days falls right; runs are shared by every practitioner with the same pattern.
        """
        key = (tz, day_index, session.start, session.end, session.slot_minutes)
        found = runs.get(key)
        if found is None:
            day, zone, length = dates[day_index], zones[tz], session.slot_minutes
            found = []
            for minute in range(session.start, session.end - length + 1, length):
                local = datetime(day.year, day.month, day.day, minute // 60, minute % 60, tzinfo=zone)
                start = local.astimezone(UTC)
                end = start + timedelta(minutes=length)
                found.append((start, end, start.isoformat(), end.isoformat(), f"{start:%Y%m%d%H%M}"))
            runs[key] = found
        return found

    reason_tables = {k: _table([(str(m), w) for m, w in weights]) for k, weights in SESSION_REASONS.items()}
    audience_tables = {k: _table(weights) for k, weights in SESSION_AUDIENCES.items()}
    modality_tables = {k: _table(weights) for k, weights in SESSION_MODALITIES.items()}
    pick_channel = {True: _picker(rng, CHANNELS_EMR), False: _picker(rng, CHANNELS_WEB)}
    booker = _Booker(rng, citizens)
    now = timezone.now().isoformat()
    free, booked, blocked = (s.value for s in (Slot.Status.FREE, Slot.Status.BOOKED, Slot.Status.BLOCKED))
    own, gmf_only, not_online = (
        a.value for a in (Audience.OWN_PATIENTS, Audience.GMF_PATIENTS, Audience.NOT_ONLINE)
    )
    appointments: list[AppointmentRow] = []

    def practitioner_rows(index: int, plan: PractitionerPlan) -> Iterator[tuple[str, ...]]:
        practitioner_id, ramq = plan.instance.pk, plan.instance.ramq_number
        by_weekday: list[list[Session]] = [[] for _ in range(7)]
        for session in plan.sessions:
            by_weekday[session.weekday].append(session)
        for day_index, day in enumerate(dates):
            if _is_holiday(day):
                continue
            share = _booking_share(day_index)
            for session in by_weekday[day.weekday()]:
                clinic_index = plan.clinic_indexes[session.role_position]
                clinic = supply.clinics[clinic_index].instance
                uses_emr = bool(clinic.emr_product)
                head = (str(plan.role_ids[session.role_position]), str(practitioner_id), str(clinic.pk))
                source = Slot.Source.EMR.value if uses_emr else Slot.Source.WEB_AGENDA.value
                tail = (source, NULL, NULL, "", "1", now, now)  # no hold; version 1
                reasons, audiences = reason_tables[session.kind], audience_tables[session.kind]
                modalities = modality_tables[session.kind]
                for start, end, start_text, end_text, compact in run(clinic.time_zone, day_index, session):
                    audience = audiences[int(rand() * 1000)]
                    if audience == gmf_only and clinic.gmf_id is None:
                        audience = own  # a site outside any GMF has only its doctors' own patients
                    mask, status = reasons[int(rand() * 1000)], free
                    if rand() < 0.01:
                        status = blocked
                    elif rand() < share:
                        pool = booker.pool(audience, index, clinic_index, clinic.gmf_id)
                        chosen = booker.book(pool, start, end, mask)
                        if chosen is not None:
                            status = booked
                            n, reason = chosen
                            channel = pick_channel[uses_emr]()
                            if audience == not_online:  # booked by the clinic, not online
                                channel = "emr" if uses_emr else "agenda"
                            external = f"{ramq}-A{compact}" if channel == "emr" else ""
                            appointments.append(
                                (practitioner_id, start, citizens.ids[n], clinic.pk, start_text, end_text)
                                + (reason, channel, external)
                            )
                    external_id = f"{ramq}-{compact}" if uses_emr else ""
                    modality = modalities[int(rand() * 1000)]
                    yield (*head, start_text, end_text, mask, audience, modality, status, external_id, *tail)

    slots = 0
    with _indexes_built_after(Slot):
        with _row_writer(Slot, SLOT_FIELDS) as write:
            for index, plan in enumerate(supply.practitioners):
                for row in practitioner_rows(index, plan):
                    write(row)
                    slots += 1
        say(f"{slots} slots copied; rebuilding the slot indexes and checking the constraints")
    say("slot indexes and constraints rebuilt")
    _write_appointments(rng, appointments, now)
    counts.update(slots=slots, appointments=len(appointments))


def _write_appointments(rng: random.Random, appointments: list[AppointmentRow], now: str) -> None:
    slot_ids = {
        (practitioner_id, start): pk
        for practitioner_id, start, pk in Slot.objects.filter(status=Slot.Status.BOOKED).values_list(
            "practitioner_id", "start", "id"
        )
    }
    references: set[str] = set()
    status = Appointment.Status.BOOKED.value
    tail = (NULL, NULL, "", NULL, "1", now, now)  # not booked by a user account, no key, not cancelled
    with _row_writer(Appointment, APPOINTMENT_FIELDS) as write:
        for practitioner_id, start, citizen_id, clinic_id, *times, reason, channel, external in appointments:
            reference = "".join(rng.choices(REFERENCE_ALPHABET, k=10))
            while reference in references:
                reference = "".join(rng.choices(REFERENCE_ALPHABET, k=10))
            references.add(reference)
            slot_id = slot_ids[(practitioner_id, start)]
            write(
                (
                    str(slot_id),
                    str(citizen_id),
                    str(clinic_id),
                    *times,
                    reason,
                    status,
                    channel,
                    reference,
                    external,
                    *tail,
                )
            )
