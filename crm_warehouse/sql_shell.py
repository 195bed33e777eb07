"""`crm-warehouse sql`: SQL on the warehouse, read-only, without installing a database client.

DuckDB: the warehouse file opened with ``read_only=True`` (it may stay open while dbt builds the next
version; a refresh's ingest needs the file to itself, so close the shell before one). PostgreSQL: the
warehouse database in a read-only session (``default_transaction_read_only``).
"""

from __future__ import annotations

import csv
import sys
from typing import Iterator, TextIO

from ingest.config import Settings, memory_limit
from ingest.postgres_server import SourceError


class Session:
    def __init__(self, cfg: Settings):
        self.kind = cfg.warehouse
        if cfg.warehouse == "duckdb":
            import duckdb

            if not cfg.duckdb_path.exists():
                raise SourceError(f"no warehouse at {cfg.duckdb_path}: run `crm-warehouse refresh` (or `demo`) first")
            self.conn = duckdb.connect(str(cfg.duckdb_path), read_only=True,
                                       config={"memory_limit": memory_limit()})
        else:
            from ingest.postgres_server import WAREHOUSE_DB, connect, embedded_database_url

            url = cfg.warehouse_url or embedded_database_url(cfg.warehouse_pgdata, WAREHOUSE_DB)
            self.conn = connect(url, autocommit=True)
            self.conn.execute("SET default_transaction_read_only = on")

    def run(self, sql: str) -> tuple[list[str], Iterator[tuple]]:
        cur = self.conn.execute(sql)
        if cur.description is None:
            return [], iter(())
        cols = [d[0] for d in cur.description]

        def rows() -> Iterator[tuple]:
            while batch := cur.fetchmany(1000):
                yield from batch
        return cols, rows()

    def close(self) -> None:
        self.conn.close()


def statements(text: str) -> list[str]:
    """A script split at its semicolons, except those inside quotes or ``--`` comments; statements
    that are only comments are dropped."""
    out, buf, quote, comment = [], [], None, False
    prev = ""
    for ch in text:
        if comment:
            comment = ch != "\n"
        elif quote:
            quote = None if ch == quote else quote
        elif ch in "'\"":
            quote = ch
        elif ch == "-" and prev == "-":
            comment = True
        elif ch == ";":
            out.append("".join(buf))
            buf, prev = [], ""
            continue
        buf.append(ch)
        prev = ch
    out.append("".join(buf))

    def code(statement: str) -> bool:
        return any(line.strip() and not line.strip().startswith("--") for line in statement.splitlines())
    return [x.strip() for x in out if code(x)]


def print_result(console, cols: list[str], rows: Iterator[tuple], *, fmt: str, max_rows: int,
                 stream: TextIO | None = None) -> int:
    """Rows as a table (at most ``max_rows``, saying how many more) or as CSV (all). Returns rows shown."""
    if fmt == "csv":
        writer = csv.writer(stream or sys.stdout)
        writer.writerow(cols)
        n = 0
        for r in rows:
            writer.writerow(["" if v is None else v for v in r])
            n += 1
        return n
    from rich.table import Table

    table = Table(*cols, show_lines=False)
    n = more = 0
    for r in rows:
        if n < max_rows:
            table.add_row(*("NULL" if v is None else str(v) for v in r))
            n += 1
        else:
            more += 1
    console.print(table)
    console.print(f"{n:,} row(s)" + (f", {more:,} more not shown (--max-rows, or --format csv)" if more else ""),
                  highlight=False)
    return n
