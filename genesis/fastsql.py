"""Hand-built statements for the engine's hot path, where compiling an ORM query costs more than running it.

Measured on a 2-core machine (PostgreSQL on localhost): a ``select_related`` lookup of a run with its task,
mission and agent spends about 2 ms building its SQL, 1.3 ms in the database and 1.2 ms building objects; a
two-row ``bulk_create`` of history spends 2 ms. A queued ``noop`` task passes through a dozen such statements, so
the ORM's own Python was most of a task's cost (bench/engine.py, docs/benchmarks.md).

The statements here are built from the models' metadata, once per shape (cached), and values go through each
field's own ``pre_save``/``get_db_prep_save``, so JSON, UUIDs, time zones and ``auto_now`` behave exactly as
``save()``/``bulk_create()``/``update()`` would. No signals are sent: the models that use this have no receivers.
Only the services in ``tasks/services.py``, ``tasks/history.py`` and the engine's claim use it; everything else
keeps the ORM.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from functools import lru_cache
from typing import Any

from django.db import connections, router
from django.db.models import Model


def _connection(model: type[Model]):
    return connections[router.db_for_write(model)]


@lru_cache(maxsize=256)
def _insert_sql(model: type[Model], alias: str, rows: int) -> tuple[str, tuple]:
    fields = tuple(f for f in model._meta.concrete_fields if not getattr(f, "db_returning", False))  # not the id
    quote = connections[alias].ops.quote_name
    row = "(" + ", ".join(["%s"] * len(fields)) + ")"
    sql = (f"INSERT INTO {quote(model._meta.db_table)} ({', '.join(quote(f.column) for f in fields)}) "  # noqa: S608
           f"VALUES {', '.join([row] * rows)}")
    return sql, fields


INSERT_ROWS = 200  # rows per statement: far below SQLite's and PostgreSQL's limits on parameters


def insert(objs: Sequence[Model]) -> None:
    """INSERT unsaved instances of one model, in order, ``INSERT_ROWS`` to a statement (their primary keys stay
    unset)."""
    if not objs:
        return
    model = type(objs[0])
    connection = _connection(model)
    with connection.cursor() as cursor:
        for start in range(0, len(objs), INSERT_ROWS):
            chunk = objs[start:start + INSERT_ROWS]
            sql, fields = _insert_sql(model, connection.alias, len(chunk))
            params: list[Any] = []
            for obj in chunk:
                params.extend(f.get_db_prep_save(f.pre_save(obj, True), connection=connection) for f in fields)
            cursor.execute(sql, params)


@lru_cache(maxsize=256)
def _update_sql(model: type[Model], alias: str, names: tuple[str, ...], where: tuple[str, ...]) -> tuple[str, tuple]:
    meta = model._meta
    quote = connections[alias].ops.quote_name
    fields = tuple(meta.get_field(name) for name in names)
    conditions = tuple(meta.get_field(name) for name in where)
    sets = ", ".join(f"{quote(f.column)} = %s" for f in fields)
    tests = " AND ".join(f"{quote(f.column)} = %s" for f in conditions)
    sql = f"UPDATE {quote(meta.db_table)} SET {sets} WHERE {quote(meta.pk.column)} = %s"  # noqa: S608
    return (sql + (f" AND {tests}" if tests else "")), (fields, conditions)


def save_fields(obj: Model, names: Iterable[str], *, where: dict[str, Any] | None = None) -> int:
    """Write ``obj``'s ``names`` (``auto_now`` fields refreshed, as ``save(update_fields=...)`` does) to its row,
    only if the row still matches ``where`` (field name → value); returns how many rows changed (0 or 1)."""
    model = type(obj)
    connection = _connection(model)
    where = where or {}
    if any(value is None for value in where.values()):
        raise ValueError("save_fields: a guard compares with =, which NULL never matches.")
    sql, (fields, conditions) = _update_sql(model, connection.alias, tuple(names), tuple(where))
    params = [f.get_db_prep_save(f.pre_save(obj, False), connection=connection) for f in fields]
    params.append(obj.pk)
    params.extend(f.get_db_prep_value(where[f.name], connection=connection, prepared=False) for f in conditions)
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        return cursor.rowcount


@lru_cache(maxsize=64)
def _columns(model: type[Model], table_alias: str, alias: str) -> str:
    quote = connections[alias].ops.quote_name
    return ", ".join(f"{table_alias}.{quote(f.column)}" for f in model._meta.concrete_fields)


def columns(model: type[Model], table_alias: str) -> str:
    """The select list of all of ``model``'s columns under ``table_alias``, in the order ``from_row`` reads."""
    return _columns(model, table_alias, _connection(model).alias)


def from_row(model: type[Model], row: Sequence[Any], start: int = 0) -> tuple[Model | None, int]:
    """Build an instance from ``row[start:]`` in ``columns(model, ...)`` order, with the database converters
    applied as the ORM would; returns it (None when its primary key is NULL, as in a LEFT JOIN that found
    nothing) and the offset after its columns."""
    connection = _connection(model)
    names, pk_index, converters = _reader(model, connection.alias)
    end = start + len(names)
    values = list(row[start:end])
    if values[pk_index] is None:
        return None, end
    for i, col, convert in converters:
        values[i] = convert(values[i], col, connection)
    return model.from_db(connection.alias, names, values), end


@lru_cache(maxsize=64)
def _reader(model: type[Model], alias: str) -> tuple[tuple[str, ...], int, tuple]:
    """Per model: the attribute names, the primary key's position, and (position, column, converter) for every
    converter the ORM's compiler would apply (backend ones first, then the field's own)."""
    connection = connections[alias]
    fields = model._meta.concrete_fields
    converters = []
    for i, field in enumerate(fields):
        col = field.get_col(model._meta.db_table)
        for convert in [*connection.ops.get_db_converters(col), *col.get_db_converters(connection)]:
            converters.append((i, col, convert))
    pk_index = [f.primary_key for f in fields].index(True)
    return tuple(f.attname for f in fields), pk_index, tuple(converters)
