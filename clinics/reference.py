"""Reference data: Quebec's health regions and forward sortation areas (FSAs), from ``clinics/data``.

Loading is an upsert keyed on the codes, so it can run on every start (``make run``, ``seed_demo``)
and picks up corrections to the files without duplicating rows.
"""

import csv
from pathlib import Path

from django.db import transaction

from clinics.models import Fsa, Region

DATA_DIR = Path(__file__).resolve().parent / "data"
REGIONS_CSV = "quebec_health_regions.csv"
FSA_CENTROIDS_CSV = "quebec_fsa_centroids.csv"
FSA_REGIONS_CSV = "quebec_fsa_regions.csv"


class ReferenceDataError(ValueError):
    """The reference files disagree with each other (an FSA without a region, an unknown region)."""


def _rows(path: Path) -> list[dict[str, str]]:
    with path.open(newline="", encoding="utf-8") as handle:
        return [{key: (value or "").strip() for key, value in row.items()} for row in csv.DictReader(handle)]


def reference_regions_read(*, data_dir: Path = DATA_DIR) -> list[Region]:
    return [Region(code=row["code"], name_fr=row["name_fr"]) for row in _rows(data_dir / REGIONS_CSV)]


def reference_fsas_read(*, region_codes: set[str], data_dir: Path = DATA_DIR) -> list[Fsa]:
    region_of = {row["fsa"]: row["region_code"] for row in _rows(data_dir / FSA_REGIONS_CSV)}
    fsas = []
    for row in _rows(data_dir / FSA_CENTROIDS_CSV):
        code = row["fsa"]
        region_code = region_of.get(code)
        if region_code is None:
            raise ReferenceDataError(f"FSA {code} has no region in {FSA_REGIONS_CSV}.")
        if region_code not in region_codes:
            raise ReferenceDataError(f"FSA {code} refers to unknown region {region_code}.")
        fsas.append(
            Fsa(
                code=code,
                latitude=float(row["latitude"]),
                longitude=float(row["longitude"]),
                place_name=row["place_name"],
                region_id=region_code,
            )
        )
    return fsas


@transaction.atomic
def reference_load(*, data_dir: Path = DATA_DIR) -> tuple[int, int]:
    """Insert or update the 18 health regions and the 422 FSAs; return (regions, fsas) loaded.

    Both files are read and cross-checked before anything is written, so a bad file changes nothing.
    """
    regions = reference_regions_read(data_dir=data_dir)
    fsas = reference_fsas_read(region_codes={region.code for region in regions}, data_dir=data_dir)
    Region.objects.bulk_create(
        regions, update_conflicts=True, unique_fields=["code"], update_fields=["name_fr"]
    )
    Fsa.objects.bulk_create(
        fsas,
        update_conflicts=True,
        unique_fields=["code"],
        update_fields=["latitude", "longitude", "place_name", "region"],
    )
    return len(regions), len(fsas)
