"""Tamper-evident audit logs: every audit row is a link of a hash chain.

Each row stores ``prev_hash`` (the ``chain_hash`` of the row before it, or ``GENESIS`` for the
first) and ``chain_hash = sha256(prev_hash + canonical JSON of its fields)``. Editing a row in SQL
breaks its own hash; deleting one breaks the next row's link; rewriting every hash after an edit
changes the head, which the board notes down outside the database (docs/security.md). The rows hold
ids, never personal data, so anonymizing old records keeps every chain verifiable.

Appends take a PostgreSQL transaction-level advisory lock per chain, read the head, link the new
rows and insert them before committing: under concurrency the chain stays one line, and row ids
(assigned at insert, under the lock) follow it. On SQLite (the demo) writers are serialized anyway.

Each chain is registered here (``chain_register``) by the app that owns its model: the clinics
chain below, the EMR chain by ``sync`` (domain apps never import ``sync``).
"""

import hashlib
import json
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from django.db import connections, models, router, transaction
from django.utils.functional import Promise

GENESIS = "0" * 64


@dataclass(frozen=True)
class Chain:
    name: str  # short and stable: in the command's output and the board page
    label: str | Promise
    model: type[models.Model]
    fields: tuple[str, ...]  # attribute names (``user_id``, not ``user``) covered by the hash
    lock_key: int  # the advisory lock key: any constant unique within the database


_CHAINS: dict[str, Chain] = {}


def chain_register(chain: Chain) -> None:
    _CHAINS[chain.name] = chain


def chains() -> list[Chain]:
    return [_CHAINS[name] for name in sorted(_CHAINS)]


def chain_for_model(model: type[models.Model]) -> Chain:
    for chain in _CHAINS.values():
        if chain.model._meta.label == model._meta.label:
            return chain
    raise LookupError(model._meta.label)


def _plain(value: Any) -> Any:
    if isinstance(value, datetime):
        # One spelling per instant, whatever the connection's time zone: UTC, microseconds.
        return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    return value


def canonical(row: models.Model, fields: Sequence[str]) -> str:
    return json.dumps(
        {name: _plain(getattr(row, name)) for name in fields},
        sort_keys=True,
        separators=(",", ":"),
        ensure_ascii=False,
    )


def link_hash(prev_hash: str, row: models.Model, fields: Sequence[str]) -> str:
    return hashlib.sha256((prev_hash + canonical(row, fields)).encode()).hexdigest()


def chain_append(chain: Chain, rows: list[Any]) -> list[Any]:
    """Link ``rows`` (unsaved, fields filled in) after the head of ``chain`` and insert them.

    Runs in its own transaction, or in the caller's: the lock is then held until the caller commits,
    so callers keep that transaction short (it serializes the chain's writers).
    """
    if not rows:
        return rows
    using = router.db_for_write(chain.model)
    with transaction.atomic(using=using):
        connection = connections[using]
        if connection.vendor == "postgresql":
            with connection.cursor() as cursor:
                # Waits for the previous appender's commit: the head read below is then the latest.
                cursor.execute("SELECT pg_advisory_xact_lock(%s)", [chain.lock_key])
        head = (
            chain.model._default_manager.using(using)
            .order_by("-pk")
            .values_list("chain_hash", flat=True)
            .first()
        )
        prev = head or GENESIS
        for row in rows:
            row.prev_hash = prev
            row.chain_hash = prev = link_hash(prev, row, chain.fields)
        chain.model._default_manager.using(using).bulk_create(rows)
    return rows


def chain_relink(model: type[models.Model], fields: Sequence[str]) -> int:
    """Compute every link from the start (the migration that introduced the chain, on old rows)."""
    prev, done = GENESIS, 0
    row: Any
    for row in model._default_manager.order_by("pk").iterator(chunk_size=2000):
        row.prev_hash = prev
        row.chain_hash = prev = link_hash(prev, row, fields)
        row.save(update_fields=["prev_hash", "chain_hash"])
        done += 1
    return done


@dataclass(frozen=True)
class ChainReport:
    """The result of checking one chain. ``broken_id`` is the first row whose link does not hold:
    ``changed`` (its fields no longer match its own hash) or ``unlinked`` (it does not follow the
    row before it: a row was deleted, inserted or re-hashed just before it)."""

    chain: Chain
    rows_checked: int
    head_id: int | None
    head_hash: str
    broken_id: int | None = None
    problem: str = ""

    @property
    def ok(self) -> bool:
        return self.broken_id is None


def _rows(chain: Chain) -> Iterator[Any]:
    return chain.model._default_manager.order_by("pk").iterator(chunk_size=5000)


def chain_verify(chain: Chain) -> ChainReport:
    """Walk the chain from the start and stop at the first broken link."""
    prev, checked, head_id = GENESIS, 0, None
    for row in _rows(chain):
        if row.prev_hash != prev:
            return ChainReport(chain, checked, head_id, prev, broken_id=row.pk, problem="unlinked")
        if link_hash(prev, row, chain.fields) != row.chain_hash:
            return ChainReport(chain, checked, head_id, prev, broken_id=row.pk, problem="changed")
        prev, head_id, checked = row.chain_hash, row.pk, checked + 1
    return ChainReport(chain, checked, head_id, prev)
