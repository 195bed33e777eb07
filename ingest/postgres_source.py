"""Reading any PostgreSQL source as Arrow record batches (ADBC), with its catalogue.

Type mapping (decided once, used by both warehouse targets). ADBC (adbc-driver-postgresql 1.8)
hands UUID, INET and NUMERIC as opaque Arrow extension types and JSON/JSONB as strings. For a
DuckDB target UUID and JSON travel in binary: ``arrow_typed`` re-types them as Arrow's UUID and
JSON extension types, which DuckDB reads as its UUID and JSON (no copy, no JSON re-parse); INET
and NUMERIC are cast to text by the extraction query and back by the loader; for a PostgreSQL
target (loaded through a CSV COPY) UUID and JSON are sent as text too:

| source            | Arrow in transit   | DuckDB raw       | PostgreSQL raw |
|-------------------|--------------------|------------------|----------------|
| uuid              | arrow.uuid (DuckDB) / string (PG) | UUID | uuid     |
| uuid[]            | list<arrow.uuid> / list<string> | UUID[] | uuid[]     |
| jsonb / json      | arrow.json (DuckDB) / string (PG) | JSON | jsonb      |
| inet              | string (abbrev)    | VARCHAR          | inet           |
| numeric(p,s)      | string             | DECIMAL(p,s)     | numeric(p,s)   |
| numeric           | string             | DECIMAL(38,10)   | numeric        |
| timestamptz       | timestamp[us, UTC] | TIMESTAMPTZ      | timestamptz    |
| date / time       | date32 / time64    | DATE / TIME      | date / time    |
| text[] / int4[]   | list<string>       | VARCHAR[] / INTEGER[] | text[] / integer[] |
| int / bigint / bool / text | native    | same             | same           |
"""

from __future__ import annotations

import contextlib
import re
from dataclasses import dataclass
from typing import Iterator

import psycopg
import pyarrow as pa

from ingest.config import redact
from ingest.postgres_server import SourceError, connect


class SourceTableMissing(SourceError):
    """A contract table the source does not have."""


@dataclass(frozen=True)
class Column:
    name: str
    pg_type: str       # format_type(), e.g. 'numeric(15,2)', 'uuid[]', 'timestamp with time zone'

    @property
    def duck_type(self) -> str:
        return duck_type(self.pg_type)

    def select_expr(self, native: bool = False) -> str:
        """How the extraction query reads the column: as text where Arrow cannot carry it faithfully.

        ``native``: the reader takes UUID and JSON as ``arrow_typed`` makes them (``arrow.uuid`` /
        ``arrow.json``: DuckDB does), so they travel in binary/JSON form, not as text.
        """
        t = self.pg_type
        q = f'"{self.name}"'
        if t.endswith("[]"):
            if t.startswith(("integer", "bigint", "smallint")) or (native and t == "uuid[]"):
                return q
            return f"{q}::text[] AS {q}"
        if t in ("inet", "cidr"):
            return f"abbrev({q}) AS {q}"  # '10.1.2.3', not '10.1.2.3/32' as ::text gives
        if native and t in ("uuid", "jsonb", "json"):
            return q
        if t in ("uuid", "jsonb", "json") or t.startswith("numeric") or t.startswith("interval"):
            return f"{q}::text AS {q}"
        if not _arrow_native(t):
            # a type raw keeps as VARCHAR (an enum, a domain, point, money, …) travels as PostgreSQL's
            # own text form: the driver then only decodes built-in types, never a binary it would
            # pass on as opaque bytes
            return f"{q}::text AS {q}"
        return q


def _arrow_native(pg_type: str) -> bool:
    """The column arrives as an Arrow type raw maps (``duck_type``) or as a string: not cast to text."""
    return (pg_type in _DUCK_TYPES or pg_type.startswith(("character varying", "character(")) or pg_type in
            ("character", "bytea"))


def pg_target_type(pg_type: str) -> str:
    """The type a PostgreSQL warehouse's raw gives a source column: the source's own for built-in
    types; text for an enum type, a domain or any type the warehouse's database does not have."""
    if pg_type.endswith("[]"):
        return pg_target_type(pg_type[:-2]) + "[]"
    base = pg_type.split("(")[0]
    if base in _DUCK_TYPES or base in ("character", "bytea"):
        return pg_type
    return "text"


def duck_type(pg_type: str) -> str:
    if pg_type.endswith("[]"):
        return duck_type(pg_type[:-2]) + "[]"
    if pg_type.startswith("numeric("):
        return "DECIMAL" + pg_type[len("numeric"):]
    return _DUCK_TYPES.get(pg_type.split("(")[0] if pg_type.startswith("character varying") else pg_type, "VARCHAR")


_DUCK_TYPES = {
    "uuid": "UUID", "jsonb": "JSON", "json": "JSON", "inet": "VARCHAR", "cidr": "VARCHAR",
    "numeric": "DECIMAL(38,10)", "text": "VARCHAR", "character varying": "VARCHAR",
    "timestamp with time zone": "TIMESTAMPTZ", "timestamp without time zone": "TIMESTAMP",
    "date": "DATE", "time without time zone": "TIME", "integer": "INTEGER", "bigint": "BIGINT",
    "smallint": "SMALLINT", "boolean": "BOOLEAN", "double precision": "DOUBLE", "real": "FLOAT",
    "interval": "VARCHAR",
}


@dataclass(frozen=True)
class SourceTable:
    name: str                  # schema-qualified
    columns: tuple[Column, ...]
    primary_key: tuple[str, ...]
    # (column, parent table schema-qualified, parent column) of foreign keys with ON DELETE CASCADE
    cascades_from: tuple[tuple[str, str, str], ...] = ()
    key_enforced: bool = True  # False: the source lost its PRIMARY KEY and the contract's key is used
    bytes: int = 0             # the table's size on the source's disk as described (orders first loads)
    # columns leading a valid, whole-table btree index: a range on one (a cursor) is read by index;
    # any other cursor makes the source scan the whole table on every incremental run
    indexed: frozenset[str] = frozenset()
    # (column, values) the source itself enforces: an enum type's labels, a CHECK (c = ANY (ARRAY[…]))
    value_sets: tuple[tuple[str, tuple[str, ...]], ...] = ()
    # row-level security the reading role does not bypass: the extraction would see only some rows
    # (or none), and every other row would be flagged deleted. None: the role reads every row.
    rls_hides_rows: str | None = None

    def column_names(self) -> frozenset[str]:
        return frozenset(c.name for c in self.columns)


_CHECK_IN = re.compile(r"\(?\(?\(?(\w+)\)?(?:::text)?\)? = ANY \(+ARRAY\[(.*?)\]\)")
_LITERAL = re.compile(r"'((?:[^']|'')*)'")


def _check_value_sets(checks: list[str]) -> list[tuple[str, tuple[str, ...]]]:
    """(column, values) of CHECK constraints that hold a column to a list, as
    ``pg_get_constraintdef`` writes them: ``CHECK ((status = ANY (ARRAY['a'::text, 'b'::text])))``."""
    out = []
    for definition in checks:
        if " OR " in definition or " AND " in definition:
            continue  # a list with extra conditions: not a plain enumeration
        if m := _CHECK_IN.search(definition):
            out.append((m.group(1), tuple(v.replace("''", "'") for v in _LITERAL.findall(m.group(2)))))
    return out


BATCH_BYTES = 64 * 1024 * 1024  # ADBC batch size hint: bounds memory per batch, not per table

# Every session the ingest opens on the source reads its pages itself. PostgreSQL 18 hands the
# reads of a sequential scan to its I/O worker processes (io_method=worker, the default) unless the
# session's effective_io_concurrency is 0 (PostgreSQL 17's behaviour for such scans, which then
# rely on the kernel's readahead). For email_sends' and email_queue's extractions (sequential
# scans: their updated_at has no index) on the medium tier: backend 260-270 ms and I/O workers 0
# against 205-235 ms and 125-145 ms, the same wall time. On a 2-core machine shared by the source
# and the ingest the CPU is what a run waits for. A user-settable parameter: no privilege needed.
SESSION_SETTINGS = "SET effective_io_concurrency = 0"


class PostgresSource:
    def __init__(self, url: str) -> None:
        import threading

        self.url = url
        self.conn = connect(url, autocommit=True)
        self.conn.execute(SESSION_SETTINGS)
        self._adbc_free: list = []   # ADBC connections not in use (an extraction holds one while it reads)
        self._adbc_all: list = []
        self._adbc_lock = threading.Condition()
        self._counter = None  # (future of a connection, one-thread pool) for count_soon
        # The first ADBC connection opens on a thread now; the others are clones sharing its
        # database object (``_open_adbc``: ~2 ms), opened when first needed, mostly inside the
        # extraction threads (``prefetched``).
        self._warming = threading.Thread(target=self._warm, args=(1,), name="adbc-connect", daemon=True)
        self._warming.start()

    def _warm(self, n: int) -> None:
        try:
            import adbc_driver_postgresql.dbapi as adbc

            for _ in range(n):
                conn = _adbc_connect(adbc, self.url)
                with self._adbc_lock:
                    self._adbc_all.append(conn)
                    self._adbc_free.append(conn)
                    self._adbc_lock.notify()
        except Exception:  # opened on demand instead, where the error reaches the caller
            pass
        finally:
            with self._adbc_lock:
                self._adbc_lock.notify_all()

    def close(self) -> None:
        self._warming.join()
        self.conn.close()
        if self._counter is not None:
            opened, pool = self._counter
            pool.shutdown(wait=True)
            if opened.exception() is None:
                opened.result().close()
            self._counter = None
        for c in self._adbc_all:
            c.close()
        self._adbc_all, self._adbc_free = [], []

    def _open_adbc(self):
        """A new ADBC connection in autocommit mode: a clone of an open one where there is one. A
        clone shares its database object (``adbc_clone``), so the driver does not read the type
        catalogue again: 0.2 ms of CPU against 37 ms for a connection of its own (a day's incremental
        run opened two or three)."""
        import adbc_driver_postgresql.dbapi as adbc

        with self._adbc_lock:
            base = self._adbc_all[0] if self._adbc_all else None
        if base is not None:
            try:
                conn = base.adbc_clone()
                conn.adbc_connection.set_autocommit(True)
                _tune(conn)
                return conn
            except Exception:  # e.g. the connection cloned was closed meanwhile: open one of its own
                pass
        return _adbc_connect(adbc, self.url)

    @contextlib.contextmanager
    def adbc(self):
        """An ADBC connection of this source's pool, held while one extraction reads (one more for
        each table whose extraction reads ahead, ``prefetched``); a new one opens when none is free."""
        with self._adbc_lock:  # one being opened by the warming thread is waited for
            self._adbc_lock.wait_for(lambda: self._adbc_free or not self._warming.is_alive(), timeout=30)
            conn = self._adbc_free.pop() if self._adbc_free else None
        if conn is None:
            conn = self._open_adbc()
            with self._adbc_lock:
                self._adbc_all.append(conn)
        try:
            yield conn
        finally:
            with self._adbc_lock:
                if conn in self._adbc_all:  # not closed by its user
                    self._adbc_free.append(conn)

    def describe(self, table: str, contract_key: tuple[str, ...] = ()) -> SourceTable:
        """Columns, key and cascades of ``table``; ``contract_key`` stands in for a dropped PRIMARY KEY."""
        out = self.describe_many([table], {table: contract_key})[table]
        if isinstance(out, Exception):
            raise out
        return out

    def describe_many(self, tables: list[str], contract_keys: dict[str, tuple[str, ...]]
                      ) -> dict[str, SourceTable | SourceError]:
        """``describe`` for several tables in one round trip (an ingest run describes every table as
        it begins); a table that cannot be described maps to its error."""
        names = [(t.rpartition(".")[0] or "public", t.rpartition(".")[2]) for t in tables]
        # one row per table: columns, primary key and ON DELETE CASCADE parents, each as JSON
        rows = self.conn.execute("""
            WITH w AS (SELECT * FROM unnest(%s::text[], %s::text[]) WITH ORDINALITY w(nspname, relname, ord)),
            t AS (SELECT w.ord, c.oid, pg_relation_size(c.oid) AS bytes FROM w JOIN pg_namespace n ON n.nspname = w.nspname
                  JOIN pg_class c ON c.relnamespace = n.oid AND c.relname = w.relname)
            SELECT w.ord,
              (SELECT json_agg(json_build_array(a.attname, format_type(a.atttypid, a.atttypmod)) ORDER BY a.attnum)
               FROM pg_attribute a WHERE a.attrelid = t.oid AND a.attnum > 0 AND NOT a.attisdropped),
              (SELECT json_agg(a.attname ORDER BY u.ord) FROM pg_constraint k
               JOIN LATERAL unnest(k.conkey) WITH ORDINALITY u(attnum, ord) ON true
               JOIN pg_attribute a ON a.attrelid = t.oid AND a.attnum = u.attnum
               WHERE k.conrelid = t.oid AND k.contype = 'p'),
              (SELECT json_agg(json_build_array(a.attname, pn.nspname || '.' || pc.relname, pa.attname)
                               ORDER BY a.attname)
               FROM pg_constraint k
               JOIN pg_class pc ON pc.oid = k.confrelid JOIN pg_namespace pn ON pn.oid = pc.relnamespace
               JOIN pg_attribute a ON a.attrelid = t.oid AND a.attnum = k.conkey[1]
               JOIN pg_attribute pa ON pa.attrelid = pc.oid AND pa.attnum = k.confkey[1]
               WHERE k.conrelid = t.oid AND k.contype = 'f' AND k.confdeltype = 'c' AND cardinality(k.conkey) = 1)
,
              t.bytes,
              (SELECT json_agg(DISTINCT a.attname) FROM pg_index i
               JOIN pg_class ic ON ic.oid = i.indexrelid JOIN pg_am am ON am.oid = ic.relam
               JOIN pg_attribute a ON a.attrelid = t.oid AND a.attnum = i.indkey[0]
               WHERE i.indrelid = t.oid AND i.indisvalid AND i.indpred IS NULL AND am.amname = 'btree'),
              (SELECT json_object_agg(a.attname, (SELECT json_agg(e.enumlabel ORDER BY e.enumsortorder)
                                                  FROM pg_enum e WHERE e.enumtypid = a.atttypid))
               FROM pg_attribute a JOIN pg_type ty ON ty.oid = a.atttypid
               WHERE a.attrelid = t.oid AND a.attnum > 0 AND NOT a.attisdropped AND ty.typtype = 'e'),
              (SELECT json_agg(pg_get_constraintdef(k.oid)) FROM pg_constraint k
               WHERE k.conrelid = t.oid AND k.contype = 'c' AND k.convalidated),
              (SELECT json_build_array(c.relrowsecurity, c.relforcerowsecurity, pg_has_role(c.relowner, 'USAGE'))
               FROM pg_class c WHERE c.oid = t.oid)
            FROM w LEFT JOIN t ON t.ord = w.ord""",
            ([n[0] for n in names], [n[1] for n in names])).fetchall()
        found = {int(r[0]): r[1:] for r in rows}
        role = self.conn.execute("SELECT current_user, rolsuper OR rolbypassrls FROM pg_roles "
                                 "WHERE rolname = current_user").fetchone()
        out: dict[str, SourceTable | SourceError] = {}
        for i, (table, (schema, name)) in enumerate(zip(tables, names), start=1):
            cols, pk, cascades, size, indexed, enums, checks, rls = found.get(i, (None,) * 3 + (0,) + (None,) * 4)
            if not cols:
                out[table] = SourceTableMissing(
                    f"source table {schema}.{name} does not exist in {redact(self.url)}: check CRM_SOURCE_URL points "
                    "at the BuildDesk database")
                continue
            enforced = bool(pk)
            # without one, the contract's key stands in: duplicates are then caught by the gate's key rule
            key = tuple(pk or contract_keys.get(table, ()))
            if not key:
                out[table] = SourceError(f"source table {schema}.{name} has no primary key: rows cannot be merged "
                                         "or deletes detected; add a primary key to it")
                continue
            value_sets = dict(_check_value_sets(checks or [])) | {c: tuple(v) for c, v in (enums or {}).items()}
            hides = None
            if rls and rls[0] and not (role and role[1]) and (rls[1] or not rls[2]):
                hides = (f"source table {schema}.{name} has row-level security and the role {role[0] if role else '?'} "
                         "does not bypass it: it would read only the rows a policy shows it, and the rest would be "
                         f"flagged deleted. Connect as a role with BYPASSRLS (Supabase: the service role or "
                         f"postgres), or ALTER ROLE {role[0] if role else '<role>'} BYPASSRLS")
            out[table] = SourceTable(f"{schema}.{name}", tuple(Column(n, t) for n, t in cols), key,
                                     tuple(tuple(c) for c in cascades or []), enforced, int(size or 0),
                                     frozenset(indexed or ()), tuple(sorted(value_sets.items())), hides)
        return out

    def business_clock(self):
        """The source's own clock when it declares one (the simulator's ``simulator.state``), else None."""
        row = self.conn.execute("SELECT to_regclass('simulator.state') IS NOT NULL").fetchone()
        if not row[0]:
            return None
        row = self.conn.execute("SELECT max(clock) FROM simulator.state").fetchone()
        return row[0] if row else None

    def batches(self, table: SourceTable, where: str = "", params: tuple = (), native: bool = False,
                counted: "SnapshotCount | None" = None) -> Iterator[pa.RecordBatch]:
        """The table's rows (optionally filtered) as Arrow record batches, streamed.

        ``counted``: a count started earlier (``count_in_snapshot``); the rows are read in its snapshot."""
        cols = ", ".join(c.select_expr(native) for c in table.columns)
        sql = f"SELECT {cols} FROM {table.name}" + (f" WHERE {where}" if where else "")
        with self.adbc() as conn:
            cur = conn.cursor()
            in_tx = False
            try:
                snapshot = counted.snapshot() if counted is not None else None
                if snapshot is not None:
                    cur.execute("BEGIN TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")
                    in_tx = True
                    cur.execute(f"SET TRANSACTION SNAPSHOT '{snapshot}'")
                    counted.release()  # imported: the exporting transaction may end
                cur.adbc_statement.set_options(**{"adbc.postgresql.batch_size_hint_bytes": str(BATCH_BYTES)})
                cur.execute(sql, params or None)
                json = frozenset(c.name for c in table.columns if native and c.pg_type in ("json", "jsonb"))
                for batch in cur.fetch_record_batch():
                    if batch.num_rows:
                        yield arrow_typed(batch, json)
            finally:
                if counted is not None:
                    counted.release()
                broken = False
                if in_tx:
                    try:
                        cur.execute("ROLLBACK")  # read only: nothing to commit
                    except Exception:
                        broken = True
                cur.close()
                if broken:  # e.g. a stream stopped half-read: the connection is not reused
                    with self._adbc_lock:
                        self._adbc_all.remove(conn)
                    conn.close()

    def _count_pool(self):
        """(future of the count connection, its one-thread pool): the connection opens on the pool's
        thread, so a run that calls ``prepare_counts`` first does not wait for it (40-130 ms)."""
        from concurrent.futures import ThreadPoolExecutor

        if self._counter is None:
            def open_counter():
                conn = connect(self.url, autocommit=True)
                conn.execute(SESSION_SETTINGS)
                # serial scans: a parallel count of 3.5 M rows of lead_activities takes 0.1 s on three
                # processes; in the background of a run that shares 2 cores a serial one costs less CPU
                # (the counts of a medium-tier run: 0.41 s serial against 0.49 s parallel, measured)
                conn.execute("SET max_parallel_workers_per_gather = 0")
                return conn

            pool = ThreadPoolExecutor(1, thread_name_prefix="count")
            self._counter = (pool.submit(open_counter), pool)
        return self._counter

    def prepare_counts(self) -> None:
        """Start opening the connection ``count_soon`` uses, in the background."""
        self._count_pool()

    def count_soon(self, table: SourceTable):
        """The table's row count, started now on a connection and thread of its own; ``.result()`` gives it.

        The count of a multi-million-row table is a scan on the server (serial: see ``_count_pool``):
        started before the extraction, it runs while the rows are read and merged instead of after.
        """
        opened, pool = self._count_pool()
        return pool.submit(lambda: int(opened.result().execute(f"SELECT count(*) FROM {table.name}").fetchone()[0]))

    def count_in_snapshot(self, table: SourceTable) -> "SnapshotCount":
        """The table's row count, started now on a connection of its own, in a transaction whose
        snapshot the table's extraction reads in later (``batches(counted=)``): the count and the
        rows extracted are of one moment, however long before the extraction the count began."""
        return SnapshotCount(self.url, table.name)

    def prefetched(self, table: SourceTable, where: str = "", params: tuple = (), native: bool = False,
                   depth: int = 2, counted: "SnapshotCount | None" = None) -> "Prefetch":
        """``batches`` read ahead on a thread started now (at most ``depth`` batches waiting), so
        extraction and loading overlap: ADBC and DuckDB both release the GIL while they work."""
        return Prefetch(self.batches(table, where, params, native, counted), depth, f"extract-{table.name}")

    def key_buckets(self, table: SourceTable, chars: int) -> dict[str, int]:
        """Row count per key-text prefix of ``chars`` characters (single-column keys)."""
        k = table.primary_key[0]
        rows = self.conn.execute(f'SELECT left("{k}"::text, {chars}), count(*) FROM {table.name} GROUP BY 1').fetchall()
        return dict(rows)

    def uuid_keys_in_buckets(self, table: SourceTable, buckets: list[str]) -> pa.Table:
        """The keys whose text starts with one of ``buckets`` (hex prefixes of a UUID key), read by
        index range scans rather than a pass over the table."""
        k = table.primary_key[0]

        def as_uuid(hex32: str) -> str:
            return f"{hex32[:8]}-{hex32[8:12]}-{hex32[12:16]}-{hex32[16:20]}-{hex32[20:]}"

        lo = [as_uuid(b.ljust(32, "0")) for b in buckets]
        hi = [as_uuid(b.ljust(32, "f")) for b in buckets]
        rows = self.conn.execute(
            f'SELECT t."{k}"::text FROM unnest(%s::uuid[], %s::uuid[]) r(lo, hi) '
            f'JOIN {table.name} t ON t."{k}" BETWEEN r.lo AND r.hi', (lo, hi)).fetchall()
        return pa.table({k: pa.array([r[0] for r in rows], pa.string())})

    def keys(self, table: SourceTable, *, as_text: bool = True) -> pa.Table:
        """Every key of ``table``: as text, or (``as_text=False``) as the driver reads the columns
        (a uuid arrives as Arrow's UUID extension type, 16 bytes instead of 36 characters)."""
        cols = ", ".join(f'"{k}"::text AS "{k}"' if as_text else f'"{k}"' for k in table.primary_key)
        with self.adbc() as conn:
            cur = conn.cursor()
            try:
                cur.execute(f"SELECT {cols} FROM {table.name}")
                return arrow_typed(cur.fetch_arrow_table())
            finally:
                cur.close()


def _adbc_connect(adbc, url: str):
    """A connection of its own. adbc-driver-postgresql 1.8 reads the server's type catalogue as its
    database object opens (~37 ms of CPU on the medium tier), so ``PostgresSource._open_adbc``
    clones an open connection instead where it can: a clone shares the catalogue."""
    return _tune(adbc.connect(url, autocommit=True))


def _tune(conn):
    """``SESSION_SETTINGS`` on an ADBC connection; returns it."""
    cur = conn.cursor()
    try:
        cur.execute(SESSION_SETTINGS)
    finally:
        cur.close()
    return conn


def arrow_typed(data, json: frozenset[str] = frozenset()):
    """``data`` (a record batch or table) with each PostgreSQL ``uuid`` column, which the driver hands
    as an opaque binary extension type, as Arrow's UUID extension type (lists of them too), and the
    string columns named in ``json`` as Arrow's JSON extension type.

    The driver (adbc-driver-postgresql 1.8, pinned in pyproject.toml: the PyPI wheels from 1.9 on are
    built without compiler optimisation and decode at half its speed) types uuid as
    ``arrow.opaque[binary, uuid]`` and json/jsonb as plain strings. DuckDB reads ``arrow.uuid`` as
    UUID and ``arrow.json`` as JSON; a plain string cast to JSON would be parsed again. Neither
    copies: a uuid column without nulls has its 16-byte values back to back in the binary array's
    data buffer (one with nulls is cast), and a JSON array is its string array re-typed."""
    fields, cols, changed = [], [], False
    for f, col in zip(data.schema, data.columns):
        typed = _uuid_typed(col)
        if f.name in json and pa.types.is_string(col.type):
            typed = (pa.chunked_array([pa.ExtensionArray.from_storage(pa.json_(), c) for c in col.chunks],
                                      type=pa.json_()) if isinstance(col, pa.ChunkedArray)
                     else pa.ExtensionArray.from_storage(pa.json_(), col))
        if typed is not col:
            changed = True
            f = pa.field(f.name, typed.type, f.nullable)
        fields.append(f)
        cols.append(typed)
    if not changed:
        return data
    if isinstance(data, pa.RecordBatch):
        return pa.RecordBatch.from_arrays(cols, schema=pa.schema(fields))
    return pa.Table.from_arrays(cols, schema=pa.schema(fields))


def _is_pg_uuid(t: pa.DataType) -> bool:
    return (isinstance(t, pa.BaseExtensionType) and t.extension_name == "arrow.opaque"
            and getattr(t, "type_name", None) == "uuid")


def _uuid_typed(col):
    """One column (array or chunked array) with opaque uuids as ``pa.uuid()``; itself when it has none."""
    t = col.type
    if not (_is_pg_uuid(t) or (pa.types.is_list(t) and _is_pg_uuid(t.value_type))):
        return col
    if isinstance(col, pa.ChunkedArray):
        return pa.chunked_array([_uuid_typed(c) for c in col.chunks],
                                type=pa.list_(pa.uuid()) if pa.types.is_list(t) else pa.uuid())
    if pa.types.is_list(t):
        return pa.ListArray.from_arrays(col.offsets, _uuid_typed(col.values), type=pa.list_(pa.uuid()),
                                        mask=col.is_null() if col.null_count else None)
    storage = col.storage
    if storage.offset == 0 and storage.null_count == 0:
        _validity, offsets, data = storage.buffers()
        n = len(storage)
        first, last = (int.from_bytes(offsets[i * 4:i * 4 + 4], "little", signed=True) for i in (0, n))
        if first == 0 and last == 16 * n and data is not None:
            fixed = pa.FixedSizeBinaryArray.from_buffers(pa.binary(16), n, [None, data])
            return pa.ExtensionArray.from_storage(pa.uuid(), fixed)
    return pa.ExtensionArray.from_storage(pa.uuid(), storage.cast(pa.binary(16)))


class SnapshotCount:
    """A row count running on a thread and connection of its own inside a REPEATABLE READ, READ ONLY
    transaction that exports its snapshot (``pg_export_snapshot``). The transaction stays open until
    ``release()`` (the extraction has imported the snapshot, or will not run), so an import never
    finds it gone. ``result()`` gives the count, like a Future's."""

    HOLD_SECONDS = 600.0  # an exporter never released (a caller that died) ends by itself

    def __init__(self, url: str, table: str) -> None:
        import threading
        from concurrent.futures import Future

        self._snapshot: Future = Future()
        self._count: Future = Future()
        self._released = threading.Event()

        def run() -> None:
            conn = None
            try:
                conn = connect(url)  # not autocommit: the statements below share one transaction
                conn.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")
                try:
                    self._snapshot.set_result(conn.execute("SELECT pg_export_snapshot()").fetchone()[0])
                except psycopg.Error:  # a server that cannot export one: the count stands alone, as
                    conn.rollback()    # ``count_soon``'s does
                    self._snapshot.set_result(None)
                conn.execute("SET LOCAL max_parallel_workers_per_gather = 0")  # as ``count_soon``'s
                conn.execute(SESSION_SETTINGS)  # the connection closes with the transaction
                self._count.set_result(int(conn.execute(f"SELECT count(*) FROM {table}").fetchone()[0]))
                self._released.wait(self.HOLD_SECONDS)
            except BaseException as err:
                for f in (self._snapshot, self._count):
                    if not f.done():
                        f.set_exception(err)
            finally:
                if conn is not None:
                    conn.close()  # ends the read-only transaction

        threading.Thread(target=run, name=f"count-{table}", daemon=True).start()

    def snapshot(self) -> str | None:
        """The exported snapshot's name (None: the server could not export one)."""
        return self._snapshot.result()

    def result(self, timeout: float | None = None) -> int:
        return self._count.result(timeout)

    def release(self) -> None:
        self._released.set()

    def cancel(self) -> bool:
        self.release()
        return False


class Prefetch:
    """An iterator over record batches produced by a thread started at construction: the query runs
    on the server while the caller does other work. ``close()`` stops it (and frees its connection)."""

    def __init__(self, batches: Iterator[pa.RecordBatch], depth: int, name: str) -> None:
        import queue
        import threading

        self._q: queue.Queue = queue.Queue(maxsize=depth)
        self._done = object()
        self._stop = threading.Event()
        self._finished = False

        def produce() -> None:
            try:
                for b in batches:
                    while not self._stop.is_set():
                        try:
                            self._q.put(b, timeout=0.1)
                            break
                        except queue.Full:
                            continue
                    if self._stop.is_set():
                        return
                self._q.put(self._done)
            except BaseException as err:  # handed to the consumer
                self._q.put(err)
            finally:
                batches.close()  # the cursor closes and the connection returns to the pool

        self._thread = threading.Thread(target=produce, name=name, daemon=True)
        self._thread.start()

    def __iter__(self) -> "Prefetch":
        return self

    def __next__(self) -> pa.RecordBatch:
        if self._finished:
            raise StopIteration
        item = self._q.get()
        if item is self._done:
            self._finished = True
            self._thread.join(timeout=30)
            raise StopIteration
        if isinstance(item, BaseException):
            self.close()
            raise item
        return item

    def drained(self) -> bool:
        """The extraction has been read to its end: what is left is only the end marker (the query is
        over and its connection back in the pool)."""
        with self._q.mutex:
            return len(self._q.queue) == 1 and self._q.queue[0] is self._done

    def close(self) -> None:
        import time

        self._finished = True
        self._stop.set()
        deadline = time.monotonic() + 30  # a producer inside a batch stops when the batch is read
        while self._thread.is_alive() and time.monotonic() < deadline:
            try:  # unblock a producer waiting on a full queue
                self._q.get_nowait()
            except Exception:
                pass
            self._thread.join(timeout=0.05)
