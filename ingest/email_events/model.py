"""The one event model every provider's delivery is turned into (``raw.email_events``)."""

from __future__ import annotations

# Normalized event types (PRODUCT.md / issue 4), the provider names mapped onto them in each module.
EVENT_TYPES: tuple[str, ...] = (
    "processed", "delivered", "deferred", "bounce", "dropped", "failed", "open", "click",
    "spam_report", "unsubscribe", "resubscribe", "suppressed",
)
BOUNCE_CLASSES: tuple[str, ...] = ("hard", "soft", "block")

# (name, DuckDB type) of raw.email_events, in order.
EVENT_COLUMNS: tuple[tuple[str, str], ...] = (
    ("event_id", "VARCHAR"),             # provider's unique id: sg_event_id, Postmark ID or composite, svix-id
    ("provider", "VARCHAR"),             # sendgrid | postmark | resend
    ("provider_message_id", "VARCHAR"),  # joins email_sends (email_provider, email_provider_id)
    ("event_type", "VARCHAR"),           # one of EVENT_TYPES
    ("provider_event_type", "VARCHAR"),  # the provider's own name (event, RecordType/Type, type)
    ("occurred_at", "TIMESTAMPTZ"),      # when it happened, UTC
    ("recipient", "VARCHAR"),
    ("url", "VARCHAR"),                  # clicked link
    ("bounce_class", "VARCHAR"),         # hard | soft | block, bounces only
    ("is_machine_open", "BOOLEAN"),      # privacy-proxy (machine) open, SendGrid's sg_machine_open
    ("user_agent", "VARCHAR"),
    ("ip", "VARCHAR"),
    ("tags", "VARCHAR[]"),               # categories / tags, "name:value" for key-value tags
    ("payload", "VARCHAR"),              # the event's original JSON
    ("received_at", "TIMESTAMPTZ"),      # when the delivery reached the receiver
    ("source_file", "VARCHAR"),          # landing file, relative to the landing zone
    ("source_line", "BIGINT"),           # 1-based line in that file
    ("event_index", "BIGINT"),           # position in a SendGrid batch (1 for single-event bodies)
)
EVENT_COLUMN_NAMES = tuple(c for c, _ in EVENT_COLUMNS)
