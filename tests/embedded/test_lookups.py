"""The same answers for `skills__contains_all` on SQLite as on PostgreSQL: the very tests of
tests/contractors/test_lookups.py, collected again in this session."""

from tests.contractors.test_lookups import (  # noqa: F401 (collected here, on SQLite)
    test_contains_all_is_the_subset_test,
    test_contains_all_takes_a_list_of_strings,
)
