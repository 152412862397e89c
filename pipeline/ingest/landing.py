"""How a column DuckDB inferred lands on each engine: the type the target table declares, and the DuckDB expression
whose values the engine's driver binds as they are.

Numbers, booleans, text and bytes go through as Python values. Dates, times, timestamps, intervals and UUIDs go as
DuckDB's ISO text, which PostgreSQL parses into its own types and SQLite keeps as text (SQLite has no date type;
the declared ``DATE``/``TIMESTAMP`` says what the text holds). Lists, structs and maps go as JSON text (``jsonb`` on
PostgreSQL). Exact decimals stay exact on PostgreSQL (``numeric``, sent as text) and become SQLite REALs (its
``DECIMAL(p,s)`` columns have numeric affinity anyway); integers wider than 64 bits become ``numeric``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

NATIVE = "{}"
TEXT = "CAST({} AS VARCHAR)"
JSON = "CAST(to_json({}) AS VARCHAR)"
DOUBLE = "CAST({} AS DOUBLE)"

_DECIMAL = re.compile(r"DECIMAL\((\d+),\s*(\d+)\)")
_NESTED_PREFIXES = ("STRUCT", "MAP", "UNION")

# DuckDB type -> (SQLite declared type, expression), (PostgreSQL declared type, expression).
_PLAIN: dict[str, tuple[tuple[str, str], tuple[str, str]]] = {
    "BOOLEAN": (("BOOLEAN", NATIVE), ("boolean", NATIVE)),
    "TINYINT": (("INTEGER", NATIVE), ("smallint", NATIVE)),
    "UTINYINT": (("INTEGER", NATIVE), ("smallint", NATIVE)),
    "SMALLINT": (("INTEGER", NATIVE), ("smallint", NATIVE)),
    "USMALLINT": (("INTEGER", NATIVE), ("integer", NATIVE)),
    "INTEGER": (("INTEGER", NATIVE), ("integer", NATIVE)),
    "UINTEGER": (("INTEGER", NATIVE), ("bigint", NATIVE)),
    "BIGINT": (("INTEGER", NATIVE), ("bigint", NATIVE)),
    "UBIGINT": (("NUMERIC", TEXT), ("numeric", TEXT)),
    "HUGEINT": (("NUMERIC", TEXT), ("numeric", TEXT)),
    "UHUGEINT": (("NUMERIC", TEXT), ("numeric", TEXT)),
    "BIGNUM": (("NUMERIC", TEXT), ("numeric", TEXT)),
    "VARINT": (("NUMERIC", TEXT), ("numeric", TEXT)),
    "FLOAT": (("REAL", NATIVE), ("real", NATIVE)),
    "DOUBLE": (("REAL", NATIVE), ("double precision", NATIVE)),
    "VARCHAR": (("TEXT", NATIVE), ("text", NATIVE)),
    "BLOB": (("BLOB", NATIVE), ("bytea", NATIVE)),
    "DATE": (("DATE", TEXT), ("date", TEXT)),
    "TIMESTAMP": (("TIMESTAMP", TEXT), ("timestamp", TEXT)),
    "TIMESTAMP_S": (("TIMESTAMP", TEXT), ("timestamp", TEXT)),
    "TIMESTAMP_MS": (("TIMESTAMP", TEXT), ("timestamp", TEXT)),
    "TIMESTAMP_NS": (("TIMESTAMP", TEXT), ("timestamp", TEXT)),
    "TIMESTAMP WITH TIME ZONE": (("TIMESTAMPTZ", TEXT), ("timestamptz", TEXT)),
    "TIME": (("TIME", TEXT), ("time", TEXT)),
    "TIME WITH TIME ZONE": (("TEXT", TEXT), ("timetz", TEXT)),
    "INTERVAL": (("TEXT", TEXT), ("interval", TEXT)),
    "UUID": (("TEXT", TEXT), ("uuid", TEXT)),
    "JSON": (("TEXT", TEXT), ("jsonb", TEXT)),
}


@dataclass(frozen=True)
class Landing:
    """A column's declared type on the target and the DuckDB expression (``{}`` is the quoted column) to send."""

    declared: str
    expression: str


def landing_for(duck_type: str, engine: str) -> Landing:
    """How a column of DuckDB type ``duck_type`` lands on ``engine`` (``sqlite``, ``postgresql`` or ``duckdb``: there
    every column keeps the type DuckDB inferred)."""
    if engine == "duckdb":
        return Landing(duck_type.strip(), NATIVE)
    on_sqlite = engine == "sqlite"
    name = duck_type.strip().upper()
    if name in _PLAIN:
        declared, expression = _PLAIN[name][0 if on_sqlite else 1]
        return Landing(declared, expression)
    decimal = _DECIMAL.fullmatch(name)
    if decimal:
        precision, scale = decimal.groups()
        if on_sqlite:
            return Landing(f"DECIMAL({precision},{scale})", DOUBLE)
        return Landing(f"numeric({precision},{scale})", TEXT)
    if name.endswith("]") or name.startswith(_NESTED_PREFIXES):
        return Landing("TEXT" if on_sqlite else "jsonb", JSON)
    # ENUM, BIT, NULL (a JSON key never set) and anything newer: their text.
    return Landing("TEXT" if on_sqlite else "text", TEXT)
