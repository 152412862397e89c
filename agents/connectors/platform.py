"""The platform's own database is never a data connection: it holds every user's API token and session.

``refusal_for(engine, location)`` compares a connection's location with the platform's database settings (at
registration: the admin, the API, ``connection_add``); ``same_as_platform(raw)`` compares a live PostgreSQL session
with the platform's own by what the server says of itself (at every open: a DNS alias or another spelling of the
host cannot slip past it).
"""

from __future__ import annotations

import functools
from pathlib import Path

from django.conf import settings
from django.db import connection as platform_connection
from psycopg.conninfo import conninfo_to_dict

_LOCAL_HOSTS = {"", "localhost", "127.0.0.1", "::1", "0.0.0.0"}  # noqa: S104 - names compared, nothing bound


def server_host(host: str | None) -> str:
    """A PostgreSQL host as compared for "the same server": every spelling of this machine (a socket directory too)
    is one."""
    host = (host or "").strip().lower()
    return "local" if host in _LOCAL_HOSTS or host.startswith("/") else host


def platform_database() -> dict:
    """The settings of the platform's own database."""
    return settings.DATABASES["default"]


def refusal_for(engine: str, location: str) -> str | None:
    """Why a connection at ``location`` would reach the platform's own database, or None."""
    platform = platform_database()
    vendor = platform["ENGINE"].rsplit(".", 1)[-1]
    if engine in {"sqlite", "duckdb"} and vendor == "sqlite3":
        # A DuckDB connection on the platform's SQLite file is refused too (DuckDB can read SQLite files).
        path = location
        for prefix in ("sqlite:///", "sqlite://", "duckdb:///", "duckdb://", "file:"):
            path = path.removeprefix(prefix)
        path = path.split("?", 1)[0]
        own = str(platform.get("NAME") or "")
        try:
            if own and Path(path).exists() and Path(own).exists() and Path(path).resolve().samefile(own):
                return "it is the platform's own database"
        except OSError:
            return None
        return None
    if engine == "postgresql" and vendor in {"postgresql", "postgresql_psycopg2"}:
        try:
            info = conninfo_to_dict(location)
        except Exception:  # an unreadable DSN is refused elsewhere, with its own message
            return None
        dbname = info.get("dbname") or info.get("user") or ""
        names = {platform.get("NAME")} | {(platform.get("TEST") or {}).get("NAME") or f"test_{platform.get('NAME')}"}
        same_server = (server_host(info.get("host")) == server_host(platform.get("HOST"))
                       and str(info.get("port") or 5432) == str(platform.get("PORT") or 5432))
        if same_server and dbname in names:
            return "it is the platform's own database"
    return None


@functools.cache
def _platform_fingerprint() -> tuple | None:
    if platform_connection.vendor != "postgresql":
        return None
    with platform_connection.cursor() as cursor:
        cursor.execute("SELECT current_database(), pg_postmaster_start_time()")
        return tuple(cursor.fetchone())


def same_as_platform(raw) -> bool:
    """Whether an open psycopg session is on the platform's own database (same server start, same database)."""
    fingerprint = _platform_fingerprint()
    if fingerprint is None:
        return False
    with raw.cursor() as cursor:
        cursor.execute("SELECT current_database(), pg_postmaster_start_time()")
        theirs = tuple(cursor.fetchone())
    raw.rollback()
    return theirs == fingerprint
