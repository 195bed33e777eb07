"""Landing-zone lines → normalized events and rejects, vectorized in DuckDB (no loop per event).

Input: a frame of landing lines (``source_file``, ``source_line``, ``line``), each line one HTTP
delivery ``{"provider", "received_at", "headers", "body"}``. Output: events in the model of
``ingest.email_events.model`` (one per event; a SendGrid delivery holds many), de-duplicated on
(provider, event_id), and rejects with the reason and the original text, for quarantine.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

import duckdb
import polars as pl

from ingest.config import memory_limit
from ingest.email_events import postmark, resend, sendgrid
from ingest.email_events.model import EVENT_COLUMN_NAMES

PROVIDERS = {"sendgrid": sendgrid, "postmark": postmark, "resend": resend}
REJECT_COLUMNS = ("source_file", "source_line", "event_index", "provider", "reason", "raw_text")


@dataclass
class ParseResult:
    events: pl.DataFrame
    rejects: pl.DataFrame
    duplicates: int


def _map_literal(mapping: dict[str, str]) -> str:
    return "MAP {" + ", ".join(f"'{k}': '{v}'" for k, v in mapping.items()) + "}"


def _provider_sql(module) -> str:
    sql = module.SQL
    if hasattr(module, "EVENT_MAP"):
        sql = sql.replace("MAP {EVENT_MAP}", _map_literal(module.EVENT_MAP))
    return sql


PROVIDER_SQL = {name: _provider_sql(m) for name, m in PROVIDERS.items()}


def connect() -> duckdb.DuckDBPyConnection:
    con = duckdb.connect(config={"memory_limit": memory_limit()})  # CRM_MEMORY_LIMIT, as the warehouse
    con.execute("SET TimeZone = 'UTC'")
    con.execute("SET enable_progress_bar = false")
    return con


def parse_lines(lines: pl.DataFrame, con: duckdb.DuckDBPyConnection | None = None) -> ParseResult:
    """Parse landing lines; ``lines`` has ``source_file`` (str), ``source_line`` (int), ``line`` (str)."""
    con = con or connect()
    con.register("lines_in", lines.select("source_file", pl.col("source_line").cast(pl.Int64), "line").to_arrow())
    con.execute("""
        CREATE OR REPLACE TEMP TABLE landing AS
        SELECT source_file, source_line, line, json_valid(line) AS ok FROM lines_in""")
    con.execute("""
        CREATE OR REPLACE TEMP TABLE records AS
        SELECT source_file, source_line, line,
               line->>'provider' AS provider,
               try_cast(line->>'received_at' AS TIMESTAMPTZ) AS received_at,
               line->'headers' AS headers,
               line->>'body' AS body_text
        FROM landing WHERE ok AND json_type(line) = 'OBJECT'""")
    con.execute("""
        CREATE OR REPLACE TEMP TABLE deliveries AS
        SELECT source_file, source_line, line, provider, received_at, headers, body_text::JSON AS body
        FROM records
        WHERE provider IN ('sendgrid', 'postmark', 'resend') AND body_text IS NOT NULL AND json_valid(body_text)""")
    line_rejects = con.sql("""
        SELECT source_file, source_line, 1::BIGINT AS event_index, NULL::VARCHAR AS provider,
               'landing line is not a JSON object' AS reason, line AS raw_text
        FROM landing WHERE NOT ok OR json_type(line) <> 'OBJECT'
        UNION ALL
        SELECT source_file, source_line, 1, provider,
               CASE WHEN provider IS NULL THEN 'landing line without provider'
                    WHEN provider NOT IN ('sendgrid', 'postmark', 'resend') THEN 'unknown provider ' || provider
                    WHEN body_text IS NULL THEN 'landing line without body'
                    ELSE 'body is not JSON' END,
               line
        FROM records
        WHERE provider IS NULL OR provider NOT IN ('sendgrid', 'postmark', 'resend')
           OR body_text IS NULL OR NOT json_valid(body_text)""").pl()
    parsed = con.sql(" UNION ALL BY NAME ".join(f"({sql})" for sql in PROVIDER_SQL.values())).pl()
    con.unregister("lines_in")
    event_rejects = parsed.filter(pl.col("reject_reason").is_not_null()).select(
        "source_file", "source_line", "event_index", "provider", reason="reject_reason",
        raw_text=pl.coalesce("payload", "line"))
    good = parsed.filter(pl.col("reject_reason").is_null())
    before = good.height
    good = (good.sort("received_at", "source_file", "source_line", "event_index", nulls_last=True)
            .unique(["provider", "event_id"], keep="first", maintain_order=True)
            .sort("source_file", "source_line", "event_index"))
    rejects = pl.concat([line_rejects.cast({"event_index": pl.Int64}), event_rejects.cast({"event_index": pl.Int64})],
                        how="vertical_relaxed")
    return ParseResult(events=good.select(EVENT_COLUMN_NAMES), rejects=rejects.select(REJECT_COLUMNS),
                       duplicates=before - good.height)


def parse_delivery(provider: str, body: str | bytes, headers: dict[str, str] | None = None,
                   received_at: str | None = None) -> ParseResult:
    """One HTTP delivery (as the receiver got it) → its events. Same code path as the bulk parser."""
    if isinstance(body, bytes):
        body = body.decode("utf-8", errors="replace")
    line = json.dumps({"provider": provider, "received_at": received_at, "headers": headers or {}, "body": body})
    return parse_lines(pl.DataFrame({"source_file": ["<delivery>"], "source_line": [1], "line": [line]}))
