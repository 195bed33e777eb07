"""Who may read the PostgreSQL warehouse: the read-only role `bi_reader` and tenant roles.

Plain Python (psycopg), no Dagster: `apply_bi_access` runs after every dbt build on the postgres
target (dbt replaces the mart tables, which drops their grants and policies) and is idempotent;
`grant_tenant` is `crm-warehouse bi grant`.

- `bi_reader` reads `marts` and nothing else: USAGE on `marts` and SELECT on its tables; no
  privilege on `raw`, `staging`, `intermediate`, `snapshots`, `quarantine`, `ops`; no CREATE or
  TEMPORARY on the database, no CREATE on any schema. It logs in with the password in
  `CRM_BI_READER_PASSWORD` when that is set, otherwise it is a group role to grant to logins.
- A tenant role (`bi grant --company-id C --role R`) gets SELECT on the tenant-scoped marts (those
  with a `company_id` column) and sees only company C's rows: row-level security on each of those
  tables, keyed on the role running the query (`current_user`) and on what it inherits: a row is
  visible to a role that has bi_reader's privileges (bi_reader, roles granted it), or whose
  privileges include a tenant role of the row's company (the tenant role, a login it was granted
  to). Every other role sees no row. The lookups (`marts.bi_reads_all`, `marts.bi_visible_companies`)
  are SECURITY DEFINER over `ops.bi_tenant_roles`, which nobody else reads, and answer only about a
  role the caller's login is a member of.
  Marts without `company_id` (BuildDesk's own e-mail campaigns) are not granted to tenants.
- Personal data: the marts carry no e-mail addresses, phone numbers, IP addresses or lead/contact
  names (dimensions keep an e-mail domain at most); the tables that hold them are not readable.
"""

from __future__ import annotations

import re
import time
from typing import Callable

import psycopg
import psycopg.errors
from psycopg import sql

BI_READER = "bi_reader"
PRIVATE_SCHEMAS = ("raw", "staging", "intermediate", "snapshots", "quarantine", "ops")
TENANT_COLUMN = "company_id"
TENANT_ROLES_DDL = ("CREATE TABLE IF NOT EXISTS ops.bi_tenant_roles (role_name text PRIMARY KEY, "
                    "company_id uuid NOT NULL, granted_at timestamptz NOT NULL DEFAULT now())")
_ROLE_NAME = re.compile(r"^[a-z_][a-z0-9_]{0,62}$")


def _exists(conn: psycopg.Connection, q: str, *params) -> bool:
    return conn.execute(q, params).fetchone() is not None


def _mart_tables(conn: psycopg.Connection) -> list[tuple[str, bool]]:
    """(table, tenant-scoped) for every table in marts."""
    rows = conn.execute("""
        SELECT c.relname, EXISTS (SELECT 1 FROM pg_attribute a WHERE a.attrelid = c.oid AND a.attname = %s
                                  AND NOT a.attisdropped)
        FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
        WHERE n.nspname = 'marts' AND c.relkind IN ('r', 'p') ORDER BY 1""", (TENANT_COLUMN,)).fetchall()
    return [(r[0], bool(r[1])) for r in rows]


def apply_bi_access(conn: psycopg.Connection, bi_reader_password: str | None = None) -> dict[str, int]:
    """Create or update bi_reader, tenant grants and row-level security; returns what was covered."""
    dbname = conn.info.dbname
    with conn.transaction():
        if not _exists(conn, "SELECT 1 FROM pg_roles WHERE rolname = %s", BI_READER):
            conn.execute(sql.SQL("CREATE ROLE {} NOLOGIN").format(sql.Identifier(BI_READER)))
        if bi_reader_password:
            conn.execute(sql.SQL("ALTER ROLE {} LOGIN PASSWORD {}").format(
                sql.Identifier(BI_READER), sql.Literal(bi_reader_password)))
        conn.execute("CREATE SCHEMA IF NOT EXISTS marts")
        conn.execute("CREATE SCHEMA IF NOT EXISTS ops")
        conn.execute(TENANT_ROLES_DDL)
        # nobody but the warehouse's owner creates anything: no temp tables, no objects in public
        conn.execute(sql.SQL("REVOKE CREATE, TEMPORARY ON DATABASE {} FROM PUBLIC").format(sql.Identifier(dbname)))
        conn.execute("REVOKE CREATE ON SCHEMA public FROM PUBLIC")
        for schema in PRIVATE_SCHEMAS:
            if _exists(conn, "SELECT 1 FROM pg_namespace WHERE nspname = %s", schema):
                conn.execute(sql.SQL("REVOKE ALL ON SCHEMA {} FROM PUBLIC").format(sql.Identifier(schema)))
                conn.execute(sql.SQL("REVOKE ALL ON SCHEMA {} FROM {}").format(
                    sql.Identifier(schema), sql.Identifier(BI_READER)))
        conn.execute("DROP FUNCTION IF EXISTS marts.bi_tenant_company(name) CASCADE")
        # What a role may see, asked by the policy with current_user (a SECURITY DEFINER function sees its
        # owner as current_user). A caller learns nothing about roles it cannot become: the answer is
        # empty unless its login (session_user) is a member of the role it asks about.
        conn.execute(f"""
            CREATE OR REPLACE FUNCTION marts.bi_reads_all(role_name name) RETURNS boolean
            LANGUAGE sql STABLE SECURITY DEFINER SET search_path = pg_catalog AS
            $$ SELECT pg_has_role(session_user, $1, 'MEMBER') AND pg_has_role($1, '{BI_READER}', 'USAGE') $$""")
        conn.execute("""
            CREATE OR REPLACE FUNCTION marts.bi_visible_companies(role_name name) RETURNS uuid[]
            LANGUAGE sql STABLE SECURITY DEFINER SET search_path = pg_catalog AS
            $$ SELECT CASE WHEN pg_has_role(session_user, $1, 'MEMBER') THEN coalesce(
                 (SELECT array_agg(t.company_id) FROM ops.bi_tenant_roles t JOIN pg_roles r ON r.rolname = t.role_name
                  WHERE pg_has_role($1, r.oid, 'USAGE')), '{}') ELSE '{}' END $$""")
        for fn in ("bi_reads_all(name)", "bi_visible_companies(name)"):
            # any role may call them (a role granted SELECT some other way then sees no row, rather than
            # an error): they answer only about roles the caller's login is a member of
            conn.execute(f"GRANT EXECUTE ON FUNCTION marts.{fn} TO PUBLIC")
        tenants = [r[0] for r in conn.execute("SELECT role_name FROM ops.bi_tenant_roles ORDER BY 1").fetchall()
                   if _exists(conn, "SELECT 1 FROM pg_roles WHERE rolname = %s", r[0])]
        readers = [BI_READER, *tenants]
        for role in readers:
            conn.execute(sql.SQL("GRANT USAGE ON SCHEMA marts TO {}").format(sql.Identifier(role)))
        tables = _mart_tables(conn)
        scoped = 0
        for table, tenant_scoped in tables:
            ident = sql.Identifier("marts", table)
            conn.execute(sql.SQL("REVOKE ALL ON {} FROM PUBLIC").format(ident))
            conn.execute(sql.SQL("GRANT SELECT ON {} TO {}").format(ident, sql.Identifier(BI_READER)))
            if not tenant_scoped:
                for role in tenants:
                    conn.execute(sql.SQL("REVOKE ALL ON {} FROM {}").format(ident, sql.Identifier(role)))
                continue
            scoped += 1
            conn.execute(sql.SQL("ALTER TABLE {} ENABLE ROW LEVEL SECURITY").format(ident))
            conn.execute(sql.SQL("DROP POLICY IF EXISTS tenant_rows ON {}").format(ident))
            # each function once per query (scalar subqueries: init plans), not once per row
            conn.execute(sql.SQL(
                "CREATE POLICY tenant_rows ON {} FOR SELECT USING ((SELECT marts.bi_reads_all(current_user)) "
                "OR CAST({} AS text) = ANY (CAST((SELECT marts.bi_visible_companies(current_user)) AS text[])))"
            ).format(ident, sql.Identifier(TENANT_COLUMN)))
            for role in tenants:
                conn.execute(sql.SQL("GRANT SELECT ON {} TO {}").format(ident, sql.Identifier(role)))
    return {"mart_tables": len(tables), "tenant_scoped": scoped, "tenant_roles": len(tenants)}


LOCK_TIMEOUT = "5s"
ATTEMPTS = 6


def apply_with_retries(connect: Callable[[], psycopg.Connection], bi_reader_password: str | None = None, *,
                       log: Callable[[str], None] = lambda _: None, attempts: int = ATTEMPTS,
                       lock_timeout: str = LOCK_TIMEOUT) -> dict[str, int]:
    """``apply_bi_access`` in one transaction that waits at most ``lock_timeout`` for each lock and is
    retried (``attempts`` times, backing off) when a lock was not granted or a deadlock chose it: an
    autovacuum of a fresh mart, or a BI query holding a table, delays the grants, never fails them.
    Until the transaction commits, the marts are as dbt left them: readable by their owner only."""
    for attempt in range(1, attempts + 1):
        with connect() as conn:
            conn.execute(sql.SQL("SET lock_timeout = {}").format(sql.Literal(lock_timeout)))
            try:
                return apply_bi_access(conn, bi_reader_password)
            except (psycopg.errors.LockNotAvailable, psycopg.errors.DeadlockDetected) as err:
                if attempt == attempts:
                    raise
                first = str(err).strip().splitlines()[0]
                log(f"bi access: {first}; trying again ({attempt} of {attempts - 1})")
        time.sleep(min(0.5 * 2 ** (attempt - 1), 8.0))
    raise AssertionError("unreachable")


def grant_tenant(conn: psycopg.Connection, company_id: str, role: str, password: str) -> dict[str, int]:
    """Create or update the login role ``role`` that reads the marts of one company only."""
    if not _ROLE_NAME.match(role) or role == BI_READER or role.startswith("pg_"):
        raise ValueError(f"role name {role!r}: use lower-case letters, digits and _ (not {BI_READER}, not pg_…, "
                         "which PostgreSQL reserves)")
    owner = conn.execute("SELECT pg_get_userbyid(nspowner) FROM pg_namespace WHERE nspname = 'marts'").fetchone()
    if role == conn.info.user or (owner and role == owner[0]):
        raise ValueError(f"role {role} owns the warehouse (it bypasses row-level security): choose another name")
    if not password:
        raise ValueError("the password is empty: set the variable named by --password-env")
    known = conn.execute("SELECT 1 FROM raw.companies WHERE id = %s AND _deleted_at IS NULL", (company_id,)).fetchone()
    if not known:
        raise ValueError(f"company {company_id} is not in the warehouse (raw.companies): check the id, or refresh first")
    with conn.transaction():
        conn.execute("CREATE SCHEMA IF NOT EXISTS ops")
        if _exists(conn, "SELECT 1 FROM pg_roles WHERE rolname = %s", role):
            if not _exists(conn, "SELECT 1 FROM pg_roles WHERE rolname = %s AND NOT rolsuper AND NOT rolbypassrls", role):
                raise ValueError(f"role {role} exists and is a superuser or bypasses row-level security: choose another name")
            conn.execute(sql.SQL("ALTER ROLE {} LOGIN NOINHERIT PASSWORD {}").format(sql.Identifier(role), sql.Literal(password)))
        else:
            conn.execute(sql.SQL("CREATE ROLE {} LOGIN NOINHERIT PASSWORD {}").format(sql.Identifier(role), sql.Literal(password)))
        conn.execute(TENANT_ROLES_DDL)
        conn.execute("INSERT INTO ops.bi_tenant_roles (role_name, company_id) VALUES (%s, %s) "
                     "ON CONFLICT (role_name) DO UPDATE SET company_id = excluded.company_id, granted_at = now()",
                     (role, company_id))
    return apply_bi_access(conn)
