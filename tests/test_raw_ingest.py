"""Ingest of every operational table into raw.<table>, on both warehouse targets."""

from __future__ import annotations

import datetime as dt
import decimal
import ipaddress
import json
import os
import time
import uuid
from pathlib import Path

import psycopg
import pyarrow as pa
import pytest

from crm_warehouse import pipeline
from crm_warehouse.pipeline import unindexed_cursor_note
from ingest.postgres_server import SourceError
from ingest.postgres_source import PostgresSource
from ingest.raw_load import IngestError, Skipped, ingest_table, ingest_tables, table_deps
from ingest.tables import SPECS, TableSpec, spec
from ingest.warehouse import DuckDBWarehouse, PostgresWarehouse
from tests.conftest import make_source, new_database, reader_without_bypassrls


def canon(v):
    """One comparable text form per value, whichever database or driver produced it."""
    if v is None:
        return None
    if isinstance(v, (uuid.UUID, ipaddress.IPv4Address, ipaddress.IPv6Address, ipaddress.IPv4Interface)):
        return str(v)
    if isinstance(v, decimal.Decimal):
        return format(v.normalize(), "f")
    if isinstance(v, float):
        return format(decimal.Decimal(repr(v)).normalize(), "f")
    if isinstance(v, dt.datetime):
        return v.astimezone(dt.timezone.utc).isoformat()
    if isinstance(v, (dt.date, dt.time)):
        return v.isoformat()
    if isinstance(v, (list, tuple)):
        return json.dumps([canon(x) for x in v])
    if isinstance(v, dict):
        return json.dumps(v, sort_keys=True)
    if isinstance(v, str) and v[:1] in "{[":
        try:
            return json.dumps(json.loads(v), sort_keys=True)
        except ValueError:
            return v
    return str(v)


BY_RAW = {s.raw: s for s in SPECS}


def source_rows(url: str, table: str, cols: list[str]) -> dict[str, tuple]:
    with psycopg.connect(url) as conn:
        rows = conn.execute(f"SELECT id::text, {', '.join(cols)} FROM {BY_RAW[table].source}").fetchall() if cols else []
    return {r[0]: tuple(canon(v) for v in r[1:]) for r in rows}


def raw_rows(wh, table: str, cols: list[str], live: bool = True) -> dict[str, tuple]:
    where = "WHERE _deleted_at IS NULL" if live else ""
    df = wh.query(f"SELECT CAST(id AS VARCHAR) AS _k, {', '.join(cols)} FROM raw.{table} {where}")
    return {r[0]: tuple(canon(v) for v in r[1:]) for r in df.iter_rows()}


def columns_of(url: str, table: str) -> list[str]:
    schema, name = BY_RAW[table].source.split(".")
    with psycopg.connect(url) as conn:
        return [r[0] for r in conn.execute(
            "SELECT column_name FROM information_schema.columns WHERE table_schema = %s AND table_name = %s "
            "AND column_name <> 'id' ORDER BY ordinal_position", (schema, name))]


def ingest_all(wh, url: str, **kw) -> dict:
    """Every table the way the Dagster ingest job does it (``ingest_tables``: reading ahead)."""
    src = PostgresSource(url)
    try:
        out = {}
        for s, r in ingest_tables(wh, src, SPECS, **kw):
            if isinstance(r, Exception):
                raise r
            out[s.raw] = r
        return out
    finally:
        src.close()


def test_a_failed_table_skips_the_tables_that_read_it_and_no_other(pg_server, workdir):
    cfg, url = make_source(pg_server, workdir, f"skips_{time.monotonic_ns()}", seed=52, history_days=30)
    # deals fails: row-level security the reading role does not bypass (it would see no deal)
    reader = reader_without_bypassrls(url, "skips_reader", ("public.deals",))
    wh = DuckDBWarehouse(workdir / f"skips-{time.monotonic_ns()}.duckdb")
    src = PostgresSource(reader)
    try:
        results = dict((s.raw, r) for s, r in ingest_tables(wh, src, SPECS))
    finally:
        src.close()
    assert isinstance(results["deals"], IngestError) and "row-level security" in str(results["deals"])
    skipped = {t for t, r in results.items() if isinstance(r, Skipped)}
    # every table whose delete flags or reference rules read raw.deals, and theirs in turn
    assert {"deal_stage_history", "deal_activities", "tasks"} <= skipped
    assert all(table_deps(t) and any(p in skipped | {"deals"} for p in table_deps(t)) for t in skipped)
    ok = {t for t, r in results.items() if not isinstance(r, Exception)}
    assert ok == {s.raw for s in SPECS} - skipped - {"deals"}
    for t in ok:  # read ahead or not, each ingested table equals its source table
        n = wh.query(f"SELECT count(*) AS n FROM raw.{t}")["n"][0]
        with psycopg.connect(url) as conn:
            assert n == conn.execute(f"SELECT count(*) FROM {BY_RAW[t].source}").fetchone()[0], t
    wh.close()


@pytest.fixture(params=["duckdb", "postgres"])
def make_wh(request, pg_server, workdir):
    made = []

    def make():
        if request.param == "duckdb":
            wh = DuckDBWarehouse(workdir / f"raw-{time.monotonic_ns()}.duckdb")
        else:
            wh = PostgresWarehouse(new_database(pg_server, f"rawwh_{time.monotonic_ns()}"))
        made.append(wh)
        return wh

    yield make
    for wh in made:
        wh.close()


def assert_raw_equals_source(wh, url: str) -> None:
    for s in SPECS:
        if s.raw == "email_preferences":  # keyed on user_id, not id
            continue
        cols = columns_of(url, s.raw)
        src, raw = source_rows(url, s.raw, cols), raw_rows(wh, s.raw, cols)
        assert src.keys() == raw.keys(), s.raw
        diff = [k for k in src if src[k] != raw[k]]
        assert not diff, f"{s.raw}: {len(diff)} rows differ, e.g. {src[diff[0]]} vs {raw[diff[0]]}"


def test_full_ingest_equals_source_and_rerun_changes_nothing(make_wh, tiny_source):
    wh = make_wh()
    first = ingest_all(wh, tiny_source[1])
    assert first["lead_activities"].rows_written > 5000
    assert_raw_equals_source(wh, tiny_source[1])
    # tables planned while reading ahead, before the tables they read were loaded, still check
    # every reference rule: the gate skips none for a parent "not loaded yet"
    skipped = {t: [w for _, w in r.gate_skipped if "not loaded" in w] for t, r in first.items()}
    assert not any(skipped.values()), skipped
    assert any("deals" in name for name in first["deal_stage_history"].rules_checked)
    with psycopg.connect(tiny_source[1]) as conn:
        prefs = conn.execute("SELECT count(*) FROM email_preferences").fetchone()[0]
    assert wh.query("SELECT count(*) AS n FROM raw.email_preferences")["n"][0] == prefs
    stamp = wh.query("SELECT max(_ingested_at) AS t, count(*) AS n FROM raw.leads").row(0)
    again = ingest_all(wh, tiny_source[1])
    assert all(r.rows_written == 0 and r.rows_deleted == 0 for r in again.values())
    assert wh.query("SELECT max(_ingested_at) AS t, count(*) AS n FROM raw.leads").row(0) == stamp
    state = wh.query("SELECT table_name, cursor_value FROM ops.ingest_state")
    assert state.height == len(SPECS) and state.filter(state["table_name"] == "leads")["cursor_value"][0] is not None


def test_unchanged_tables_write_their_ops_rows_in_one_transaction_at_the_run_end(make_wh, tiny_source, monkeypatch):
    """A table whose load changes nothing in raw or quarantine has its state, check and batch rows
    written with the other such tables in one transaction as the run ends, not in a transaction of
    its own; a run stopped early still writes them for the tables it finished."""
    wh = make_wh()
    ingest_all(wh, tiny_source[1], run_id="first")
    seen: list[str] = []
    for name in ("execute", "execute_count"):  # on the class: the lanes' connections are copies of wh
        real = getattr(type(wh), name)
        monkeypatch.setattr(type(wh), name, lambda self, sql, params=None, _r=real: seen.append(sql) or _r(self, sql, params))
    again = ingest_all(wh, tiny_source[1], run_id="second")
    assert all(r.rows_written == 0 and r.rows_deleted == 0 for r in again.values())
    per_table = [q for q in seen if q.startswith("UPDATE ops.ingest_state SET")]
    assert not per_table, f"{len(per_table)} tables updated their state row one by one"
    assert len([q for q in seen if q.startswith("UPDATE ops.ingest_state AS s")]) == 1
    # every table's state names this run's batch, which the batch log and the check rows hold
    state = dict(wh.rows("SELECT table_name, last_batch_id FROM ops.ingest_state"))
    assert state == {t: r.batch_id for t, r in again.items()}
    logged = dict(wh.rows("SELECT batch_id, status FROM ops.ingest_batches WHERE batch_id IN (SELECT last_batch_id "
                          "FROM ops.ingest_state)"))
    assert logged == {r.batch_id: "success" for r in again.values()}
    checks = dict(wh.rows("SELECT asset, count(*) FROM ops.check_results WHERE run_id = 'second' GROUP BY asset"))
    firsts = dict(wh.rows("SELECT asset, count(*) FROM ops.check_results WHERE run_id = 'first' GROUP BY asset"))
    assert checks == firsts and len(checks) == len(SPECS)
    # stopped after three tables: those three (and any a lane had in hand) still record this run
    monkeypatch.undo()
    src = PostgresSource(tiny_source[1])
    run = ingest_tables(wh, src, SPECS, run_id="third")
    got = [next(run) for _ in range(3)]
    run.close()
    src.close()
    state = dict(wh.rows("SELECT table_name, last_batch_id FROM ops.ingest_state"))
    assert all(state[s.raw] == r.batch_id for s, r in got)
    third = {a for (a,) in wh.rows("SELECT DISTINCT asset FROM ops.check_results WHERE run_id = 'third'")}
    assert {f"raw/{s.raw}" for s, _ in got} <= third
    assert len(third) == sum(1 for t, b in state.items() if b != again[t].batch_id)
    assert_raw_equals_source(wh, tiny_source[1])


def test_the_ingests_source_sessions_read_their_own_pages(tiny_source):
    """Every session the ingest opens on the source has effective_io_concurrency 0: PostgreSQL 18
    would hand its sequential scans' reads to the I/O worker processes (more CPU on the source)."""
    src = PostgresSource(tiny_source[1])
    try:
        assert src.conn.execute("SHOW effective_io_concurrency").fetchone()[0] == "0"
        with src.adbc() as first, src.adbc() as clone:  # the connection opened as the source starts, a clone
            for conn in (first, clone):
                cur = conn.cursor()
                cur.execute("SELECT current_setting('effective_io_concurrency')")
                assert cur.fetchone()[0] == "0"
                cur.close()
        opened, _ = src._count_pool()
        assert opened.result().execute("SHOW effective_io_concurrency").fetchone()[0] == "0"
    finally:
        src.close()
    with psycopg.connect(tiny_source[1]) as other:  # a session of the server's own default
        assert other.execute("SHOW effective_io_concurrency").fetchone()[0] != "0"


def test_first_loads_run_in_lanes_each_table_after_the_tables_it_reads(tiny_source, workdir, monkeypatch):
    """A new DuckDB warehouse loads in ``LANES`` threads; a table is planned only once every table
    it reads has committed, so its gate's reference rules see them; a caller that stops early
    leaves no lane running and the warehouse usable."""
    import threading

    import ingest.raw_load as raw_load

    spans: dict[str, list] = {}
    plan, ingest_one = raw_load._plan, raw_load.ingest_table

    def spy_plan(wh, src, spec, **kw):
        spans[spec.raw] = [time.monotonic(), None, threading.current_thread().name]
        return plan(wh, src, spec, **kw)

    def spy_ingest(wh, src, spec, **kw):
        try:
            return ingest_one(wh, src, spec, **kw)
        finally:
            spans[spec.raw][1] = time.monotonic()  # after its COMMIT

    monkeypatch.setattr(raw_load, "_plan", spy_plan)
    monkeypatch.setattr(raw_load, "ingest_table", spy_ingest)
    wh = DuckDBWarehouse(workdir / f"lanes-{time.monotonic_ns()}.duckdb")
    results = ingest_all(wh, tiny_source[1])
    assert set(results) == {s.raw for s in SPECS}
    lanes = {lane for _, _, lane in spans.values()}
    assert len(lanes) == raw_load.LANES > 1 and all(n.startswith("ingest-lane-") for n in lanes), lanes
    for table, (start, _, _) in spans.items():
        for parent in table_deps(table):
            if parent != table:
                assert start >= spans[parent][1], f"{table} planned before {parent} committed"
    # two lanes ran at once: some table was planned while another was still loading
    assert any(a[0] < b[0] < a[1] for a in spans.values() for b in spans.values() if a is not b)
    assert_raw_equals_source(wh, tiny_source[1])
    assert wh.scalar("SELECT count(*) FROM ops.ingest_state") == len(SPECS)
    assert not [(t, w) for t, r in results.items() for _, w in r.gate_skipped if "not loaded" in w]
    # an incremental run goes through the lanes too, in the same order of parents and children
    spans.clear()
    again = ingest_all(wh, tiny_source[1])
    assert len({lane for _, _, lane in spans.values()}) == raw_load.LANES
    assert all(r.mode in ("incremental", "full-compare") and r.rows_written == 0 and r.rows_deleted == 0 for r in again.values())
    for table, (start, _, _) in spans.items():
        assert all(start >= spans[p][1] for p in table_deps(table) if p != table), table

    # a caller that stops after the first table: the lanes finish what they hold and start nothing else
    other = DuckDBWarehouse(workdir / f"lanes-stop-{time.monotonic_ns()}.duckdb")
    src = PostgresSource(tiny_source[1])
    try:
        run = ingest_tables(other, src, SPECS)
        first_spec, first = next(run)
        run.close()
    finally:
        src.close()
    assert not [t for t in threading.enumerate() if t.name.startswith("ingest-lane-")]
    loaded = other.scalar("SELECT count(*) FROM ops.ingest_state")
    assert 1 <= loaded < len(SPECS)
    import duckdb

    default = duckdb.connect().execute("SELECT current_setting('threads')").fetchone()[0]
    assert other.scalar("SELECT current_setting('threads')") == default  # one thread only while lanes ran
    n = other.scalar(f"SELECT count(*) FROM raw.{first_spec.raw}")
    assert n == first.rows_written
    other.close()
    wh.close()


@pytest.fixture(scope="module")
def moving_source(pg_server, workdir):
    """A tiny source of this module's own, which the tests advance and alter."""
    return make_source(pg_server, workdir, "moving_source", seed=31)


def test_incremental_after_advance_equals_full_refresh(make_wh, moving_source, monkeypatch):
    import ingest.raw_load as raw_load
    from simulator import advance

    cfg, url = moving_source
    inc = make_wh()
    first = ingest_all(inc, url)
    # the largest table's count starts as the run begins, in a snapshot its extraction shares (as
    # lead_activities' does on the medium tier)
    largest = max(first, key=lambda t: first[t].rows_live)
    monkeypatch.setattr(raw_load, "EARLY_COUNT_ROWS", first[largest].rows_live)
    early: list[str] = []
    real = PostgresSource.count_in_snapshot
    monkeypatch.setattr(PostgresSource, "count_in_snapshot", lambda self, t: early.append(t.name) or real(self, t))
    before_keys = set(raw_rows(inc, "leads", ["email"]))
    watermark = inc.query("SELECT max(updated_at) AS w FROM raw.leads")["w"][0]
    counts = advance.advance(url, cfg.email_events_dir, days=2)
    merged: list[str] = []
    real_execute = type(inc).execute
    monkeypatch.setattr(type(inc), "execute", lambda self, sql, params=None: (
        merged.append(sql) if sql.startswith("DELETE FROM raw.leads") else None) or real_execute(self, sql, params))
    results = ingest_all(inc, url)
    monkeypatch.setattr(type(inc), "execute", real_execute)
    assert early == [BY_RAW[largest].source]
    if inc.kind == "duckdb":
        # the changed rows keep raw's types between statements (no CAST from text in the merge)
        assert merged and all('x."id"' in q and "AS UUID" not in q and "AS JSON" not in q for q in merged), merged
    full = make_wh()
    ingest_all(full, url)
    for s in SPECS:
        if s.raw == "email_preferences":
            continue
        cols = columns_of(url, s.raw)
        assert raw_rows(inc, s.raw, cols) == raw_rows(full, s.raw, cols), s.raw
    assert_raw_equals_source(inc, url)
    # deletes: flagged, not dropped
    gone = before_keys - set(source_rows(url, "leads", ["email"]))
    flagged = set(inc.query("SELECT CAST(id AS VARCHAR) AS k FROM raw.leads WHERE _deleted_at IS NOT NULL")["k"])
    assert gone and gone <= flagged and results["leads"].rows_deleted >= counts["leads deleted"]
    assert results["lead_activities"].rows_deleted > 0  # the cascade reached raw too
    # the late-committed rows (updated_at older than the watermark the first run saw) arrived
    late = inc.query("SELECT count(*) AS n FROM raw.leads WHERE list_contains(tags, 'enriched') AND updated_at < ?"
                     if inc.kind == "duckdb" else
                     "SELECT count(*) AS n FROM raw.leads WHERE 'enriched' = ANY(tags) AND updated_at < ?", (watermark,))
    assert late["n"][0] > 0


def test_an_early_count_and_its_extraction_read_one_snapshot(moving_source):
    """``count_in_snapshot``: rows committed between the count and the extraction are in neither, so
    the counts can be compared exactly however early the count began."""
    url = moving_source[1]
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("CREATE TABLE public.snapshot_probe (id int PRIMARY KEY, note text)")
        conn.execute("INSERT INTO public.snapshot_probe SELECT g, 'before' FROM generate_series(1, 50) g")
    src = PostgresSource(url)
    try:
        st = src.describe("public.snapshot_probe")
        counted = src.count_in_snapshot(st)
        assert counted.result(timeout=30) == 50
        with psycopg.connect(url, autocommit=True) as conn:  # committed after the count, before the read
            conn.execute("INSERT INTO public.snapshot_probe SELECT g, 'after' FROM generate_series(51, 60) g")
            conn.execute("DELETE FROM public.snapshot_probe WHERE id <= 5")
        rows = [r for b in src.prefetched(st, counted=counted) for r in b.to_pylist()]
        assert len(rows) == 50 and {r["note"] for r in rows} == {"before"} and min(r["id"] for r in rows) == 1
        # the connection went back to the pool out of the transaction: a plain read sees the present
        rows = [r for b in src.batches(st) for r in b.to_pylist()]
        assert len(rows) == 55 and {r["id"] for r in rows} == set(range(6, 61))
    finally:
        src.close()
        with psycopg.connect(url, autocommit=True) as conn:
            conn.execute("DROP TABLE public.snapshot_probe")


def test_every_source_type_arrives_as_the_arrow_type_raw_maps(moving_source):
    """The driver hands uuid as an opaque binary type and json/jsonb as plain strings;
    ``arrow_typed`` makes them Arrow's UUID and JSON types for DuckDB (without a copy where a uuid
    column has no nulls, by a cast where it has), and every value arrives as PostgreSQL has it.
    The types raw keeps as text (an enum, a domain, point, money) arrive as PostgreSQL's text."""

    import duckdb

    url = moving_source[1]
    cols = ("u uuid, j jsonb, js json, ip inet, net cidr, d15 numeric(15,2), n numeric, t text, v varchar(20), "
            "c char(5), ts timestamptz, tn timestamp, dt date, tm time, i int, b bigint, s smallint, f float8, "
            "r real, bo boolean, iv interval, by bytea, ia int[], ba bigint[], ua uuid[], ta text[], ja jsonb[], "
            "m probe_mood, dm probe_dom, ma probe_mood[], pt point, mo money")
    u = "a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11"
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("CREATE TYPE probe_mood AS ENUM ('sad', 'ok')")
        conn.execute("CREATE DOMAIN probe_dom AS int CHECK (VALUE > 0)")
        conn.execute(f"CREATE TABLE public.type_probe (id int PRIMARY KEY, {cols})")
        conn.execute(f"""INSERT INTO public.type_probe VALUES (1, '{u}', '{{"a": [1, 2.5]}}',
            '{{"b": null}}', '10.1.2.3', '10.0.0.0/8', 1234567.89, 3.14159265358979, 'tekst', 'var', 'ab',
            '2027-02-23 10:11:12.123456+00', '2027-02-23 10:11:12', '2027-02-23', '10:11:12', -7, 9007199254740993,
            12, 1.5, 2.25, true, '1 day 02:00', '\\x00ff', '{{1,2}}', '{{3}}',
            '{{{u}, NULL}}', '{{x,"y z"}}', ARRAY['{{"k": 1}}'::jsonb], 'ok', 5, '{{sad,ok}}',
            '(1,2)', 3.5), (2, """ + ", ".join(["NULL"] * 32) + ")")
    src = PostgresSource(url)
    try:
        st = src.describe("public.type_probe")
        for native in (True, False):
            # both rows: a uuid column with a null (cast); row 1 alone: no nulls (re-typed in place)
            for where in ("", "id = 1"):
                got = pa.Table.from_batches(list(src.batches(st, where, native=native))).sort_by("id")
                types = dict(zip(got.schema.names, got.schema.types))
                row = got.to_pylist()[0]
                if native:
                    assert (types["u"], types["ua"], types["j"], types["js"]) == (
                        pa.uuid(), pa.list_(pa.uuid()), pa.json_(), pa.json_()), where
                    assert (row["u"], row["ua"]) == (uuid.UUID(u), [uuid.UUID(u), None]), where
                else:
                    assert {types[c] for c in ("u", "j", "js")} == {pa.string()} and types["ua"] == pa.list_(pa.string())
                    assert (row["u"], row["ua"]) == (u, [u, None])
                assert (row["j"], row["js"], row["ip"], row["net"], row["d15"]) == (
                    '{"a": [1, 2.5]}', '{"b": null}', "10.1.2.3", "10/8", "1234567.89")  # abbrev(cidr)
                assert (row["ia"], row["ba"], row["ta"], row["ja"]) == ([1, 2], [3], ["x", "y z"], ['{"k": 1}'])
                assert (row["m"], row["dm"], row["ma"], row["pt"], row["mo"]) == ("ok", "5", ["sad", "ok"], "(1,2)", "$3.50")
                if where == "":
                    assert got.column("u").null_count == 1 and got.to_pylist()[1]["ua"] is None
                if native:  # DuckDB reads them as its UUID and JSON types, with the source's values
                    duck = duckdb.connect()
                    duck.register("got", got)
                    assert duck.execute("SELECT typeof(u), typeof(ua), typeof(j), CAST(u AS VARCHAR), "
                                        "j->>'$.a[1]' FROM got WHERE id = 1").fetchone() == (
                        "UUID", "UUID[]", "JSON", u, "2.5")
                    duck.close()
    finally:
        src.close()
        with psycopg.connect(url, autocommit=True) as conn:
            conn.execute("DROP TABLE public.type_probe")
            conn.execute("DROP TYPE probe_mood")
            conn.execute("DROP DOMAIN probe_dom")


@pytest.mark.parametrize("bucket_min_rows", [0, 10**12], ids=["key-buckets", "all-keys"])
def test_hard_deletes_are_flagged_by_either_key_comparison(make_wh, moving_source, monkeypatch, bucket_min_rows):
    """Rows deleted in the source directly (no cascade) are flagged, whether the keys are compared
    per bucket of key prefixes (large tables) or all at once (the rest); nothing else is flagged."""
    import ingest.raw_load as raw_load

    monkeypatch.setattr(raw_load, "BUCKET_MIN_ROWS", bucket_min_rows)
    url = moving_source[1]
    wh = make_wh()
    ingest_all(wh, url)
    flagged_before = {t: set(wh.query(f"SELECT CAST(id AS VARCHAR) AS k FROM raw.{t} WHERE _deleted_at IS NOT NULL")["k"])
                      for t in ("tasks", "lead_activities")}
    with psycopg.connect(url) as conn:
        gone = {t: {str(r[0]) for r in conn.execute(
            f"DELETE FROM {t} WHERE id IN (SELECT id FROM {t} ORDER BY md5(id::text) LIMIT 4) RETURNING id")}
            for t in ("tasks", "lead_activities")}
    results = ingest_all(wh, url)
    for t, keys in gone.items():
        flagged = set(wh.query(f"SELECT CAST(id AS VARCHAR) AS k FROM raw.{t} WHERE _deleted_at IS NOT NULL")["k"])
        assert flagged - flagged_before[t] == keys, t
        assert results[t].rows_deleted == 4
    assert_raw_equals_source(wh, url)


def test_cascades_reach_raw_and_children_older_than_their_parent_are_found_by_keys(make_wh, moving_source,
                                                                                  monkeypatch):
    """A cascade flags the children of parents flagged since the child table's last load, reading only
    children not older than those parents (``_cascade``). A child older than its parent (moved here by
    making its lead younger than its activities) is left to the key comparison, which flags it: raw
    still equals the source. A cascade of ordinary parents needs no key comparison."""
    import ingest.raw_load as raw_load

    url = moving_source[1]
    wh = make_wh()
    ingest_all(wh, url)
    compared: list[str] = []
    real = raw_load._flag_deletes
    monkeypatch.setattr(raw_load, "_flag_deletes", lambda wh_, src, spec_, *a: compared.append(spec_.raw)
                        or real(wh_, src, spec_, *a))

    def delete_leads(conn, n: int, younger: bool) -> set[str]:
        ids = [r[0] for r in conn.execute(
            "SELECT l.id FROM leads l WHERE (SELECT count(*) FROM lead_activities a WHERE a.lead_id = l.id) >= 2 "
            "ORDER BY md5(l.id::text) LIMIT %s", (n,))]
        if younger:  # the lead now begins after its activities (the trigger stamps updated_at)
            conn.execute("UPDATE leads l SET created_at = (SELECT max(a.created_at) FROM lead_activities a "
                         "WHERE a.lead_id = l.id) + interval '1 millisecond' WHERE l.id = ANY(%s)", (ids,))
            conn.commit()
            ingest_all(wh, url)
            assert wh.query("SELECT count(*) AS n FROM raw.lead_activities a JOIN raw.leads l ON l.id = a.lead_id "
                            "WHERE a.created_at < l.created_at")["n"][0] > 0
            compared.clear()
        gone = {str(r[0]) for r in conn.execute(
            "SELECT id FROM lead_activities WHERE lead_id = ANY(%s)", (ids,))}
        conn.execute("DELETE FROM leads WHERE id = ANY(%s)", (ids,))
        conn.commit()
        return gone

    for younger in (True, False):  # younger first: the second's parents are then the earliest
        flagged_before = set(wh.query("SELECT CAST(id AS VARCHAR) AS k FROM raw.lead_activities "
                                      "WHERE _deleted_at IS NOT NULL")["k"])
        with psycopg.connect(url) as conn:
            gone = delete_leads(conn, 3, younger)
        results = ingest_all(wh, url)
        flagged = set(wh.query("SELECT CAST(id AS VARCHAR) AS k FROM raw.lead_activities "
                               "WHERE _deleted_at IS NOT NULL")["k"])
        assert len(gone) >= 6 and flagged - flagged_before == gone, younger
        assert results["lead_activities"].rows_deleted == len(gone)
        assert ("lead_activities" in compared) == younger, compared
        compared.clear()
        assert_raw_equals_source(wh, url)


def test_schema_drift_added_dropped_and_incompatible_columns(make_wh, pg_server, workdir):
    _, url = make_source(pg_server, workdir, f"drift_{time.monotonic_ns()}", seed=41, history_days=45)
    wh = make_wh()
    src = PostgresSource(url)
    leads, companies = spec("leads"), spec("companies")
    ingest_table(wh, src, leads)
    with psycopg.connect(url) as conn:
        conn.execute("ALTER TABLE leads ADD COLUMN referral_code text")
        conn.execute("ALTER TABLE leads DROP COLUMN job_title")
        conn.execute("UPDATE leads SET referral_code = 'R-' || left(id::text, 4) WHERE lead_source = 'referral'")
        conn.execute("ALTER TABLE companies ALTER COLUMN company_size TYPE integer USING 5")
        conn.commit()
    r = ingest_table(wh, src, leads)
    assert r.columns_added == ["referral_code"]
    got = wh.query("SELECT count(referral_code) AS codes, count(job_title) AS titles, count(*) AS n FROM raw.leads")
    with psycopg.connect(url) as conn:
        referral = conn.execute("SELECT count(*) FROM leads WHERE lead_source = 'referral'").fetchone()[0]
    assert got["codes"][0] == referral > 0
    assert 0 < got["titles"][0] == got["n"][0] - referral  # dropped column kept, null on rows changed since
    ingest_table(wh, src, companies)  # first load: fine
    with psycopg.connect(url) as conn:
        conn.execute("ALTER TABLE companies ALTER COLUMN company_size TYPE text")
        conn.commit()
    ingest_table(wh, src, companies)
    with psycopg.connect(url) as conn:
        conn.execute("ALTER TABLE companies ALTER COLUMN company_size TYPE jsonb USING to_jsonb(company_size)")
        conn.commit()
    with pytest.raises(IngestError, match=r"raw.companies: column company_size changed type .* from text to jsonb"):
        ingest_table(wh, src, companies)
    assert ingest_table(wh, src, spec("deals")).rows_written > 0  # other tables still ingest
    src.close()


def test_crash_between_batches_recovers_without_duplicates(make_wh, tiny_source, monkeypatch):
    import ingest.postgres_source as ps
    import ingest.raw_load as rl

    wh = make_wh()
    src = PostgresSource(tiny_source[1])
    acts = spec("lead_activities")
    monkeypatch.setattr(ps, "BATCH_BYTES", 64 * 1024)  # many small batches
    real_stage, calls = rl._stage, {"n": 0}

    def dying_stage(w, name, batch):
        if name == "raw_batch":
            calls["n"] += 1
            if calls["n"] == 3:
                raise KeyboardInterrupt("kill -9 between batches")
        return real_stage(w, name, batch)

    monkeypatch.setattr(rl, "_stage", dying_stage)
    with pytest.raises(KeyboardInterrupt):
        ingest_table(wh, src, acts)
    assert wh.query("SELECT count(*) AS n FROM ops.ingest_state")["n"][0] == 0
    exists = wh.query("SELECT count(*) AS n FROM information_schema.tables WHERE table_schema = 'raw' "
                      "AND table_name = 'lead_activities'")["n"][0]
    assert exists == 0  # the half-written first load was rolled back with its CREATE
    monkeypatch.setattr(rl, "_stage", real_stage)
    r = ingest_table(wh, src, acts)
    with psycopg.connect(tiny_source[1]) as conn:
        n = conn.execute("SELECT count(*) FROM lead_activities").fetchone()[0]
    assert r.rows_written == n
    assert wh.query("SELECT count(*) - count(DISTINCT id) AS d, count(*) AS n FROM raw.lead_activities").row(0) == (0, n)
    src.close()


def test_a_first_load_holds_one_batch_at_a_time_not_the_table(workdir, tiny_source, monkeypatch):
    """A first load is one transaction over every batch of the table. What the warehouse holds of the
    batches already merged is freed as the next arrives, not at the commit: the large tier's
    lead_activities (120 batches of 64 MB) held 8 GB outside CRM_MEMORY_LIMIT when each batch was a
    view registered and dropped inside the transaction (duckdb/duckdb-python#469)."""
    import gc
    import weakref

    import ingest.postgres_source as ps

    monkeypatch.setattr(ps, "BATCH_BYTES", 64 * 1024)  # many small batches
    wh = DuckDBWarehouse(workdir / "one-batch.duckdb")
    src = PostgresSource(tiny_source[1])
    staged: list[weakref.ref] = []
    alive: list[int] = []
    real_stage = DuckDBWarehouse.stage

    def stage(self, name, df):
        if name == "raw_batch":
            gc.collect()
            alive.append(sum(r() is not None for r in staged))  # earlier batches still held
            staged.append(weakref.ref(df))
        return real_stage(self, name, df)

    monkeypatch.setattr(DuckDBWarehouse, "stage", stage)
    r = ingest_table(wh, src, spec("lead_activities"))
    with psycopg.connect(tiny_source[1]) as conn:
        n = conn.execute("SELECT count(*) FROM lead_activities").fetchone()[0]
    assert r.rows_written == n and len(staged) >= 10, (r.rows_written, n, len(staged))
    assert max(alive) <= 1, alive  # at most the batch before (the loop's variable until it is replaced)
    assert wh.scalar("SELECT count(*) FROM raw.lead_activities") == n
    src.close()
    wh.close()


def test_a_postgres_first_load_stages_every_batch_in_one_file(pg_server, tiny_source, monkeypatch):
    """PostgreSQL: the staging table a first load fills batch after batch is emptied in place, so the disk the
    load holds until its commit is raw's rows and one batch, not a dropped staging file per batch (the large
    tier's lead_activities had left 5.9 GB of them five minutes into its load)."""
    import ingest.postgres_source as ps

    monkeypatch.setattr(ps, "BATCH_BYTES", 64 * 1024)  # many small batches
    wh = PostgresWarehouse(new_database(pg_server, f"stagewh_{time.monotonic_ns()}"))
    src = PostgresSource(tiny_source[1])
    nodes: set[int] = set()
    seen: list[tuple[int, int, int]] = []  # (database size, raw's size, the staged batch's size) per batch
    real_stage = PostgresWarehouse.stage

    def stage(self, name, df):
        out = real_stage(self, name, df)
        if name == "raw_batch":
            nodes.add(self.scalar("SELECT pg_relation_filenode('raw_batch')"))
            seen.append(self.rows("SELECT pg_database_size(current_database()), "
                                  "coalesce(pg_total_relation_size(to_regclass('raw.lead_activities')), 0), "
                                  "pg_total_relation_size('raw_batch')")[0])
        return out

    monkeypatch.setattr(PostgresWarehouse, "stage", stage)
    r = ingest_table(wh, src, spec("lead_activities"))
    assert r.rows_written > 0 and len(seen) >= 10, (r.rows_written, len(seen))
    assert len(nodes) == 1, nodes  # one staging relation, emptied in place
    (db0, raw0, _), (db1, raw1, _) = seen[0], seen[-1]
    batch = max(b for _, _, b in seen)
    held = db1 - db0 - (raw1 - raw0)  # what the database grew by beyond raw's own growth
    assert held <= 4 * batch, (held, batch, len(seen))
    src.close()
    wh.close()


def test_rows_whose_version_raw_holds_are_neither_gated_nor_merged_again(pg_server, workdir):
    """DuckDB, incremental: of a batch (the lookback window reads a day again) only the rows whose
    version (key, cursor) raw does not hold live go through the gate and the merge; a batch that
    brings nothing new costs the one statement that finds that out."""
    _, url = make_source(pg_server, workdir, f"versions_{time.monotonic_ns()}", seed=43, history_days=30)
    wh = DuckDBWarehouse(workdir / f"versions-{time.monotonic_ns()}.duckdb")
    src = PostgresSource(url)
    for t in ("auth.users", "companies", "leads"):
        ingest_table(wh, src, spec(t))
    seen: list[str] = []
    for name in ("execute", "execute_count", "scalar", "query", "rows", "arrow"):
        if not hasattr(wh, name):
            continue
        real = getattr(wh, name)
        setattr(wh, name, lambda sql, params=None, _real=real: seen.append(sql) or _real(sql, params))

    def statements(what: str) -> list[str]:
        return [q for q in seen if what in q]

    again = ingest_table(wh, src, spec("leads"))
    assert again.rows_extracted > 0 and again.rows_written == 0  # the window was read again, nothing new
    assert len(statements("ANTI JOIN")) == 1
    assert not statements("AS _f0"), "the gate judged rows raw already holds"
    assert not statements("DELETE FROM raw.leads") and not statements("INSERT INTO raw.leads")
    with psycopg.connect(url) as conn:  # a new version of one lead (the trigger moves updated_at)
        lead = conn.execute("SELECT id::text FROM leads ORDER BY updated_at LIMIT 1").fetchone()[0]
        conn.execute("UPDATE leads SET first_name = 'Versioned' WHERE id = %s", (lead,))
    seen.clear()
    changed = ingest_table(wh, src, spec("leads"))
    assert changed.rows_written == 1 and changed.rows_extracted > 1
    gated = statements("AS _f0")
    assert len(gated) == 1 and "raw_changed" in gated[0] and "raw_batch" not in gated[0]
    got = wh.query("SELECT first_name, count(*) OVER () AS n FROM raw.leads WHERE CAST(id AS VARCHAR) = ?", (lead,))
    assert got.rows() == [("Versioned", 1)]
    assert_raw_equals_source_table(wh, url, "leads")
    # Two versions share a cursor value only at the watermark (the simulator's triggers stamp its
    # clock, which stands still between advances): there rows are compared column by column.
    with psycopg.connect(url) as conn:
        conn.execute("SET session_replication_role = replica")  # no trigger: updated_at stays
        newest = conn.execute("SELECT id::text FROM leads ORDER BY updated_at DESC LIMIT 1").fetchone()[0]
        conn.execute("UPDATE leads SET first_name = 'Same stamp' WHERE id = %s", (newest,))
    tie = ingest_table(wh, src, spec("leads"))
    assert tie.rows_written == 1
    assert_raw_equals_source_table(wh, url, "leads")
    src.close()
    wh.close()


def assert_raw_equals_source_table(wh, url: str, table: str) -> None:
    cols = columns_of(url, table)
    assert source_rows(url, table, cols) == raw_rows(wh, table, cols), table


def test_leads_variant_with_status_loads(make_wh, variant_source):
    wh = make_wh()
    src = PostgresSource(variant_source[1])
    r = ingest_table(wh, src, spec("leads"))
    src.close()
    cols = set(wh.query("SELECT column_name FROM information_schema.columns WHERE table_schema = 'raw' "
                        "AND table_name = 'leads'")["column_name"])
    assert r.rows_written > 0 and {"status", "project_type", "estimated_budget"} <= cols and "lead_status" not in cols


def test_bad_sources_fail_clearly(pg_server, workdir, tiny_source, monkeypatch, capsys):
    src = PostgresSource(tiny_source[1])
    with pytest.raises(SourceError, match="public.invoices does not exist"):
        ingest_table(DuckDBWarehouse(workdir / f"bad-{time.monotonic_ns()}.duckdb"), src, TableSpec("public.invoices", "invoices", "full", None))
    src.close()
    url = new_database(pg_server, "nopk_source")
    with psycopg.connect(url) as conn:
        conn.execute("CREATE TABLE public.notes (id int, body text)")
        conn.commit()
    src = PostgresSource(url)
    with pytest.raises(SourceError, match="public.notes has no primary key"):
        ingest_table(DuckDBWarehouse(workdir / f"bad-{time.monotonic_ns()}.duckdb"), src, TableSpec("public.notes", "notes", "full", None))
    src.close()
    # the refresh command: unreachable source, password never printed, non-zero status
    from crm_warehouse.cli import main

    monkeypatch.setenv("CRM_HOME", str(workdir / f"bad-home-{time.monotonic_ns()}"))
    monkeypatch.setenv("CRM_SOURCE_URL", "postgresql://bob:hunter2@127.0.0.1:1/builddesk")
    monkeypatch.setenv("CRM_EMAIL_EVENTS_DIR", str(workdir / "no-landing"))
    home = Path(os.environ["CRM_HOME"])
    assert main(["refresh"]) == 2  # said before any work: no Dagster run, no warehouse, no stack trace
    captured = capsys.readouterr()
    assert "cannot connect" in captured.err and "hunter2" not in captured.err + captured.out
    assert len(captured.err.strip().splitlines()) == 1 and not captured.out, captured.err
    assert not (home / "warehouse.duckdb").exists()


def test_assets_run_alone_with_metadata(tiny_source, workdir, monkeypatch):
    import dagster as dg

    from orchestration.defs.ingest.assets import DATA_DOCS_KEY, raw_tables
    from orchestration.defs.partitions import AS_OF_DAYS
    from orchestration.resources import CrmWarehouse

    home = workdir / f"assets-{time.monotonic_ns()}"
    monkeypatch.setenv("CRM_HOME", str(home))
    monkeypatch.setenv("CRM_SOURCE_URL", tiny_source[1])
    resources = {"crm": CrmWarehouse()}  # everything from the environment, as `dagster dev` runs it
    # entered: Dagster's definitions load context reads the *current* instance's state storage (a context
    # variable an earlier test's instance may have left pointing at a disposed instance)
    with dg.DagsterInstance.ephemeral() as instance:
        result = dg.materialize([raw_tables], selection=[dg.AssetKey(["raw", "leads"])], resources=resources,
                                instance=instance)
    assert result.success
    mats = result.asset_materializations_for_node("raw_tables")
    assert [m.asset_key for m in mats] == [dg.AssetKey(["raw", "leads"])]  # the one selected, alone
    meta = mats[0].metadata
    assert meta["row_count"].value == 500 and meta["mode"].value == "full" and meta["watermark"].value != "none"
    checks = result.get_asset_check_evaluations()
    assert {(c.asset_key, c.check_name) for c in checks} == {(dg.AssetKey(["raw", "leads"]), "contract"),
                                                             (dg.AssetKey(["raw", "leads"]), "freshness")}
    # together: every table, the landing zone and the gate's Data Docs, one materialization each; the
    # as-of days raw covers become the dbt assets' partitions, from the source's first business day on
    with dg.DagsterInstance.ephemeral() as instance:
        result = dg.materialize([raw_tables], resources=resources, instance=instance)
        days = instance.get_dynamic_partitions(AS_OF_DAYS.name)
    assert result.success
    mats = result.asset_materializations_for_node("raw_tables")
    assert len(mats) == len(SPECS) + 2
    docs = next(m for m in mats if m.asset_key == DATA_DOCS_KEY).metadata
    assert Path(docs["path"].value).is_file() and str(home) in docs["path"].value
    assert days[0] == docs["first_business_day"].value and days == sorted(days)
    wh = DuckDBWarehouse(home / "warehouse.duckdb")
    first = wh.query("SELECT min(created_at AT TIME ZONE 'UTC')::date AS d FROM raw.leads")["d"][0]
    wh.close()
    assert days[0] <= first.isoformat() and len(days) == len(set(days))
    mats = [m for m in mats if m.asset_key.path[0] == "raw" and m.asset_key.path[1] != "email_events"]
    # whether the source has an index its cursor can be read by: leads' updated_at and lead_activities'
    # created_at have one, email_sends' updated_at none; pipeline_metrics has no cursor
    meta = {"/".join(m.asset_key.path): {k: v.value for k, v in m.metadata.items()} for m in mats}
    indexed = {k.split("/")[1]: m["cursor_indexed"] for k, m in meta.items()}
    assert (indexed["leads"], indexed["lead_activities"], indexed["email_sends"], indexed["pipeline_metrics"]) == \
        ("yes", "yes", "no", "n/a")
    assert meta["raw/email_sends"]["source_mb"] > 0 and meta["raw/email_sends"]["cursor_column"] == "updated_at"
    # the refresh's note names the unindexed tables above its size threshold, largest first
    assert unindexed_cursor_note(meta) is None  # the tiny tier's tables are all below it
    monkeypatch.setattr(pipeline, "UNINDEXED_NOTE_MB", 0)
    note = unindexed_cursor_note(meta)
    named = [t for t in (s.source for s in SPECS) if f" {t} (" in note]
    assert "public.email_sends (updated_at" in note and "public.leads" not in note and "lead_activities" not in note
    assert set(named) == {m["source_table"] for m in meta.values() if m["cursor_indexed"] == "no"}
    sizes = [meta[f"raw/{t.rpartition('.')[2]}"]["source_mb"] for t in sorted(named, key=note.index)]
    assert sizes == sorted(sizes, reverse=True)


def test_describe_finds_the_indexes_a_cursor_can_be_read_by(moving_source):
    """``SourceTable.indexed``: columns leading a valid btree index over the whole table; a partial
    index, an expression index or a column second in an index does not serve a cursor's range."""
    url = moving_source[1]
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("CREATE TABLE public.cursor_probe (id int PRIMARY KEY, kind text, updated_at timestamptz)")
        conn.execute("CREATE INDEX ON public.cursor_probe (updated_at) WHERE kind = 'a'")
        conn.execute("CREATE INDEX ON public.cursor_probe ((updated_at AT TIME ZONE 'UTC'))")
        conn.execute("CREATE INDEX ON public.cursor_probe (kind, updated_at)")
    src = PostgresSource(url)
    try:
        assert src.describe("public.cursor_probe").indexed == {"id", "kind"}
        with psycopg.connect(url, autocommit=True) as conn:
            conn.execute("CREATE INDEX ON public.cursor_probe (updated_at DESC)")
        assert src.describe("public.cursor_probe").indexed == {"id", "kind", "updated_at"}
        found = src.describe_many(["public.leads", "public.email_sends"], {})
        assert "updated_at" in found["public.leads"].indexed and "updated_at" not in found["public.email_sends"].indexed
    finally:
        src.close()
        with psycopg.connect(url, autocommit=True) as conn:
            conn.execute("DROP TABLE public.cursor_probe")


KILL_SCRIPT = """
import sys
from pathlib import Path
import ingest.postgres_source as ps
from ingest.postgres_source import PostgresSource
from ingest.raw_load import ingest_table
from ingest.tables import SPECS
from ingest.warehouse import DuckDBWarehouse
ps.BATCH_BYTES = 32 * 1024
wh = DuckDBWarehouse(Path(sys.argv[2]))
src = PostgresSource(sys.argv[1])
print("started", flush=True)
while True:
    for s in SPECS:
        ingest_table(wh, src, s)
"""
# every table rebuilt in two lanes at once: two open transactions when the kill comes
LANES_KILL_SCRIPT = KILL_SCRIPT.replace("from ingest.raw_load import ingest_table", "from ingest.raw_load import ingest_tables") \
    .replace("""    for s in SPECS:
        ingest_table(wh, src, s)""", """    for s, r in ingest_tables(wh, src, SPECS, resync=True):
        assert not isinstance(r, Exception), r""")


def test_kill_9_at_any_moment_leaves_nothing_duplicated_or_lost(tiny_source, workdir):
    """A real SIGKILL of a process looping over the ingest, then a normal run: raw equals the source."""
    import os
    import signal
    import subprocess
    import sys

    db = workdir / f"killed-{time.monotonic_ns()}.duckdb"
    assert "ingest_tables(wh, src, SPECS, resync=True)" in LANES_KILL_SCRIPT
    for script, delay in ((KILL_SCRIPT, 0.8), (KILL_SCRIPT, 1.7), (LANES_KILL_SCRIPT, 1.2), (LANES_KILL_SCRIPT, 2.3)):
        proc = subprocess.Popen([sys.executable, "-c", script, tiny_source[1], str(db)],
                                stdout=subprocess.PIPE, cwd=str(workdir.parent), env={**os.environ, "PYTHONPATH": os.getcwd()})
        assert proc.stdout.readline().strip() == b"started"
        time.sleep(delay)
        assert proc.poll() is None, proc.stdout.read()  # still loading when killed, not failed
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(10)
    wh = DuckDBWarehouse(db)
    ingest_all(wh, tiny_source[1])
    assert_raw_equals_source(wh, tiny_source[1])
    dups = wh.query("SELECT count(*) - count(DISTINCT id) AS d FROM raw.lead_activities")["d"][0]
    wh.close()
    assert dups == 0


def test_refresh_goes_on_when_one_table_fails_and_says_which(pg_server, workdir, monkeypatch, capsys):
    from crm_warehouse.cli import main

    cfg, url = make_source(pg_server, workdir, f"broken_{time.monotonic_ns()}", seed=51, history_days=40)
    reader = reader_without_bypassrls(url, "broken_reader", ("public.estimates",))
    monkeypatch.setenv("CRM_HOME", str(cfg.home))
    monkeypatch.setenv("CRM_SOURCE_URL", reader)
    monkeypatch.setenv("CRM_EMAIL_EVENTS_DIR", str(cfg.email_events_dir))
    monkeypatch.setenv("CRM_WAREHOUSE", "duckdb")
    assert main(["refresh"]) == 1
    err = " ".join(capsys.readouterr().err.split())
    assert "raw.estimates" in err and "row-level security" in err and "broken_reader" in err
    wh = DuckDBWarehouse(cfg.duckdb_path)
    assert wh.query("SELECT count(*) AS n FROM raw.leads")["n"][0] == 500
    assert wh.query("SELECT count(*) AS n FROM raw.email_events")["n"][0] > 100
    wh.close()


def test_ui_serves_the_definitions(workdir):
    """`crm-warehouse ui` starts `dagster dev` (webserver and daemon) on the project's assets; it answers,
    then stops with every process it started."""
    import json as _json
    import os
    import signal
    import socket
    import subprocess
    import sys
    import urllib.request

    import psutil

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    env = {**os.environ, "CRM_HOME": str(workdir / f"ui-{time.monotonic_ns()}")}
    # started with SIGINT and SIGTERM ignored (a background job's child; a process where Dagster mapped SIGTERM
    # to an ignored SIGINT): dagster dev maps SIGTERM to SIGINT's handler, so without the CLI putting both
    # back nothing below would stop
    proc = subprocess.Popen([sys.executable, "-m", "crm_warehouse.cli", "ui", "--port", str(port)], env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            preexec_fn=lambda: [signal.signal(s, signal.SIG_IGN) for s in (signal.SIGINT, signal.SIGTERM)])
    try:
        deadline, body = time.monotonic() + 90, None
        while time.monotonic() < deadline and body is None:
            try:
                query = _json.dumps({"query": "{ assetNodes { assetKey { path } } shouldShowNux "
                                              "instance { daemonHealth { allDaemonStatuses { daemonType healthy } } } }"}
                                    ).encode()
                req = urllib.request.Request(f"http://127.0.0.1:{port}/graphql", data=query,
                                             headers={"Content-Type": "application/json"})
                body = _json.loads(urllib.request.urlopen(req, timeout=5).read())
            except OSError:
                time.sleep(1)
        assert body is not None, "the UI did not answer within 90 s"
        keys = {"/".join(n["assetKey"]["path"]) for n in body["data"]["assetNodes"]}
        assert {"raw/leads", "raw/lead_activities", "raw/email_events"} <= keys
        assert body["data"]["shouldShowNux"] is False  # no "join the community" pop-up (dagster.yaml nux)
        # `dagster dev`: the daemon that runs the daily schedule is there too (its scheduler reports in)
        daemons = {d["daemonType"] for d in body["data"]["instance"]["daemonHealth"]["allDaemonStatuses"]}
        assert "SCHEDULER" in daemons and "SENSOR" in daemons, daemons
        started = psutil.Process(proc.pid).children(recursive=True)  # dagster dev, its webserver, daemon, code server
        assert len(started) >= 3, [" ".join(p.cmdline()) for p in started]
    finally:
        os.kill(proc.pid, signal.SIGTERM)  # the CLI stops its webserver and waits for it
        proc.wait(60)
    gone, alive = psutil.wait_procs(started, timeout=60)
    assert not alive, [p.pid for p in alive]
    assert not [p for p in psutil.process_iter(["cmdline"]) if str(port) in " ".join(p.info["cmdline"] or [])]
