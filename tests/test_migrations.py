"""The squashed migrations (a new database runs them: every test database does)."""

import pytest
from django.db import connection
from django.db.migrations.executor import MigrationExecutor
from django.db.migrations.recorder import MigrationRecorder

pytestmark = pytest.mark.django_db

SQUASHED = {
    ("contractors", "0001_squashed_0003_drop_plaintext_api_tokens"): 3,
    ("events", "0001_squashed_0006_relay_dedicated"): 6,
    ("scheduling", "0001_squashed_0003_assignment_lifecycle_times"): 3,
}


def plan() -> tuple[MigrationExecutor, list]:
    executor = MigrationExecutor(connection)
    return executor, executor.migration_plan(executor.loader.graph.leaf_nodes())


def test_each_app_squash_replaces_the_migrations_it_was_made_from():
    executor, _ = plan()
    replacing = {
        key: len(migration.replaces)
        for key, migration in executor.loader.disk_migrations.items()
        if migration.replaces
    }
    assert replacing == SQUASHED


def test_a_database_that_applied_the_old_migrations_takes_the_squash_as_applied():
    recorder = MigrationRecorder(connection)
    executor, _ = plan()
    for key in SQUASHED:
        recorder.record_unapplied(*key)
        for app, name in executor.loader.disk_migrations[key].replaces:
            recorder.record_applied(app, name)

    executor, steps = plan()

    assert steps == []
    assert set(SQUASHED) <= set(executor.loader.applied_migrations)
