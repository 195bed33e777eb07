"""Write–audit–publish: dbt builds and tests a copy (DuckDB: of the file; PostgreSQL: shadow schemas), then publishes.

Plain Python, no Dagster. The refresh's transform step:

1. **write**: the published file (any write-ahead log left beside it folded in) is copied to
   ``<file>.build`` (one path per warehouse: dbt's partial parsing keys on it); dbt builds every model, snapshot and test into the copy;
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
    """The copy dbt builds into: one path per warehouse, the same every build. dbt hashes its profile's
    connection (the DuckDB ``path`` included) into its partial-parse state, so a new path each build made
    every build parse the whole project again ("profile has changed": 3.4 s of a 26.6 s dbt build at the
    medium tier). One build at a time: the caller holds the writer lock, and ``start`` refuses a copy that
    another process (a killed run's dbt, still running) has open."""
    return published.with_name(f"{published.name}.build")


class BuildInUse(RuntimeError):
    """The build copy is open in another process: a killed refresh's dbt still running."""


def _open_elsewhere(path: Path) -> bool:
    """Whether another process holds DuckDB's lock on ``path``: DuckDB takes a POSIX record lock
    (``fcntl`` F_SETLK; a write lock read-write, a read lock read-only) on the file it opens, which
    a probe for a write lock here meets."""
    import fcntl

    try:
        fd = os.open(path, os.O_RDWR)
    except FileNotFoundError:
        return False
    try:
        fcntl.lockf(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:  # EAGAIN / EACCES: locked by another process
        return True
    finally:
        os.close(fd)  # releases this probe's lock
    return False


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
        if _open_elsewhere(stale):
            raise BuildInUse(f"{stale} is open in another process: a refresh killed earlier may have left its dbt "
                             "running (`fuser` names it); stop it or let it end, then refresh again. The published "
                             "warehouse was not touched")
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
GONE = "__gone"         # an incremental model's tombstones in a delta build (dbt_project/macros/wap_delta.sql)


def _pg_schema_exists(conn, name: str) -> bool:
    return conn.execute("SELECT 1 FROM pg_namespace WHERE nspname = %s", (name,)).fetchone() is not None


def pg_start(conn, stateful: list[tuple[str, str, tuple[str, ...] | None]]) -> tuple[list[str], list[str]]:
    """Empty shadow schemas ``<schema>__build``, ready for dbt; returns the tables copied in (snapshots)
    and the incremental models set up to be built as a delta of their published table.

    Views and ordinary tables are rebuilt by dbt from ``raw``; only history has to be carried. A
    snapshot is copied whole (dbt's snapshot merges into the table). An incremental model with a grain
    whose published table exists gets an empty table of the same columns (dbt's delete+insert writes
    this build's rows into it) and ``<name>__gone`` for the grain of the published rows it replaces or
    deletes (dbt_project/macros/wap_delta.sql); ``pg_publish`` applies both to the published table. The
    cost follows the day's change, not the table's size.
    """
    from psycopg import sql

    copied, deltas = [], []
    with conn.transaction():
        for s in PG_SCHEMAS:
            conn.execute(sql.SQL("DROP SCHEMA IF EXISTS {} CASCADE").format(sql.Identifier(s + PG_SUFFIX)))
            conn.execute(sql.SQL("CREATE SCHEMA {}").format(sql.Identifier(s + PG_SUFFIX)))
        for schema, name, grain in stateful:
            if conn.execute("SELECT to_regclass(%s)", (f'"{schema}"."{name}"',)).fetchone()[0] is None:
                continue  # not built yet: dbt creates it
            src = sql.Identifier(schema, name)
            dst = sql.Identifier(schema + PG_SUFFIX, name)
            if grain:
                conn.execute(sql.SQL("CREATE TABLE {} (LIKE {} INCLUDING DEFAULTS)").format(dst, src))
                conn.execute(sql.SQL("CREATE TABLE {} AS SELECT {} FROM {} WITH NO DATA").format(
                    sql.Identifier(schema + PG_SUFFIX, name + GONE), sql.SQL(", ").join(map(sql.Identifier, grain)), src))
                deltas.append(f"{schema}.{name}")
                continue
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
            # statistics now: the snapshot's merge is planned against this copy before autovacuum
            # would have analyzed it
            conn.execute(sql.SQL("ANALYZE {}").format(dst))
            copied.append(f"{schema}.{name}")
    return copied, deltas


def _pg_deltas(conn, shadow: str) -> list[str]:
    """The incremental models of one shadow schema built as a delta (they have a tombstone table)."""
    return [t[:-len(GONE)] for (t,) in conn.execute(
        "SELECT tablename FROM pg_tables WHERE schemaname = %s AND right(tablename, %s) = %s ORDER BY 1",
        (shadow, len(GONE), GONE))]


def _pg_apply_delta(conn, schema: str, name: str) -> None:
    """Write one delta build into the published table: its tombstoned rows deleted, the delta inserted.

    Row locks only: readers of the published table go on reading the previous version until commit."""
    from psycopg import sql

    shadow = schema + PG_SUFFIX
    kind = conn.execute("SELECT c.relkind FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
                        "WHERE n.nspname = %s AND c.relname = %s", (shadow, name)).fetchone()
    # the model ran: its name is the view of the new state, the rows are in <name>__delta; a model this
    # build did not run (a subset) left its empty table: nothing to apply
    ran = kind is not None and kind[0] == "v"
    delta = name + "__delta" if ran else name
    if ran:
        conn.execute(sql.SQL("DROP VIEW {}").format(sql.Identifier(shadow, name)))
    grain = [c for (c,) in conn.execute(
        "SELECT attname FROM pg_attribute WHERE attrelid = %s::regclass AND attnum > 0 AND NOT attisdropped "
        "ORDER BY attnum", (sql.Identifier(shadow, name + GONE).as_string(conn),))]
    published = sql.Identifier(schema, name)
    conn.execute(sql.SQL("DELETE FROM {} AS p USING (SELECT DISTINCT {} FROM {}) AS g WHERE {}").format(
        published, sql.SQL(", ").join(map(sql.Identifier, grain)), sql.Identifier(shadow, name + GONE),
        sql.SQL(" AND ").join(sql.SQL("p.{c} = g.{c}").format(c=sql.Identifier(c)) for c in grain)))
    conn.execute(sql.SQL("INSERT INTO {} SELECT * FROM {}").format(published, sql.Identifier(shadow, delta)))
    conn.execute(sql.SQL("DROP TABLE {}, {}").format(sql.Identifier(shadow, delta), sql.Identifier(shadow, name + GONE)))


def _pg_move_in(conn, schema: str, name: str, *, attempts: int = 60, lock_timeout_s: float = 2.0) -> None:
    """Move the published table into the shadow schema (which is about to become the published one).

    ALTER TABLE … SET SCHEMA needs the table to itself: a reader's query still running on it delays it,
    and queries arriving meanwhile wait behind it. So each attempt waits at most ``lock_timeout_s`` and
    gives way (a savepoint: the delta already applied stays) before trying again; the last one waits."""
    import psycopg
    from psycopg import sql

    stmt = sql.SQL("ALTER TABLE {} SET SCHEMA {}").format(sql.Identifier(schema, name),
                                                          sql.Identifier(schema + PG_SUFFIX))
    for attempt in range(attempts):
        last = attempt == attempts - 1
        try:
            with conn.transaction():  # a savepoint inside the publish transaction
                conn.execute(f"SET LOCAL lock_timeout = '{0 if last else int(lock_timeout_s * 1000)}ms'")
                conn.execute(stmt)
                conn.execute("RESET lock_timeout")  # the rest of the publish waits as it always did
            return
        except psycopg.errors.LockNotAvailable:
            time.sleep(lock_timeout_s / 2)


def pg_publish(conn) -> None:
    """Swap every shadow schema in, in one transaction: readers see the old marts or the new ones.

    The incremental models built as a delta are applied to their published table first, which then
    moves into the shadow schema: the same table, now holding the new state, renamed in with the rest."""
    from psycopg import sql

    with conn.transaction():
        deltas = [(s, name) for s in PG_SCHEMAS if _pg_schema_exists(conn, s + PG_SUFFIX)
                  for name in _pg_deltas(conn, s + PG_SUFFIX)]
        for schema, name in deltas:
            _pg_apply_delta(conn, schema, name)
        for schema, name in deltas:  # the exclusive locks last, each held only until the commit below
            _pg_move_in(conn, schema, name)
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
