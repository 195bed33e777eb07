"""Landing zone → ``raw.email_events`` (+ ``quarantine.email_events``), on either warehouse target.

The landing zone is read in chunks of bounded size; one transaction per chunk holds its new
events, its quarantined lines, the per-file offsets it reached and the run's batch row so far: a run
killed at any point leaves the chunks it committed, and the next run goes on from their offsets.
Re-running with nothing new changes nothing. Each complete landing line is read
once; events already stored (same provider and event id: retried deliveries) are not stored
again; late and out-of-order deliveries are simply new rows.
"""

from __future__ import annotations

import datetime as dt
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import polars as pl

from ingest.email_events.landing import DEFAULT_CHUNK_BYTES, FileMark, new_line_chunks
from ingest.email_events.model import EVENT_COLUMNS, EVENT_COLUMN_NAMES
from ingest.email_events.parse import parse_lines
from ingest.ops import BATCH_COLUMNS, new_batch_id
from ingest.progress import rate
from ingest.warehouse import Warehouse, create_table, insert_row
from quality.check_results import check_row, record

RAW_COLUMNS = EVENT_COLUMNS + (("_ingested_at", "TIMESTAMPTZ"), ("_batch_id", "VARCHAR"), ("_deleted_at", "TIMESTAMPTZ"))
QUARANTINE_COLUMNS = (
    ("_batch_id", "VARCHAR"), ("source_file", "VARCHAR"), ("source_line", "BIGINT"), ("event_index", "BIGINT"),
    ("provider", "VARCHAR"), ("reason", "VARCHAR"), ("raw_text", "VARCHAR"), ("quarantined_at", "TIMESTAMPTZ"),
)
FILES_COLUMNS = (("source_file", "VARCHAR"), ("byte_offset", "BIGINT"), ("lines", "BIGINT"),
                 ("_batch_id", "VARCHAR"), ("updated_at", "TIMESTAMPTZ"))


@dataclass
class EmailIngestResult:
    batch_id: str
    lines_read: int = 0
    files_read: int = 0
    events_parsed: int = 0
    events_new: int = 0
    duplicates: int = 0
    rejected: int = 0
    seconds: float = 0.0
    new_by_type: dict[str, int] = field(default_factory=dict)
    rejected_by_reason: dict[str, int] = field(default_factory=dict)
    rules_checked: list[str] = field(default_factory=list)
    rules_enforced: list[str] = field(default_factory=list)
    rule_failures: dict[str, int] = field(default_factory=dict)


def ensure_tables(wh: Warehouse) -> None:
    with wh.transaction():
        create_table(wh, "raw.email_events", RAW_COLUMNS, ("provider", "event_id"))
        create_table(wh, "quarantine.email_events", QUARANTINE_COLUMNS)
        create_table(wh, "ops.email_landing_files", FILES_COLUMNS, ("source_file",))
        create_table(wh, "ops.ingest_batches", BATCH_COLUMNS, ("batch_id",))


def ingest_email_events(wh: Warehouse, landing_dir: Path, *, full_refresh: bool = False,
                        chunk_bytes: int = DEFAULT_CHUNK_BYTES,
                        progress: Callable[[str], None] | None = None) -> EmailIngestResult:
    """The landing zone's new lines into raw, in chunks of about ``chunk_bytes`` (memory is bounded by
    the chunk, not by the backlog). Each chunk is one transaction: its events, its quarantined lines,
    the file offsets it reached and the run's batch row so far; a run killed between chunks keeps the
    chunks it committed and the next run goes on from their offsets."""
    t0 = time.perf_counter()
    started = dt.datetime.now(dt.timezone.utc)
    result = EmailIngestResult(batch_id=new_batch_id("email_events"))
    ensure_tables(wh)
    if full_refresh:
        with wh.transaction():
            for table in ("raw.email_events", "quarantine.email_events", "ops.email_landing_files"):
                wh.execute(f"DELETE FROM {table}")
    marks_df = wh.query("SELECT source_file, byte_offset, lines FROM ops.email_landing_files")
    marks = {r[0]: FileMark(int(r[1]), int(r[2])) for r in marks_df.iter_rows()}
    files: set[str] = set()
    for lines, new_marks in new_line_chunks(Path(landing_dir), marks, chunk_bytes):
        with wh.transaction():
            _load_chunk(wh, lines, new_marks, result)
            files.update(new_marks)
            result.files_read = len(files)
            result.seconds = time.perf_counter() - t0
            _batch_row(wh, result, started)
        if progress:
            progress(f"raw/email_events: {result.lines_read:,} new landing lines from {result.files_read:,} "
                     f"files loaded, {result.events_new:,} new events ({rate(result.lines_read, result.seconds, 'lines')}, "
                     f"{result.seconds:.0f} s)")
    if not result.lines_read:  # nothing new: the run is still recorded
        result.seconds = time.perf_counter() - t0
        with wh.transaction():
            _batch_row(wh, result, started)
    if result.rules_checked:
        record(wh, _check_rows(result))
    return result


def _load_chunk(wh: Warehouse, lines: pl.DataFrame, new_marks: dict[str, FileMark], result: EmailIngestResult) -> None:
    result.lines_read += lines.height
    parsed = parse_lines(lines)
    result.events_parsed += parsed.events.height + parsed.duplicates
    now = dt.datetime.now(dt.timezone.utc)
    new = gated = 0
    if parsed.events.height:
        staged = wh.stage("email_events_batch", parsed.events.select(EVENT_COLUMN_NAMES))
        good, gated = _gate(wh, staged, result, now)
        fresh = f"SELECT * FROM {good} s WHERE NOT EXISTS (SELECT 1 FROM raw.email_events e " \
                f"WHERE e.provider = s.provider AND e.event_id = s.event_id)"
        by_type = wh.query(f"SELECT provider, event_type, count(*) AS n FROM ({fresh}) f GROUP BY 1, 2")
        for p, t, n in by_type.iter_rows():
            result.new_by_type[f"{p}/{t}"] = result.new_by_type.get(f"{p}/{t}", 0) + int(n)
            new += int(n)
        result.events_new += new
        cols = ", ".join(EVENT_COLUMN_NAMES)
        wh.execute(f"INSERT INTO raw.email_events ({cols}, _ingested_at, _batch_id) "
                   f"SELECT {cols}, ?, ? FROM ({fresh}) f", (now, result.batch_id))
        wh.unstage(staged)
    result.duplicates += parsed.duplicates + (parsed.events.height - new - gated)  # already in raw
    if parsed.rejects.height:
        for r, n in parsed.rejects.group_by("reason").len().iter_rows():
            result.rejected_by_reason[r] = result.rejected_by_reason.get(r, 0) + int(n)
        q = parsed.rejects.with_columns(_batch_id=pl.lit(result.batch_id), quarantined_at=pl.lit(now))
        staged = wh.stage("email_rejects_batch", q.select([c for c, _ in QUARANTINE_COLUMNS]))
        wh.execute(f"INSERT INTO quarantine.email_events SELECT * FROM {staged}")
        wh.unstage(staged)
        result.rejected += parsed.rejects.height
    m = pl.DataFrame({"source_file": list(new_marks), "byte_offset": [v.offset for v in new_marks.values()],
                      "lines": [v.lines for v in new_marks.values()]}).with_columns(
        _batch_id=pl.lit(result.batch_id), updated_at=pl.lit(now))
    staged = wh.stage("email_marks_batch", m)
    wh.execute(f"DELETE FROM ops.email_landing_files WHERE source_file IN (SELECT source_file FROM {staged})")
    wh.execute(f"INSERT INTO ops.email_landing_files SELECT * FROM {staged}")
    wh.unstage(staged)


def _batch_row(wh: Warehouse, result: EmailIngestResult, started: dt.datetime) -> None:
    """The run's row in ops.ingest_batches, as far as it got (rewritten with every chunk)."""
    wh.execute("DELETE FROM ops.ingest_batches WHERE batch_id = ?", (result.batch_id,))
    insert_row(wh, "ops.ingest_batches", dict(
        batch_id=result.batch_id, asset="raw/email_events", started_at=started,
        finished_at=dt.datetime.now(dt.timezone.utc), rows_read=result.lines_read, rows_written=result.events_new,
        rows_deleted=0, duplicates=result.duplicates, rejected=result.rejected, status="success", message=None))


def _gate(wh: Warehouse, staged: str, result: "EmailIngestResult", now: dt.datetime) -> tuple[str, int]:
    """The parsed events checked against raw.email_events' suite (quality.contract); events breaking it
    go to quarantine.email_events with the reasons. Returns the relation of the passing events and how
    many were quarantined."""
    from quality.gate import compile_gate

    gate = compile_gate(wh.kind, "email_events", list(EVENT_COLUMN_NAMES), run_at=now, existing=set(),
                        key_enforced=True)  # (provider, event_id) is unique by the loader's de-duplication
    result.rules_checked = [r.name for r in gate.rules]
    result.rules_enforced = list(gate.enforced)
    flagged = gate.flagged(staged)
    if not gate.rules or not int(wh.scalar(f"SELECT count(*) FROM {flagged} x WHERE {gate.any_fails()}")):
        return staged, 0
    for name, n in gate.failures(wh, flagged).items():
        result.rule_failures[name] = result.rule_failures.get(name, 0) + n
        result.rejected_by_reason[f"contract: {name}"] = result.rejected_by_reason.get(f"contract: {name}", 0) + n
    rejected = wh.execute_count(
        "INSERT INTO quarantine.email_events (_batch_id, source_file, source_line, event_index, provider, reason, "
        f"raw_text, quarantined_at) SELECT ?, x.source_file, x.source_line, x.event_index, x.provider, "
        f"'contract: ' || {gate.listed('reason', '; ')}, x.payload, ? FROM {flagged} x WHERE {gate.any_fails()}",
        (result.batch_id, now))
    result.rejected += rejected
    cols = ", ".join(f"x.{c}" for c in EVENT_COLUMN_NAMES)
    return f"(SELECT {cols} FROM {flagged} x WHERE NOT ({gate.any_fails()}))", rejected


def _check_rows(result: "EmailIngestResult") -> list[dict]:
    def row(name: str, passed: bool, message: str, failing: int = 0) -> dict:
        return check_row(asset="raw/email_events", name=name, kind="ingest_gate", passed=passed, message=message,
                         failing_count=failing)

    return [row(name, not n, f"{n:,} events quarantined (batch {result.batch_id})" if n else "ok", n)
            for name in result.rules_checked for n in [result.rule_failures.get(name, 0)]] + [
        row(name, True, "held by the loader's de-duplication on (provider, event_id)")
        for name in result.rules_enforced]
