"""Write–audit–publish: dbt builds and tests a copy (DuckDB: of the file; PostgreSQL: shadow schemas), then publishes.

Plain Python, no Dagster. The refresh's transform step:

1. **write**: the published file (any write-ahead log left beside it folded in) is copied to
   ``<file>.build-<pid>-<time>``, this run's own path; dbt builds every model, snapshot and test into the copy;
2. **audit**: dbt's tests run there (a failing test, or a model whose SQL fails, fails the build);
3. **publish**: only when the whole build passed, and the published file is still the one the copy
   was made from (same inode, size and mtime), the copy is renamed over it (``os.replace``: atomic on
   one filesystem). Otherwise the copy is deleted and
   the published file is left as it was, byte for byte.

Readers are never blocked by the build and never see half of it: while dbt writes the copy, the
published file can be opened read-only; a session already open when the copy is published keeps
reading the file it opened (the old inode), new sessions open the new one. The cost is one file
copy per refresh on a file system without shared blocks (ext4: the kernel's copy, ~0.3–1 GB/s here; see the
README's figures), and a clone on one with them (XFS with reflink, btrfs: constant time, and the disk the build
adds is what it rewrote).
"""

from __future__ import annotations

import os
import shutil
import time
from dataclasses import dataclass
from pathlib import Path

import duckdb


class PublishRefused(RuntimeError):
    """The published file is no longer the one the build was copied from: publishing would lose what changed."""


def _identity(path: Path) -> tuple[int, int, int, int]:
    st = os.stat(path)
    return st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns


def build_path(published: Path) -> Path:
    """This run's own copy: two builds never share a path (a killed run's copy is removed by the next)."""
    return published.with_name(f"{published.name}.build-{os.getpid()}-{time.time_ns()}")


def _fold_wal(path: Path) -> None:
    """Fold a write-ahead log left beside ``path`` into it (DuckDB does so on a clean close)."""
    if not Path(f"{path}.wal").exists():
        return
    con = duckdb.connect(str(path))
    try:
        con.execute("CHECKPOINT")
    finally:
        con.close()


def discard(build: Path) -> None:
    for p in (build, Path(f"{build}.wal")):
        p.unlink(missing_ok=True)


def _stale_builds(published: Path) -> list[Path]:
    return [p for p in published.parent.glob(f"{published.name}.build*") if not p.name.endswith(".wal")]


@dataclass(frozen=True)
class Build:
    path: Path       # the copy dbt builds into
    origin: tuple    # the published file it was copied from (device, inode, size, mtime)


def start(published: Path) -> Build:
    """A copy of the published warehouse for dbt to build into. The caller holds the writer lock
    (crm_warehouse.lock): any other copy beside the file is a killed run's, and is removed."""
    for stale in _stale_builds(published):
        discard(stale)
    _fold_wal(published)  # the copy must hold everything the ingest wrote
    origin = _identity(published)
    build = build_path(published)
    clone_or_copy(published, build)  # read-only sessions may have the published file open meanwhile
    return Build(build, origin)


FICLONE = 0x40049409  # linux/fs.h: _IOW(0x94, 9, int)


def clone_or_copy(src: Path, dst: Path) -> str:
    """``dst`` made a copy-on-write clone of ``src`` where the file system shares blocks between files (XFS
    with reflink, btrfs, bcachefs, ZFS 2.2: one metadata operation whatever the size; the blocks the build
    then rewrites are the only new disk), else a plain copy (ext4: the kernel copies every byte). Returns
    "clone" or "copy"."""
    import fcntl

    with open(src, "rb") as s, open(dst, "wb") as d:
        try:
            fcntl.ioctl(d.fileno(), FICLONE, s.fileno())
            how = "clone"
        except OSError:  # EOPNOTSUPP, EXDEV, EINVAL: no shared blocks here
            how = "copy"
    if how == "copy":
        shutil.copyfile(src, dst)
    return how


def publish(build: Build, published: Path) -> None:
    """Replace the published file with the audited copy, atomically, if the published file is still the
    one the copy was made from (otherwise ``PublishRefused``: something wrote it meanwhile)."""
    if _identity(published) != build.origin:
        raise PublishRefused(f"{published} changed while this run built its copy (another writer?): the build "
                             "was not published; the next refresh builds from the current file")
    _fold_wal(build.path)
    os.replace(build.path, published)


# ---- PostgreSQL: the build goes to shadow schemas, published by renaming them in one transaction ----

PG_SCHEMAS = ("staging", "intermediate", "marts", "snapshots")
PG_SUFFIX = "__build"   # dbt's generate_schema_name appends CRM_SCHEMA_SUFFIX to every schema it builds


def _pg_schema_exists(conn, name: str) -> bool:
    return conn.execute("SELECT 1 FROM pg_namespace WHERE nspname = %s", (name,)).fetchone() is not None


def pg_start(conn, stateful: list[tuple[str, str]]) -> list[str]:
    """Empty shadow schemas ``<schema>__build``, holding copies of the tables whose content carries
    over between builds (incremental models, snapshots); returns the tables copied.

    Views and ordinary tables are rebuilt by dbt from ``raw``; only history has to be carried.
    """
    from psycopg import sql

    copied = []
    with conn.transaction():
        for s in PG_SCHEMAS:
            conn.execute(sql.SQL("DROP SCHEMA IF EXISTS {} CASCADE").format(sql.Identifier(s + PG_SUFFIX)))
            conn.execute(sql.SQL("CREATE SCHEMA {}").format(sql.Identifier(s + PG_SUFFIX)))
        for schema, name in stateful:
            if conn.execute("SELECT to_regclass(%s)", (f'"{schema}"."{name}"',)).fetchone()[0] is None:
                continue  # not built yet: dbt creates it
            src = sql.Identifier(schema, name)
            dst = sql.Identifier(schema + PG_SUFFIX, name)
            # the rows first, the indexes after: building an index once is cheaper than keeping it
            # up to date through millions of inserts
            indexes = [d for (d,) in conn.execute(
                "SELECT indexdef FROM pg_indexes WHERE schemaname = %s AND tablename = %s", (schema, name))]
            conn.execute(sql.SQL("CREATE TABLE {} (LIKE {} INCLUDING ALL EXCLUDING INDEXES)").format(dst, src))
            conn.execute(sql.SQL("INSERT INTO {} SELECT * FROM {}").format(dst, src))
            target = dst.as_string(conn)
            for d in indexes:
                head, on, tail = d.partition(" ON ")
                qualified, using, rest = tail.partition(" USING ")
                conn.execute(f"{head} ON {target} USING {rest}")
            # statistics now: the incremental model's delete+insert is planned against this copy
            # before autovacuum would have analyzed it
            conn.execute(sql.SQL("ANALYZE {}").format(dst))
            copied.append(f"{schema}.{name}")
    return copied


def pg_publish(conn) -> None:
    """Swap every shadow schema in, in one transaction: readers see the old marts or the new ones."""
    from psycopg import sql

    with conn.transaction():
        for s in PG_SCHEMAS:
            if not _pg_schema_exists(conn, s + PG_SUFFIX):
                continue
            if _pg_schema_exists(conn, s):
                conn.execute(sql.SQL("DROP SCHEMA IF EXISTS {} CASCADE").format(sql.Identifier(s + "__old")))
                conn.execute(sql.SQL("ALTER SCHEMA {} RENAME TO {}").format(sql.Identifier(s),
                                                                             sql.Identifier(s + "__old")))
            conn.execute(sql.SQL("ALTER SCHEMA {} RENAME TO {}").format(sql.Identifier(s + PG_SUFFIX),
                                                                         sql.Identifier(s)))
    with conn.transaction():
        for s in PG_SCHEMAS:
            conn.execute(sql.SQL("DROP SCHEMA IF EXISTS {} CASCADE").format(sql.Identifier(s + "__old")))


def pg_discard(conn) -> None:
    from psycopg import sql

    with conn.transaction():
        for s in PG_SCHEMAS:
            conn.execute(sql.SQL("DROP SCHEMA IF EXISTS {} CASCADE").format(sql.Identifier(s + PG_SUFFIX)))
