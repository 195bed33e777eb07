"""The ``ops`` schema's shared pieces: batch ids and the batch log every loader appends to."""

from __future__ import annotations

import datetime as dt
import secrets

BATCH_COLUMNS = (
    ("batch_id", "VARCHAR"), ("asset", "VARCHAR"), ("started_at", "TIMESTAMPTZ"), ("finished_at", "TIMESTAMPTZ"),
    ("rows_read", "BIGINT"), ("rows_written", "BIGINT"), ("rows_deleted", "BIGINT"), ("duplicates", "BIGINT"),
    ("rejected", "BIGINT"), ("status", "VARCHAR"), ("message", "VARCHAR"),
)


def new_batch_id(prefix: str) -> str:
    return f"{prefix}-{dt.datetime.now(dt.timezone.utc):%Y%m%dT%H%M%S}-{secrets.token_hex(3)}"
