"""The source tables the warehouse ingests and how each is read incrementally.

- ``mutable``: rows change and carry an ``updated_at`` kept by triggers: cursor on it, re-read a
  lookback window (late-committing transactions), merge on the primary key.
- ``append``: rows are only inserted, with their own time (``created_at``, ``moved_at``): cursor
  on it with the same overlap, de-duplicated on the key.
- ``full``: no usable cursor: full extract compared by key.
Every kind detects hard deletes by comparing key sets.

``SPECS`` is the contract's expectation; ``read_mode`` settles each table's kind from the columns
the source actually has (a live ``email_unsubscribes`` has no ``updated_at``: append on
``created_at``).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

from contract.tables import (CASCADE_PARENTS, EVENT_TIME, EVENT_TIME_FALLBACK, FULL_COMPARE,  # noqa: F401
                             SOURCE_TABLES)


@dataclass(frozen=True)
class TableSpec:
    source: str          # schema-qualified source table
    raw: str             # table name in the warehouse's raw schema
    kind: str            # mutable | append | full
    cursor: str | None   # cursor column, None for full


def spec(table: str) -> TableSpec:
    schema, _, name = table.rpartition(".")
    source = table if schema else f"public.{table}"
    if name in EVENT_TIME:
        return TableSpec(source, name, "append", EVENT_TIME[name])
    if name in FULL_COMPARE:
        return TableSpec(source, name, "full", None)
    return TableSpec(source, name, "mutable", "updated_at")


def read_mode(s: TableSpec, columns: set[str] | frozenset[str]) -> TableSpec:
    """``s`` as the source's columns allow: its cursor if the table has it; else ``updated_at``, then
    an event time (append-only); else a full compare."""
    if s.kind == "full" or (s.cursor and s.cursor in columns):
        return s
    if "updated_at" in columns:
        return dataclasses.replace(s, kind="mutable", cursor="updated_at")
    for c in (EVENT_TIME.get(s.raw), *EVENT_TIME_FALLBACK):
        if c and c in columns:
            return dataclasses.replace(s, kind="append", cursor=c)
    return dataclasses.replace(s, kind="full", cursor=None)


SPECS: tuple[TableSpec, ...] = tuple(spec(t) for t in SOURCE_TABLES)
