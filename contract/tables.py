"""The source tables the warehouse ingests, and what it knows of each beyond its catalogue.

- ``SOURCE_TABLES``: every CRM table (``auth.users`` lands as ``raw.users``).
- ``EVENT_TIME``: append-only tables and the event time their rows carry. A table with an
  ``updated_at`` column is read on it; one with neither is compared in full. Which columns a table
  has is read from the source at run time (``ingest.tables.read_mode``), not declared here.
- ``FULL_COMPARE``: tables rewritten wholesale by the application, compared by key every run.
- ``CASCADE_PARENTS``: parents whose ON DELETE CASCADE removes a table's rows.
- ``FRESHNESS_TABLES``: tables the application writes every business day.
"""

from __future__ import annotations

SOURCE_TABLES: tuple[str, ...] = (
    "auth.users", "companies", "user_profiles", "leads", "lead_activities", "demo_requests",
    "sales_contact_requests", "contacts", "opportunities", "pipeline_templates", "pipeline_stages",
    "deals", "deal_stage_history", "deal_activities", "crm_activities", "email_campaigns",
    "email_sends", "email_queue", "email_clicks", "email_unsubscribes", "email_preferences",
    "sales_quotas", "lead_routing_rules", "pipeline_metrics", "estimates", "tasks",
)

# append-only tables: their own event time is the cursor (with the lookback's overlap)
EVENT_TIME: dict[str, str] = {"lead_activities": "created_at", "email_clicks": "created_at",
                              "deal_stage_history": "moved_at"}
# a table without updated_at whose rows still change: compared in full rather than read by created_at
FULL_COMPARE: frozenset[str] = frozenset({"pipeline_metrics"})
# append-only candidates tried, in order, for a table without updated_at (live email_unsubscribes)
EVENT_TIME_FALLBACK: tuple[str, ...] = ("created_at",)

# Parents whose ON DELETE CASCADE removes rows of a table: they are ingested first, so their
# deletions flag the children's rows without a key comparison against the source (raw_load).
CASCADE_PARENTS: dict[str, tuple[str, ...]] = {
    "user_profiles": ("users",), "lead_activities": ("leads",), "crm_activities": ("leads", "opportunities"),
    "deal_stage_history": ("deals",), "deal_activities": ("deals",), "pipeline_stages": ("pipeline_templates",),
    "email_queue": ("email_campaigns",), "email_clicks": ("email_sends",), "estimates": ("opportunities",),
    "tasks": ("deals", "leads", "opportunities"),
}

# Tables the application writes to every business day: a watermark older than CRM_FRESHNESS_HOURS
# (default 48) behind the source's clock means the source stopped changing (a warning, not a block).
FRESHNESS_TABLES: tuple[str, ...] = ("leads", "lead_activities", "deals", "deal_stage_history", "email_sends")


def raw_name(table: str) -> str:
    return table.rpartition(".")[2]


def qualified(table: str) -> str:
    return table if "." in table else f"public.{table}"
