"""`skills__contains_all` (contractors/lookups.py) gives the same answers as Python's subset test,
on PostgreSQL (jsonb @>) here and on SQLite (json_each) in tests/embedded/test_lookups.py."""

import pytest

from contractors.models import Contractor
from tests.contractors.factories import ContractorFactory

SKILL_SETS = [[], ["tile"], ["grout", "tile"], ["carpet"], ["tile", "grout", "epoxy"], ["Tile"]]
WANTED = [[], ["tile"], ["grout", "tile"], ["tile", "tile"], ["epoxy", "grout"], ["tile "], ["x"]]


@pytest.mark.django_db
@pytest.mark.parametrize("wanted", WANTED)
def test_contains_all_is_the_subset_test(wanted):
    contractors = [ContractorFactory(skills=skills) for skills in SKILL_SETS]
    expected = {c.pk for c in contractors if set(wanted) <= set(c.skills)}
    found = set(Contractor.objects.filter(skills__contains_all=wanted).values_list("pk", flat=True))
    assert found == expected


def test_contains_all_takes_a_list_of_strings():
    with pytest.raises(TypeError):
        Contractor.objects.filter(skills__contains_all="tile")
    with pytest.raises(TypeError):
        Contractor.objects.filter(skills__contains_all=[1])
