"""A migration linter for the tables that are large at provincial size (docs/migrations.md).

A migration runs while the previous release still serves traffic. On ``booking_slot``,
``booking_appointment``, ``booking_outboxevent`` or ``sync_auditevent`` (tens to hundreds of millions
of rows) an ``ACCESS EXCLUSIVE`` lock held for a table rewrite or a full scan stops every booking for
minutes. So each migration's SQL is generated exactly as ``migrate`` would run it (the schema editor
in collect mode, as ``sqlmigrate`` does) and every statement on a large table is checked against the
rules below; a ``RunPython`` must be reversible, since its SQL cannot be seen.

Migrations written before the tables held data are listed in ``ALLOWED``; a new one is never added
there without a written reason (and usually the safe pattern instead, docs/migrations.md).
"""

import re
from dataclasses import dataclass

from django.db import connection
from django.db.migrations import Migration, RunPython, RunSQL
from django.db.migrations.loader import MigrationLoader
from django.db.migrations.state import ProjectState

BIG_TABLES = frozenset({"booking_slot", "booking_appointment", "booking_outboxevent", "sync_auditevent"})
PROJECT_APPS = ("clinics", "citizens", "booking", "sync")
# The apps that own the large tables: only their migrations (and raw SQL anywhere) can touch them.
BIG_TABLE_APPS = ("booking", "sync")

# Reviewed by hand, written before the tables held data (first deployment). Nothing new goes here
# without a reason next to it.
ALLOWED: frozenset[tuple[str, str]] = frozenset(
    {
        ("booking", "0001_initial"),
        ("booking", "0002_initial"),
        ("booking", "0003_postgres_exclusions"),
        ("booking", "0004_search_indexes"),
        ("booking", "0005_emr_external_id"),
        ("booking", "0006_appointment_rescheduled_from"),
        ("booking", "0007_outbox_feed_seq"),
        ("booking", "0008_reminder"),
        ("sync", "0001_initial"),
        ("sync", "0002_auditevent"),
        ("sync", "0003_auditevent_feed_action"),
        ("sync", "0004_webhooksubscription"),
        ("sync", "0005_agenda_snapshot"),
    }
)

_TABLE = r"(?:ONLY\s+)?(?:IF\s+EXISTS\s+)?(?:public\.)?(?P<table>\w+)"
# (rule, pattern on the normalized statement, advice). The first matching rule wins per statement.
_RULES: list[tuple[str, re.Pattern[str], str]] = [
    (
        "index-not-concurrent",
        re.compile(
            rf"^CREATE\s+(UNIQUE\s+)?INDEX\s+(?!CONCURRENTLY)(IF\s+NOT\s+EXISTS\s+)?\S+\s+ON\s+{_TABLE}"
        ),
        "use AddIndexConcurrently (or CREATE INDEX CONCURRENTLY) in a non-atomic migration",
    ),
    (
        "column-type-change",
        re.compile(rf"^ALTER\s+TABLE\s+{_TABLE}\s+.*ALTER\s+COLUMN\s+\S+\s+(SET\s+DATA\s+)?TYPE\s"),
        "changing a column's type rewrites the table: add a new column, backfill in batches, switch",
    ),
    (
        "set-not-null",
        re.compile(rf"^ALTER\s+TABLE\s+{_TABLE}\s+.*ALTER\s+COLUMN\s+\S+\s+SET\s+NOT\s+NULL"),
        "scans the table under an exclusive lock: add CHECK (col IS NOT NULL) NOT VALID, VALIDATE it, "
        "then SET NOT NULL",
    ),
    (
        "not-null-column-without-default",
        re.compile(rf"^ALTER\s+TABLE\s+{_TABLE}\s+ADD\s+COLUMN\s+(?!.*\sDEFAULT\s).*\sNOT\s+NULL"),
        "a NOT NULL column needs a db_default (constant: no rewrite since PostgreSQL 11) or null=True",
    ),
    (
        "constraint-builds-index",
        re.compile(
            rf"^ALTER\s+TABLE\s+{_TABLE}\s+ADD\s+CONSTRAINT\s+\S+\s+(UNIQUE|PRIMARY\s+KEY|EXCLUDE)(?!.*USING\s+INDEX)"
        ),
        "build the unique index CONCURRENTLY first, then ADD CONSTRAINT … USING INDEX",
    ),
    (
        "constraint-validated-under-lock",
        re.compile(
            rf"^ALTER\s+TABLE\s+{_TABLE}\s+(ADD\s+CONSTRAINT\s+\S+\s+(CHECK|FOREIGN\s+KEY)(?!.*NOT\s+VALID)"
            r"|ADD\s+COLUMN\s+.*\sREFERENCES\s)"
        ),
        "add the constraint NOT VALID (a ForeignKey: db_constraint=False first), then VALIDATE CONSTRAINT "
        "in a later migration",
    ),
    (
        "rename",
        re.compile(rf"^ALTER\s+TABLE\s+{_TABLE}\s+RENAME\s"),
        "the running release still uses the old name: add the new column or table, copy, switch, drop",
    ),
    (
        "drop-column",
        re.compile(rf"^ALTER\s+TABLE\s+{_TABLE}\s+.*DROP\s+COLUMN"),
        "first release code that no longer reads the column, then drop it in a later release",
    ),
    (
        "table-lock-or-rewrite",
        re.compile(rf"^(LOCK\s+TABLE|VACUUM\s+FULL|CLUSTER)\s+{_TABLE}"),
        "never on a large table in a migration",
    ),
    (
        "bulk-data-change",
        re.compile(rf"^(UPDATE|DELETE\s+FROM|INSERT\s+INTO)\s+{_TABLE}(?!.*\sVALUES\s)"),
        "backfill in small batches from a management command, outside the migration's transaction",
    ),
]


@dataclass(frozen=True)
class Problem:
    migration: str  # "app.name"
    rule: str
    statement: str
    advice: str

    def __str__(self) -> str:
        return f"{self.migration}: {self.rule}: {self.statement[:160]} → {self.advice}"


def _normalize(sql: str) -> str:
    return re.sub(r"\s+", " ", sql.replace('"', "")).strip().rstrip(";").upper().replace("PUBLIC.", "")


def statement_problems(sql: str) -> list[tuple[str, str]]:
    """(rule, advice) for one SQL statement, if it is unsafe on a large table."""
    text = _normalize(sql)
    for rule, pattern, advice in _RULES:
        match = pattern.search(text)
        if match and match.group("table").lower() in BIG_TABLES:
            return [(rule, advice)]
    return []


def _collected_statements(migration: Migration, state: ProjectState) -> tuple[list[str], ProjectState]:
    with connection.schema_editor(collect_sql=True, atomic=migration.atomic) as editor:
        state = migration.apply(state, editor, collect_sql=True)
    return [sql for sql in editor.collected_sql if sql.strip() and not sql.lstrip().startswith("--")], state


def migration_problems(migration: Migration, state: ProjectState) -> tuple[list[Problem], ProjectState]:
    """The problems of one migration applied on ``state``; returns the state after it."""
    name = f"{migration.app_label}.{migration.name}"
    problems = []
    for operation in migration.operations:
        if isinstance(operation, RunPython) and operation.reverse_code is None:
            problems.append(
                Problem(
                    name, "runpython-irreversible", operation.describe(), "give reverse_code (RunPython.noop)"
                )
            )
        if isinstance(operation, RunSQL) and operation.reverse_sql is None:
            problems.append(Problem(name, "runsql-irreversible", operation.describe(), "give reverse_sql"))
    if migration.app_label not in BIG_TABLE_APPS and not any(
        isinstance(operation, RunSQL) for operation in migration.operations
    ):
        return problems, migration.mutate_state(state, preserve=False)
    statements, state = _collected_statements(migration, state)
    for sql in statements:
        for rule, advice in statement_problems(sql):
            problems.append(Problem(name, rule, sql.strip(), advice))
    return problems, state


def project_problems(*, allowed: frozenset[tuple[str, str]] = ALLOWED) -> tuple[list[Problem], ProjectState]:
    """Every problem of every project migration not in ``allowed``, in migration order, and the
    project state at the end (to check a migration not written yet, as the tests do)."""
    loader = MigrationLoader(connection, ignore_no_migrations=True)
    plan: list[tuple[str, str]] = []
    for leaf in loader.graph.leaf_nodes():
        for node in loader.graph.forwards_plan(leaf):
            if node not in plan:
                plan.append(node)
    state = ProjectState(real_apps=loader.unmigrated_apps)
    problems: list[Problem] = []
    for app_label, name in plan:
        migration = loader.graph.nodes[(app_label, name)]
        if app_label in PROJECT_APPS and (app_label, name) not in allowed:
            found, state = migration_problems(migration, state)
            problems.extend(found)
        else:
            # Only the model state moves on: generating old migrations' SQL would introspect today's
            # database, where their constraints may have changed since.
            state = migration.mutate_state(state, preserve=False)
    return problems, state
