"""The source tables the warehouse ingests and how each is read incrementally.

- ``mutable``: rows change and carry an ``updated_at`` kept by triggers: cursor on it, re-read a
  lookback window (late-committing transactions), merge on the primary key.
- ``append``: rows are only inserted, with their own time (``created_at``, ``moved_at``): cursor
  on it with the same overlap, de-duplicated on the key.
- ``full``: no usable cursor: full extract compared by key.
Every kind detects hard deletes by comparing key sets.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class TableSpec:
    source: str          # schema-qualified source table
    raw: str             # table name in the warehouse's raw schema
    kind: str            # mutable | append | full
    cursor: str | None   # cursor column, None for full


APPEND_ONLY = {"lead_activities": "created_at", "email_clicks": "created_at", "deal_stage_history": "moved_at"}
FULL = {"pipeline_metrics"}  # rewritten by the app's nightly job, only created_at: compare by key

SOURCE_TABLES: tuple[str, ...] = (
    "auth.users", "companies", "user_profiles", "leads", "lead_activities", "demo_requests",
    "sales_contact_requests", "contacts", "opportunities", "pipeline_templates", "pipeline_stages",
    "deals", "deal_stage_history", "deal_activities", "crm_activities", "email_campaigns",
    "email_sends", "email_queue", "email_clicks", "email_unsubscribes", "email_preferences",
    "sales_quotas", "lead_routing_rules", "pipeline_metrics", "estimates", "tasks",
)


def spec(table: str) -> TableSpec:
    schema, _, name = table.rpartition(".")
    source = table if schema else f"public.{table}"
    if name in APPEND_ONLY:
        return TableSpec(source, name, "append", APPEND_ONLY[name])
    if name in FULL:
        return TableSpec(source, name, "full", None)
    return TableSpec(source, name, "mutable", "updated_at")


SPECS: tuple[TableSpec, ...] = tuple(spec(t) for t in SOURCE_TABLES)


# Parents whose ON DELETE CASCADE removes rows of a table: they are ingested first, so their
# deletions flag the children's rows without a key comparison against the source (raw_load).
CASCADE_PARENTS: dict[str, tuple[str, ...]] = {
    "user_profiles": ("users",), "lead_activities": ("leads",), "crm_activities": ("leads", "opportunities"),
    "deal_stage_history": ("deals",), "deal_activities": ("deals",), "pipeline_stages": ("pipeline_templates",),
    "email_queue": ("email_campaigns",), "email_clicks": ("email_sends",), "estimates": ("opportunities",),
    "tasks": ("deals", "leads", "opportunities"),
}
