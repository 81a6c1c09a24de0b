import pytest

from clinics.reference import reference_load


@pytest.mark.django_db
def test_probe():
    assert reference_load() == (18, 422)
