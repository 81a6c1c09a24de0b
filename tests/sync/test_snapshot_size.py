"""The largest agenda snapshot the API promises (10,000 slots, about 4 MB) is accepted."""

import pytest

from sync import snapshots
from tests.sync.test_snapshots import _base, entry, post, snapshot_body

pytestmark = pytest.mark.django_db


def test_a_snapshot_of_the_maximum_size_is_accepted_and_one_more_slot_is_refused(fhir_a, persona_a, settings):
    settings.SYNC_API_RATE = "100000/m"
    base = _base()
    slots = [entry(persona_a, f"E{i}", i, minutes=15, base=base) for i in range(snapshots.MAX_SLOTS)]
    hours = snapshots.MAX_SLOTS // 2 + 1
    body = snapshot_body(1, slots, base=base, hours=hours)
    response = post(fhir_a, persona_a.role, body)
    assert response.status_code == 202, response.content[:300]
    too_many = snapshot_body(
        2,
        [*slots, entry(persona_a, "X", snapshots.MAX_SLOTS, minutes=15, base=base)],
        base=base,
        hours=hours + 1,
    )
    refused = post(fhir_a, persona_a.role, too_many)
    assert refused.status_code in (400, 413, 422), refused.status_code
