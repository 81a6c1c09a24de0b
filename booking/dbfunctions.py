"""Database functions that work on PostgreSQL and on the SQLite demo alike."""

import zoneinfo
from datetime import datetime
from typing import TYPE_CHECKING, Any

from django.db import models
from django.db.backends.base.base import BaseDatabaseWrapper
from django.db.backends.signals import connection_created

if TYPE_CHECKING:
    from django.db.models.sql.compiler import SQLCompiler, _AsSqlType


class LocalHour(models.Func):
    """The hour of a UTC timestamp in an IANA time zone held in another column."""

    output_field = models.IntegerField()
    arity = 2

    def as_postgresql(
        self, compiler: "SQLCompiler", connection: BaseDatabaseWrapper, **extra_context: Any
    ) -> "_AsSqlType":
        return self.as_sql(
            compiler,
            connection,
            template="EXTRACT(HOUR FROM (%(expressions)s))::integer",
            arg_joiner=" AT TIME ZONE ",
            **extra_context,
        )

    def as_sqlite(
        self, compiler: "SQLCompiler", connection: BaseDatabaseWrapper, **extra_context: Any
    ) -> "_AsSqlType":
        return self.as_sql(compiler, connection, function="rdv_local_hour", **extra_context)


class LocalDate(models.Func):
    """The calendar date of a UTC timestamp in an IANA time zone held in another column."""

    output_field = models.DateField()
    arity = 2

    def as_postgresql(
        self, compiler: "SQLCompiler", connection: BaseDatabaseWrapper, **extra_context: Any
    ) -> "_AsSqlType":
        return self.as_sql(
            compiler,
            connection,
            template="((%(expressions)s))::date",
            arg_joiner=" AT TIME ZONE ",
            **extra_context,
        )

    def as_sqlite(
        self, compiler: "SQLCompiler", connection: BaseDatabaseWrapper, **extra_context: Any
    ) -> "_AsSqlType":
        return self.as_sql(compiler, connection, function="rdv_local_date", **extra_context)


def _sqlite_local(value: str, tz: str) -> datetime:
    moment = datetime.fromisoformat(value)
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=zoneinfo.ZoneInfo("UTC"))
    return moment.astimezone(zoneinfo.ZoneInfo(tz))


def _sqlite_local_date(value: str | None, tz: str | None) -> str | None:
    if value is None or tz is None:
        return None
    return _sqlite_local(value, tz).date().isoformat()


def _sqlite_local_hour(value: str | None, tz: str | None) -> int | None:
    if value is None or tz is None:
        return None
    return _sqlite_local(value, tz).hour


def _on_connection(sender: object, connection: BaseDatabaseWrapper, **kwargs: Any) -> None:
    if connection.vendor == "sqlite":
        connection.connection.create_function("rdv_local_hour", 2, _sqlite_local_hour, deterministic=True)
        connection.connection.create_function("rdv_local_date", 2, _sqlite_local_date, deterministic=True)


def register_sqlite_functions() -> None:
    connection_created.connect(_on_connection, dispatch_uid="rdv_sqlite_functions")
