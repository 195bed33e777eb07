"""The two warehouse targets behind one small interface: a DuckDB file and a PostgreSQL database.

Both get the same schemas (``raw``, ``quarantine``, ``ops``, and dbt's ``staging``,
``intermediate``, ``marts``). A loader works inside one transaction (``with wh.transaction()``)
so its data and the state describing it (offsets, watermarks, batch rows) commit together.
"""

from __future__ import annotations

import contextlib
import copy
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import duckdb
import polars as pl
import pyarrow as pa

from ingest.config import Settings, memory_limit
from ingest.pg_copy import copy_frame
from ingest.postgres_server import WAREHOUSE_DB, connect, embedded_database_url

SCHEMAS = ("raw", "quarantine", "ops", "staging", "intermediate", "marts")

# DuckDB type → PostgreSQL type, for tables declared once in DuckDB terms.
PG_TYPES = {"VARCHAR": "text", "TIMESTAMPTZ": "timestamptz", "BOOLEAN": "boolean", "BIGINT": "bigint",
            "VARCHAR[]": "text[]", "INTEGER": "integer", "DOUBLE": "double precision", "DATE": "date",
            "JSON": "jsonb"}


def embedded_warehouse_url(settings: Settings) -> str:
    return embedded_database_url(settings.warehouse_pgdata, WAREHOUSE_DB)


# A staged frame is not registered (``con.register``, a temporary view): a view dropped inside an open
# transaction stays in DuckDB's catalogue, with the Arrow data it holds, until the transaction ends
# (duckdb/duckdb-python#469). A first load stages every batch of a table in one transaction, so the
# large tier's lead_activities (30 M rows, 120 batches of 64 MB) held 8 GB until its commit, outside
# CRM_MEMORY_LIMIT. A statement is run instead where the staged frames are the calling frame's
# variables: DuckDB's replacement scan finds them by name (after the catalogue), for that statement
# only, and the data is freed as soon as the next batch replaces it.
_RUN = compile("_duckdb_con.execute(_duckdb_sql, _duckdb_params)", "<staged>", "eval")
_RELATION = compile("_duckdb_con.sql(_duckdb_sql, params=_duckdb_params or None)", "<staged>", "eval")


class WarehouseBusy(RuntimeError):
    """The DuckDB warehouse file is held by another process."""


@dataclass
class DuckDBWarehouse:
    path: Path
    kind: str = "duckdb"
    read_only: bool = False  # a reader beside analysts' sessions (no schema created, no writer's settings)
    in_lane = False  # a connection made by ``lane()``: the database's settings are left to its owner

    def __post_init__(self) -> None:
        self._staged: dict[str, pa.Table] = {}  # name → frame (``stage``)
        if not self.read_only:
            self.path.parent.mkdir(parents=True, exist_ok=True)
        try:
            self.con = duckdb.connect(str(self.path), read_only=self.read_only)
        except duckdb.IOException as err:
            if "lock" not in str(err).lower():
                raise
            holder = re.search(r"\(PID (\d+)\)", str(err))
            raise WarehouseBusy(
                f"the warehouse file {self.path} is open in another process"
                f"{f' (PID {holder[1]})' if holder else ''}: DuckDB allows one writer and no reader while it "
                "writes; close that session (a read-only duckdb or Python session counts) and run refresh "
                "again. Nothing was changed.") from None
        self.con.execute("SET TimeZone = 'UTC'")
        self.con.execute("SET enable_progress_bar = false")
        self.con.execute(f"SET memory_limit = '{memory_limit()}'")  # CRM_MEMORY_LIMIT; spills beside the file beyond it
        if self.read_only:
            return
        # A bulk INSERT writes each full row group (122,880 rows) to the file as it fills, not five at
        # a time (DuckDB's default): the compression runs while the next batch is extracted instead of
        # stalling the table's last INSERT, and less is held in memory. email_sends alone (659 k rows):
        # 3.5-3.7 s against 4.0-4.2 s (its last batch took 1.0 s to insert, the others 0.18 s).
        self.con.execute("SET write_buffer_row_group_count = 1")
        for s in SCHEMAS:
            self.con.execute(f"CREATE SCHEMA IF NOT EXISTS {s}")

    def lane(self) -> "DuckDBWarehouse":
        """Another connection to the same database, for a thread of its own: each has its own
        transactions, and DuckDB lets them write different tables at once (``ingest_tables``' lanes).
        Settings such as ``threads`` are the database's, shared by every lane."""
        other = copy.copy(self)
        other.con = self.con.cursor()
        other._staged = {}
        other.con.execute("SET TimeZone = 'UTC'")
        other.in_lane = True
        return other

    def close(self) -> None:
        self.con.close()

    @contextlib.contextmanager
    def transaction(self) -> Iterator["DuckDBWarehouse"]:
        self.con.execute("BEGIN TRANSACTION")
        try:
            yield self
        except BaseException:
            self.con.execute("ROLLBACK")
            raise
        self.con.execute("COMMIT")

    def _run(self, sql: str, params: list | tuple | None, relation: bool = False):
        """``sql`` on this connection (a lazy relation if ``relation``), the staged frames readable by
        their names (``_RUN``)."""
        if not self._staged:
            return self.con.sql(sql, params=params or None) if relation else self.con.execute(sql, params or [])
        return eval(_RELATION if relation else _RUN, {},
                    {**self._staged, "_duckdb_con": self.con, "_duckdb_sql": sql, "_duckdb_params": params or []})

    def execute(self, sql: str, params: list | tuple | None = None) -> None:
        self._run(sql, params)

    def execute_count(self, sql: str, params: list | tuple | None = None) -> int:
        """Run an INSERT/UPDATE/DELETE and return how many rows it affected."""
        row = self._run(sql, params).fetchone()
        return int(row[0]) if row else 0

    def query(self, sql: str, params: list | tuple | None = None) -> pl.DataFrame:
        return self._run(sql, params, relation=True).pl()

    def rows(self, sql: str, params: list | tuple | None = None) -> list[tuple]:
        """All rows as tuples (no frame built: the many small catalogue and state reads of an ingest)."""
        return self._run(sql, params).fetchall()

    def scalar(self, sql: str, params: list | tuple | None = None):
        """The first column of the first row (no frame built: the many small counts of an ingest)."""
        rows = self._run(sql, params).fetchall()  # fetched to the end: the connection is free again
        return rows[0][0] if rows else None

    @staticmethod
    def sql_type(t: str) -> str:
        return t

    def stage(self, name: str, df: "pl.DataFrame | pa.Table") -> str:
        """Make ``df`` (Polars or Arrow) readable as the relation ``name`` by this object's statements
        until ``unstage`` (not by ``con``'s own: see ``_RUN``)."""
        self._staged[name] = df.to_arrow() if isinstance(df, pl.DataFrame) else df
        return name

    def unstage(self, name: str) -> None:
        self._staged.pop(name, None)


@dataclass
class PostgresWarehouse:
    url: str
    kind: str = "postgres"

    def __post_init__(self) -> None:
        self._staged: dict[str, str] = {}  # name → the columns ``stage`` made it with
        self.conn = connect(self.url)
        from psycopg.types.string import TextLoader

        for typ in ("json", "jsonb", "uuid", "inet", "cidr"):  # as text: no dict → struct guessing, no Object columns
            self.conn.adapters.register_loader(typ, TextLoader)
        self.conn.execute("SET TIME ZONE 'UTC'")
        for s in SCHEMAS:
            self.conn.execute(f"CREATE SCHEMA IF NOT EXISTS {s}")
        self.conn.commit()

    def close(self) -> None:
        self.conn.close()

    @contextlib.contextmanager
    def transaction(self) -> Iterator["PostgresWarehouse"]:
        try:
            yield self
        except BaseException:
            self.conn.rollback()
            raise
        self.conn.commit()

    def execute(self, sql: str, params: list | tuple | None = None) -> None:
        self.conn.execute(_pg_params(sql), params)

    def execute_count(self, sql: str, params: list | tuple | None = None) -> int:
        return self.conn.execute(_pg_params(sql), params).rowcount

    def rows(self, sql: str, params: list | tuple | None = None) -> list[tuple]:
        return self.conn.execute(_pg_params(sql), params).fetchall()

    def scalar(self, sql: str, params: list | tuple | None = None):
        row = self.conn.execute(_pg_params(sql), params).fetchone()
        return row[0] if row else None

    def query(self, sql: str, params: list | tuple | None = None) -> pl.DataFrame:
        cur = self.conn.execute(_pg_params(sql), params)
        cols = [d.name for d in cur.description]
        rows = cur.fetchall()
        return pl.DataFrame(rows, schema=cols, orient="row", infer_schema_length=None) if rows else pl.DataFrame({c: [] for c in cols})

    @staticmethod
    def sql_type(t: str) -> str:
        """A column type declared in DuckDB terms, as PostgreSQL spells it (other types pass through)."""
        return PG_TYPES.get(t, t)

    def stage(self, name: str, df: pl.DataFrame) -> str:
        """COPY ``df`` into a temporary table ``name`` (dropped at commit).

        A temporary table made in this transaction (``ON COMMIT DROP``: any that exists was) is emptied
        in place by TRUNCATE, and its file shrinks at once; one dropped and made again keeps its file on
        disk until the commit. A first load stages every batch of a table in one transaction: the large
        tier's lead_activities had left 5.9 GB of dropped staging files five minutes into its load."""
        cols = ", ".join(f"{c} {PG_TYPES.get(_duck_type(t), 'text')}" for c, t in df.schema.items())
        if self._temp_exists(name) and self._staged.get(name) == cols:
            self.conn.execute(f"TRUNCATE {name}")
        else:
            self.conn.execute(f"DROP TABLE IF EXISTS {name}")
            self.conn.execute(f"CREATE TEMP TABLE {name} ({cols}) ON COMMIT DROP")
            self._staged[name] = cols
        copy_frame(self.conn, name, df)
        return name

    def unstage(self, name: str) -> None:
        """Empty the staged table (in place: see ``stage``); the commit drops it."""
        if self._temp_exists(name):
            self.conn.execute(f"TRUNCATE {name}")

    def _temp_exists(self, name: str) -> bool:
        return self.conn.execute("SELECT to_regclass(%s) IS NOT NULL", (f"pg_temp.{name}",)).fetchone()[0]


Warehouse = DuckDBWarehouse | PostgresWarehouse


def table_columns(wh: "Warehouse", table: str) -> dict[str, str]:
    """Column name → declared type of ``schema.table`` (empty when the table does not exist)."""
    schema, _, name = table.partition(".")
    df = wh.query("SELECT column_name, data_type FROM information_schema.columns "
                  "WHERE table_schema = ? AND table_name = ? ORDER BY ordinal_position", (schema, name))
    return dict(df.iter_rows())


def create_table(wh: "Warehouse", table: str, columns: tuple[tuple[str, str], ...],
                 primary_key: tuple[str, ...] = (), have: dict[str, str] | None = None) -> None:
    """Create ``table`` if missing (columns in DuckDB terms); add the columns an older version lacked.
    ``have``: the existing table's columns when the caller has read them already (no catalogue query)."""
    if have is None:
        cols = ", ".join(f"{c} {wh.sql_type(t)}" for c, t in columns)
        pk = f", PRIMARY KEY ({', '.join(primary_key)})" if primary_key else ""
        wh.execute(f"CREATE TABLE IF NOT EXISTS {table} ({cols}{pk})")
        have = table_columns(wh, table)
    for c, t in columns:
        if c not in have:
            wh.execute(f"ALTER TABLE {table} ADD COLUMN {c} {wh.sql_type(t)}")


def insert_row(wh: "Warehouse", table: str, row: dict) -> None:
    cols = ", ".join(row)
    wh.execute(f"INSERT INTO {table} ({cols}) VALUES ({', '.join('?' for _ in row)})", tuple(row.values()))


def _pg_params(sql: str) -> str:
    """Loaders write DuckDB-style ``?`` placeholders; psycopg wants ``%s``."""
    return sql.replace("%", "%%").replace("?", "%s") if "?" in sql else sql


def _duck_type(t: pl.DataType) -> str:
    if t == pl.String:
        return "VARCHAR"
    if isinstance(t, pl.Datetime):
        return "TIMESTAMPTZ"
    if t == pl.Boolean:
        return "BOOLEAN"
    if t.is_integer():
        return "BIGINT"
    if t.is_float():
        return "DOUBLE"
    if t == pl.Date:
        return "DATE"
    if isinstance(t, pl.List):
        return "VARCHAR[]"
    return "VARCHAR"


def open_published(settings: Settings) -> Warehouse:
    """The published warehouse for reading beside analysts' sessions: DuckDB's file read-only (a writer could
    not open it while a BI tool holds it), PostgreSQL as usual."""
    if settings.warehouse == "duckdb":
        return DuckDBWarehouse(settings.duckdb_path, read_only=True)
    return open_warehouse(settings)


def open_warehouse(settings: Settings, target: str | None = None) -> Warehouse:
    target = target or settings.warehouse
    if target == "duckdb":
        return DuckDBWarehouse(settings.duckdb_path)
    if target == "postgres":
        return PostgresWarehouse(settings.warehouse_url or embedded_warehouse_url(settings))
    raise ValueError(f"unknown warehouse target {target!r}: use duckdb or postgres")
