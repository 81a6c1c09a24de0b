import shutil
from io import StringIO

import pytest
from django.core.management import call_command

from clinics.models import Fsa, Region
from clinics.reference import DATA_DIR, ReferenceDataError, reference_load

pytestmark = pytest.mark.django_db


def test_reference_load_gives_the_18_regions_and_422_fsas():
    assert reference_load() == (18, 422)

    assert Region.objects.count() == 18
    assert Fsa.objects.count() == 422
    assert Region.objects.get(code="06").name_fr == "Montréal"
    islands = Fsa.objects.get(code="G0B")
    assert (islands.region_id, islands.place_name) == ("11", "Cap-aux-Meules")
    assert islands.latitude == pytest.approx(47.3983)
    assert Fsa.objects.get(code="H7N").region_id == "13"


def test_loading_twice_changes_nothing_and_repairs_edited_rows():
    reference_load()
    Fsa.objects.filter(code="H2X").update(place_name="edited", region_id="01", latitude=0)
    Region.objects.filter(code="06").update(name_fr="edited")

    assert reference_load() == (18, 422)

    assert Region.objects.count() == 18
    assert Fsa.objects.count() == 422
    plateau = Fsa.objects.get(code="H2X")
    assert (plateau.place_name, plateau.region_id) == ("Plateau Mont-Royal Southeast", "06")
    assert plateau.latitude > 45
    assert Region.objects.get(code="06").name_fr == "Montréal"


def test_an_fsa_without_a_region_is_refused_and_nothing_is_written(tmp_path):
    for path in DATA_DIR.glob("*.csv"):
        shutil.copy(path, tmp_path / path.name)
    regions_file = tmp_path / "quebec_fsa_regions.csv"
    lines = regions_file.read_text(encoding="utf-8").splitlines()
    regions_file.write_text(
        "\n".join(line for line in lines if not line.startswith("H2X")) + "\n", encoding="utf-8"
    )

    with pytest.raises(ReferenceDataError, match="H2X"):
        reference_load(data_dir=tmp_path)

    assert not Fsa.objects.exists()
    assert not Region.objects.exists()


def test_the_command_loads_and_reports_the_counts():
    out = StringIO()

    call_command("load_reference", stdout=out)
    call_command("load_reference", stdout=out)

    assert out.getvalue().count("18 regions, 422 FSAs") == 2
    assert Fsa.objects.count() == 422


@pytest.mark.django_db
def test_a_woman_doctor_is_dre_in_french_and_dr_in_english():
    from django.utils import translation

    from tests.factories import PractitionerFactory

    her = PractitionerFactory(first_name="Marie", last_name="Roy", feminine_title=True)
    him = PractitionerFactory(first_name="Marc", last_name="Roy", feminine_title=False)
    nurse = PractitionerFactory(first_name="Anne", last_name="Roy", kind="np", feminine_title=True)
    with translation.override("fr"):
        assert (her.display_name, him.display_name, nurse.display_name) == (
            "Dre Marie Roy",
            "Dr Marc Roy",
            "Anne Roy",
        )
    with translation.override("en"):
        assert (her.display_name, him.display_name) == ("Dr Marie Roy", "Dr Marc Roy")
