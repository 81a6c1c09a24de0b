"""Migrations must not lock or rewrite the large tables (config.migration_safety, docs/migrations.md):
the project's own migrations pass, and each unsafe operation is caught while its safe pattern passes."""

import pytest
from django.contrib.postgres.operations import AddIndexConcurrently
from django.db import migrations, models
from django.db.migrations.loader import MigrationLoader

from config import migration_safety
from config.migration_safety import ALLOWED, project_problems

pytestmark = pytest.mark.django_db


@pytest.fixture(scope="module")
def final_state(django_db_setup, django_db_blocker):
    with django_db_blocker.unblock():
        problems, state = project_problems()
    return problems, state


def check(state, *operations, app="booking", atomic=True) -> list[str]:
    migration = migrations.Migration("9999_candidate", app)
    migration.operations = list(operations)
    migration.atomic = atomic
    problems, _ = migration_safety.migration_problems(migration, state.clone())
    return [problem.rule for problem in problems]


def test_no_migration_of_the_project_locks_a_large_table(final_state):
    problems, _ = final_state
    assert problems == [], "\n".join(map(str, problems)) + "\n(see docs/migrations.md for the safe patterns)"


def test_every_allowed_migration_exists():
    loader = MigrationLoader(None, ignore_no_migrations=True)
    assert set(loader.disk_migrations) >= ALLOWED


def test_the_allow_list_is_what_lets_the_first_migrations_through(final_state):
    loader = MigrationLoader(None, ignore_no_migrations=True)
    key = ("booking", "0004_search_indexes")
    problems, _ = migration_safety.migration_problems(
        loader.graph.nodes[key], loader.project_state(key, at_end=False)
    )
    assert {p.rule for p in problems} == {"index-not-concurrent"}


# AddIndexConcurrently refuses to run inside a transaction, even to print its SQL.
@pytest.mark.django_db(transaction=True)
def test_an_index_must_be_built_concurrently(final_state):
    _, state = final_state
    index = models.Index(fields=["created_at"], name="slot_created_at")
    assert check(state, migrations.AddIndex("slot", index)) == ["index-not-concurrent"]
    assert check(state, AddIndexConcurrently("slot", index), atomic=False) == []


def test_an_index_on_a_small_table_is_fine(final_state):
    _, state = final_state
    index = models.Index(fields=["name"], name="clinic_name_idx")
    assert check(state, migrations.AddIndex("clinic", index), app="clinics") == []


def test_a_column_type_change_is_refused(final_state):
    _, state = final_state
    altered = migrations.AlterField("appointment", "external_id", models.TextField(blank=True))
    assert check(state, altered) == ["column-type-change"]


def test_a_not_null_column_needs_a_database_default(final_state):
    _, state = final_state
    assert check(state, migrations.AddField("outboxevent", "attempts", models.IntegerField())) == [
        "not-null-column-without-default"
    ]
    assert (
        check(state, migrations.AddField("outboxevent", "attempts", models.IntegerField(db_default=0))) == []
    )
    assert check(state, migrations.AddField("outboxevent", "attempts", models.IntegerField(null=True))) == []


def test_a_foreign_key_column_builds_an_index_and_validates_under_lock(final_state):
    _, state = final_state
    field = models.ForeignKey("clinics.Region", null=True, on_delete=models.PROTECT)
    rules = check(state, migrations.AddField("slot", "region", field))
    assert "index-not-concurrent" in rules and "constraint-validated-under-lock" in rules


def test_a_check_constraint_or_a_unique_constraint_is_refused(final_state):
    _, state = final_state
    check_constraint = models.CheckConstraint(condition=models.Q(version__gt=0), name="slot_version_positive")
    assert check(state, migrations.AddConstraint("slot", check_constraint)) == [
        "constraint-validated-under-lock"
    ]
    unique = models.UniqueConstraint(fields=["reference", "clinic"], name="appt_reference_clinic")
    assert check(state, migrations.AddConstraint("appointment", unique)) == ["constraint-builds-index"]


def test_making_a_column_not_null_and_dropping_one_are_refused(final_state):
    _, state = final_state
    assert check(state, migrations.AlterField("outboxevent", "notified_at", models.DateTimeField())) == [
        "set-not-null"
    ]
    assert check(state, migrations.RemoveField("outboxevent", "notified_at")) == ["drop-column"]


def test_data_migrations_must_be_reversible_and_never_bulk_update_in_sql(final_state):
    _, state = final_state

    def forward(apps, schema_editor):
        pass

    assert check(state, migrations.RunPython(forward)) == ["runpython-irreversible"]
    assert check(state, migrations.RunPython(forward, migrations.RunPython.noop)) == []
    backfill = migrations.RunSQL("UPDATE booking_slot SET version = version + 1", migrations.RunSQL.noop)
    assert check(state, backfill) == ["bulk-data-change"]
    assert check(state, migrations.RunSQL("SELECT 1")) == ["runsql-irreversible"]
