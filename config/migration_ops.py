"""Migration operations that keep the large-table rules of docs/migrations.md on PostgreSQL and still
run on the demo's SQLite database (``make run``), which has no concurrent index builds."""

from typing import Any

from django.contrib.postgres.operations import AddIndexConcurrently
from django.db import migrations


class AddIndexConcurrentlyPortable(AddIndexConcurrently):
    """``CREATE INDEX CONCURRENTLY`` on PostgreSQL, a plain ``CREATE INDEX`` elsewhere."""

    def database_forwards(self, app_label: str, schema_editor: Any, from_state: Any, to_state: Any) -> None:
        if schema_editor.connection.vendor == "postgresql":
            super().database_forwards(app_label, schema_editor, from_state, to_state)
        else:
            migrations.AddIndex.database_forwards(self, app_label, schema_editor, from_state, to_state)

    def database_backwards(self, app_label: str, schema_editor: Any, from_state: Any, to_state: Any) -> None:
        if schema_editor.connection.vendor == "postgresql":
            super().database_backwards(app_label, schema_editor, from_state, to_state)
        else:
            migrations.AddIndex.database_backwards(self, app_label, schema_editor, from_state, to_state)


def drop_index_concurrently(table: str, index: str, create: str) -> migrations.RunPython:
    """Drop ``index`` of ``table`` without blocking writes on PostgreSQL (``DROP INDEX CONCURRENTLY``;
    the migration must not be atomic); ``create`` is the column list to build it again on the way back."""

    def forwards(apps: Any, schema_editor: Any) -> None:
        concurrently = "CONCURRENTLY " if schema_editor.connection.vendor == "postgresql" else ""
        schema_editor.execute(f'DROP INDEX {concurrently}IF EXISTS "{index}"')

    def backwards(apps: Any, schema_editor: Any) -> None:
        concurrently = "CONCURRENTLY " if schema_editor.connection.vendor == "postgresql" else ""
        schema_editor.execute(f'CREATE INDEX {concurrently}IF NOT EXISTS "{index}" ON "{table}" ({create})')

    return migrations.RunPython(forwards, backwards, elidable=False)
