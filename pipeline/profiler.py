"""Source profiling: per table and column the declared and observed types, null and distinct counts, min/max,
samples, frequent values, candidate keys, and foreign keys inferred from evidence (values, types, names,
cardinality) or declared by the spec file."""

from __future__ import annotations

import contextvars
import re
import threading
from collections import Counter
from collections.abc import Callable, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from datetime import UTC, date, datetime
from decimal import Decimal
from functools import partial
from typing import Any, TypeVar

from agents.connectors import Adapter, TableInfo
from pipeline.words import tokens

SAMPLE_ROWS = 1000
# Above SAMPLE_ABOVE_ROWS rows, distinct counts and frequent values are computed on a sample of about SAMPLE_SIZE_ROWS
# rows (the report says so and how the rows were picked); row counts, null counts, min and max stay exact (one pass
# over the full table), and the columns unique in the sample are confirmed keys only after a count over the full table.
SAMPLE_ABOVE_ROWS = 200_000
SAMPLE_SIZE_ROWS = 50_000
TOP_VALUES_MAX_DISTINCT = 20
FK_MIN_CONTAINMENT = 0.9
# Engines whose one query already uses every core: their tables are profiled one after the other whatever the
# number of threads asked for.
SEQUENTIAL_ENGINES = frozenset({"duckdb"})

T = TypeVar("T")
Job = Callable[[Adapter], T]

_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}$")
_DATETIME = re.compile(r"^\d{4}-\d{2}-\d{2}[ T]\d{2}:\d{2}(:\d{2}(\.\d+)?)?")
_INT = re.compile(r"^[+-]?\d+$")
_REAL = re.compile(r"^[+-]?(\d+\.\d*|\.\d+|\d+)([eE][+-]?\d+)?$")


def _value_type(value: Any) -> str:
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int):
        return "integer"
    if isinstance(value, Decimal):
        return "integer" if value.as_tuple().exponent >= 0 else "real"
    if isinstance(value, float):
        return "real"
    if isinstance(value, datetime):
        return "datetime"
    if isinstance(value, date):
        return "date"
    text = str(value).strip()
    if _DATE.match(text):
        return "date"
    if _DATETIME.match(text):
        return "datetime"
    if _INT.match(text):
        # Leading zeros (zip codes, NPIs as text) make it a code, not a number.
        return "text" if len(text.lstrip("+-")) > 1 and text.lstrip("+-")[0] == "0" else "integer"
    if _REAL.match(text):
        return "real"
    return "text"


def observed_type(values: list[Any]) -> str:
    """The narrowest type all the (non-null) sample values fit: integer < real, date < datetime, else text."""
    kinds = Counter(_value_type(v) for v in values)
    if not kinds:
        return "unknown"
    if len(kinds) == 1:
        return next(iter(kinds))
    if set(kinds) <= {"integer", "real"}:
        return "real"
    if set(kinds) <= {"date", "datetime"}:
        return "datetime"
    return "text"


def _plain(value: Any) -> Any:
    if isinstance(value, Decimal):
        return float(value)
    if isinstance(value, date | datetime):
        return value.isoformat()
    if isinstance(value, bytes):
        return value.hex()
    return value


def profile_table(adapter: Adapter, table: TableInfo, *, sample_above: int = SAMPLE_ABOVE_ROWS,
                  sample_rows: int = SAMPLE_SIZE_ROWS) -> dict[str, Any]:
    """One table's profile. A table of more than ``sample_above`` rows is profiled partly on a sample of about
    ``sample_rows`` rows (distinct counts, frequent values), said in ``sampling``; counts of rows and nulls, min and
    max are exact, and a column unique in the sample is a candidate key only if it is unique in the full table."""
    q = adapter.quote
    name = q(table.name)
    sampled = table.row_count > sample_above
    parts = []
    for column in table.columns:
        c = q(column.name)
        parts += [f"COUNT({c})", "0" if sampled else f"COUNT(DISTINCT {c})", f"MIN({c})", f"MAX({c})"]
    stats = list(adapter.query(f"SELECT {', '.join(parts)} FROM {name}", limit=1).rows[0])  # noqa: S608
    source, sample_size, method = name, table.row_count, ""
    if sampled:
        source, method = adapter.sample_of(table.name, sample_rows, total=table.row_count)
        distinct_parts = ", ".join(f"COUNT(DISTINCT {q(c.name)})" for c in table.columns)
        row = adapter.query(f"SELECT COUNT(*), {distinct_parts} FROM {source}", limit=1).rows[0]  # noqa: S608
        sample_size = int(row[0])
        for index, distinct in enumerate(row[1:]):
            stats[index * 4 + 1] = distinct
    columns: dict[str, Any] = {}
    for index, column in enumerate(table.columns):
        c = q(column.name)
        non_null, distinct, low, high = stats[index * 4: index * 4 + 4]
        sample = adapter.query(f"SELECT {c} FROM {name} WHERE {c} IS NOT NULL", limit=SAMPLE_ROWS).rows  # noqa: S608
        values = [row[0] for row in sample]
        info = {
            "declared_type": column.declared_type,
            "observed_type": observed_type(values),
            "nullable": column.nullable,
            "nulls": table.row_count - non_null,
            "distinct": distinct,
            "min": _plain(low),
            "max": _plain(high),
            "samples": [_plain(v) for v in list(dict.fromkeys(values))[:5]],
        }
        if 0 < distinct <= TOP_VALUES_MAX_DISTINCT:
            top = adapter.query(
                f"SELECT {c}, COUNT(*) FROM {source} WHERE {c} IS NOT NULL GROUP BY {c} "  # noqa: S608
                f"ORDER BY COUNT(*) DESC, {c}", limit=TOP_VALUES_MAX_DISTINCT,
            ).rows
            info["top_values"] = [[_plain(v), n] for v, n in top]
        columns[column.name] = info
    no_nulls = [n for n, info in columns.items() if table.row_count > 0 and info["nulls"] == 0]
    keys = [n for n in no_nulls if columns[n]["distinct"] == sample_size]
    profile: dict[str, Any] = {"row_count": table.row_count, "columns": columns, "candidate_keys": keys}
    if sampled:
        # Unique in the sample says little (a sample of a tenth of the rows misses most duplicates): the candidates
        # are counted over the full table, all in one pass, and their exact distinct counts replace the sample's.
        # An empty sample (sparse blocks) leaves every column without nulls to count.
        # A column the database keeps unique (a primary key, a unique index) and without nulls is a key: not
        # counted again.
        checked = keys if sample_size else no_nulls
        declared = adapter.unique_columns(table.name) if checked else set()
        counted = [n for n in checked if n not in declared]
        exact = adapter.query(
            f"SELECT {', '.join(f'COUNT(DISTINCT {q(n)})' for n in counted)} FROM {name}", limit=1,  # noqa: S608
        ).rows[0] if counted else ()
        for key, distinct in zip(counted, exact, strict=True):
            columns[key]["distinct"] = int(distinct)
        for key in checked:
            if key in declared:
                columns[key]["distinct"] = table.row_count
        profile["candidate_keys"] = [k for k in checked if columns[k]["distinct"] == table.row_count]
        profile["sampling"] = {
            "rows": sample_size, "of_rows": table.row_count, "method": method,
            "sampled": ["distinct", "top_values"],
            "exact": ["row_count", "nulls", "min", "max", "candidate_keys"],
            # The columns unique in the sample, with their distinct counts over the full table.
            "keys_checked": {k: columns[k]["distinct"] for k in checked},
            # Of those, the ones the database keeps unique itself (not counted).
            "keys_declared_unique": [k for k in checked if k in declared],
        }
    return profile


# Key words that name no entity by themselves: ``ORDERS.ID`` and ``CUSTOMERS.ID`` share a name, not a meaning.
GENERIC_KEY_WORDS = frozenset({"id", "key", "code", "number", "pk", "uuid", "guid"})


def name_evidence(column: str, ref_table: str, ref_key: str) -> str | None:
    """How a column's name says it refers to ``ref_table.ref_key``, or None. ``CUSTOMER_ID``, ``CUSTOMERID`` and
    ``customer`` name the customers; ``REFERRING_PROVIDER_ID`` names a provider in a role; ``NPI`` matches a key
    named ``NPI``. A bare ``ID`` matching another table's ``ID`` is no evidence at all."""
    col, key, entity = tokens(column), tokens(ref_key), tokens(ref_table)
    if not col or not entity:
        return None
    if key and key[: len(entity)] == entity:  # the key already names its entity (CLAIM_ID of CLAIMS)
        key_entity = key
    else:
        key_entity = entity + [w for w in key if w not in entity]
    if col == key_entity or (set(key) <= GENERIC_KEY_WORDS and col == entity):
        return f"names {ref_table}"
    if len(col) > len(key_entity) and col[-len(key_entity):] == key_entity:
        return f"names {ref_table} in a role ({' '.join(col[: -len(key_entity)])})"
    if col == key and not set(key) <= GENERIC_KEY_WORDS:
        return f"same key name as {ref_table}.{ref_key}"
    return None


def _containment(adapter: Adapter, table: str, column: str, refs: list[tuple[str, str]]) -> tuple[int, list[int]]:
    """The column's distinct (non-null) values over the full column, and how many of them each referenced key
    ``(ref_table, ref_key)`` lacks (orphans): one grouped query for all the keys a column may refer to (sampling would
    hide the few orphans that matter). Each engine looks the values up in the form it runs fastest
    (``Adapter.containment_sql``): one index seek per distinct value where the key has an index (as a key usually
    has), or outer joins that hash both sides."""
    q = adapter.quote
    values = f"(SELECT DISTINCT {q(column)} AS v FROM {q(table)} WHERE {q(column)} IS NOT NULL) AS x"  # noqa: S608
    row = adapter.query(adapter.containment_sql(values, refs), limit=1).rows[0]
    return int(row[0]), [int(n) for n in row[1:]]


def _share(total: int, orphans: int) -> float:
    return round(1 - orphans / max(total, 1), 4)


def _fk_candidates(tables: dict[str, Any], table: str, column: str) -> list[tuple[str, str, str | None]]:
    """Keys of other tables ``table.column`` may refer to, with the name evidence for each (None: values only)."""
    tinfo, cinfo = tables[table], tables[table]["columns"][column]
    if cinfo["nulls"] == tinfo["row_count"] or cinfo["observed_type"] not in ("integer", "text"):
        return []
    found = []
    for ref_table, rinfo in tables.items():
        if ref_table == table:
            continue
        for key in rinfo["candidate_keys"]:
            if rinfo["columns"][key]["observed_type"] != cinfo["observed_type"]:
                continue
            evidence = name_evidence(column, ref_table, key)
            if evidence is None:
                # Without a name saying so, only a column that looks like a reference and is not its own
                # table's key may point elsewhere, and never to more distinct values than the key has (a sampled
                # count is a lower bound: checked again on the full count below).
                if column in tinfo["candidate_keys"] or not set(tokens(column)) & GENERIC_KEY_WORDS:
                    continue
                if cinfo["distinct"] > rinfo["columns"][key]["distinct"]:
                    continue
            found.append((ref_table, key, evidence))
    return found


def _contained(adapter: Adapter, tables: dict[str, Any], table: str, column: str,
               candidates: list[tuple[str, str, str | None]]) -> tuple[int, dict[tuple[str, str, str | None], int]]:
    """The column's full distinct count and the orphan count of each candidate key looked up. The keys its name
    points to come first: when exactly one of them fits, the keys only the values could suggest change nothing and
    are not looked up; otherwise they are, in a second query, those with at least as many distinct values as the
    column has over its full length (the profile's count may come from a sample)."""
    by_name = [c for c in candidates if c[2] is not None]
    checked: dict[tuple[str, str, str | None], int] = {}
    total = 0
    for stage in ([by_name, [c for c in candidates if c[2] is None]] if by_name else [candidates]):
        if checked and sum(_share(total, n) >= FK_MIN_CONTAINMENT for n in checked.values()) == 1:
            break
        stage = [c for c in stage if c[2] is not None or not checked
                 or total <= tables[c[0]]["columns"][c[1]]["distinct"]]
        if stage:
            total, orphan_counts = _containment(adapter, table, column, [(r, k) for r, k, _ in stage])
            checked.update(zip(stage, orphan_counts, strict=True))
    return total, checked


def infer_foreign_keys(adapter: Adapter, tables: dict[str, Any], declared: list[dict[str, str]] | None = None,
                       *, run: Callable[[list[Job[Any]]], list[Any]] | None = None,
                       ) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """Foreign keys from evidence: the values (containment over the full columns), the types, the names (run-together
    names split) and the cardinality; never the names alone. Relationships the spec file declares come first.
    A column whose values fit several keys with no name to tell them apart gets none: it is listed under
    ``ambiguous`` for the mapping agent to ask about, never guessed. ``run`` runs the containment queries (one job
    per column, given an adapter) and returns their results in order; by default one after the other on
    ``adapter``."""
    jobs: list[Job[Any]] = []
    for item in declared or []:
        table, column, ref_table, ref_key = item["table"], item["column"], item["ref_table"], item["ref_column"]
        cinfo = tables.get(table, {}).get("columns", {}).get(column)
        if cinfo is not None and cinfo["nulls"] < tables[table]["row_count"]:
            jobs.append(partial(_containment, table=table, column=column, refs=[(ref_table, ref_key)]))
    declared_keys = {(item["table"], item["column"]) for item in declared or []}
    columns = [(table, column, _fk_candidates(tables, table, column)) for table, tinfo in tables.items()
               for column in tinfo["columns"] if (table, column) not in declared_keys]
    jobs += [partial(_contained, tables=tables, table=table, column=column, candidates=candidates)
             for table, column, candidates in columns if candidates]
    answers = iter(run(jobs) if run else _sequential(adapter, jobs))
    result: list[dict[str, Any]] = []
    for item in declared or []:
        table, column, ref_table, ref_key = item["table"], item["column"], item["ref_table"], item["ref_column"]
        cinfo = tables.get(table, {}).get("columns", {}).get(column)
        if cinfo is not None and cinfo["nulls"] < tables[table]["row_count"]:
            total, (orphans,) = next(answers)
        else:
            total, orphans = 0, 0
        result.append({"table": table, "column": column, "ref_table": ref_table, "ref_column": ref_key,
                       "by": ["declared"], "evidence": ["declared in the spec file"],
                       "containment": _share(total, orphans), "orphan_values": orphans})
    ambiguous = []
    for table, column, candidates in columns:
        tinfo, cinfo = tables[table], tables[table]["columns"][column]
        if candidates:
            total, checked = next(answers)
            fits = []
            for ref_table, key, named in candidates:
                if (ref_table, key, named) not in checked:
                    continue
                orphans = checked[(ref_table, key, named)]
                containment = _share(total, orphans)
                if containment < FK_MIN_CONTAINMENT:
                    continue
                if named is None and total > tables[ref_table]["columns"][key]["distinct"]:
                    continue
                unique = total == tinfo["row_count"] and cinfo["nulls"] == 0
                evidence = [f"{containment:.1%} of its {total:,} distinct values are {ref_table}.{key}",
                            f"both {cinfo['observed_type']}",
                            "one row per value (one-to-one)" if unique else
                            f"{tinfo['row_count'] / max(total, 1):.1f} rows per value (many-to-one)"]
                if named:
                    evidence.insert(0, f"the name {named}")
                fits.append({"table": table, "column": column, "ref_table": ref_table, "ref_column": key,
                             "by": ["name", "values"] if named else ["values"], "evidence": evidence,
                             "containment": containment, "orphan_values": orphans})
            named = [f for f in fits if "name" in f["by"]]
            if len(named) == 1 or (len(fits) == 1 and not named):
                result.append((named or fits)[0])
            elif fits:
                ambiguous.append({"table": table, "column": column,
                                  "candidates": [f"{f['ref_table']}.{f['ref_column']}" for f in fits]})
    result.sort(key=lambda fk: (fk["table"], fk["column"]))
    return result, ambiguous


class _Workers:
    """A thread pool whose threads each own one of ``adapters`` (opened, used and closed in that thread: no database
    connection is shared between threads) and run jobs in a copy of the submitter's context (the worker's query
    timeout, a ContextVar, holds in them). Use as a context manager: every thread's adapter is closed on the way
    out, errors or not."""

    def __init__(self, adapters: Sequence[Adapter]):
        self._adapters = list(adapters)
        self._threads = len(self._adapters)
        self._local = threading.local()
        self._pool = ThreadPoolExecutor(max_workers=self._threads, thread_name_prefix="profile")

    def __enter__(self) -> _Workers:
        try:
            self._on_each_thread(self._take)
        except BaseException:
            self._pool.shutdown()
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        try:
            self._on_each_thread(self._close)
        finally:
            self._pool.shutdown()

    def _take(self, index: int) -> None:
        self._local.adapter = self._adapters[index]

    def _close(self, index: int) -> None:
        adapter = getattr(self._local, "adapter", None)
        if adapter is not None:
            adapter.close()

    def _on_each_thread(self, step: Callable[[int], None]) -> None:
        """Run ``step`` once on each of the pool's threads (with the thread's number). Each call waits at a barrier
        for all the others to have started, so no thread takes two: the pool starts every one of its threads on the
        first call (none is idle), and they stay until it shuts down."""
        barrier = threading.Barrier(self._threads)

        def once() -> None:
            step(barrier.wait())

        futures: list[Future[None]] = []
        try:
            for _ in range(self._threads):
                futures.append(self._pool.submit(once))
        except BaseException:
            barrier.abort()  # a thread that cannot start leaves the others waiting for it
            raise
        finally:
            wait(futures)
        for future in futures:
            future.result()

    def _call(self, job: Job[T]) -> T:
        adapter: Adapter = self._local.adapter
        adapter.connect()
        return job(adapter)

    def run(self, jobs: Sequence[Job[T]], *, cancelled: Callable[[], bool] | None = None,
            before: Callable[[int], None] | None = None) -> list[T]:
        """The jobs' results in order, at most one job per thread at a time. A job that fails stops the submitting
        and, once the running jobs are done, its error is raised (the first in order when several fail), as one
        after the other would have; ``cancelled`` is asked before each job is submitted (InterruptedError)."""
        futures: list[Future[T]] = []
        stop = False
        for index, job in enumerate(jobs):
            running = {f for f in futures if not f.done()}
            if len(running) >= self._threads:
                wait(running, return_when=FIRST_COMPLETED)
            if any(f.done() and f.exception() is not None for f in futures):
                break
            if cancelled and cancelled():
                stop = True
                break
            if before:
                before(index)
            futures.append(self._pool.submit(contextvars.copy_context().run, self._call, job))
        wait(futures)
        for future in futures:
            if future.exception() is not None:
                raise future.exception()  # type: ignore[misc]
        if stop:
            raise InterruptedError("cancelled")
        return [f.result() for f in futures]


def _sequential(adapter: Adapter, jobs: Sequence[Job[T]], *, cancelled: Callable[[], bool] | None = None,
                before: Callable[[int], None] | None = None) -> list[T]:
    results = []
    for index, job in enumerate(jobs):
        if cancelled and cancelled():
            raise InterruptedError("cancelled")
        if before:
            before(index)
        results.append(job(adapter))
    return results


def profile_source(adapter: Adapter, *, tables: list[str] | None = None,
                   progress: Callable[[str], None] | None = None,
                   cancelled: Callable[[], bool] | None = None,
                   relationships: list[dict[str, str]] | None = None,
                   sample_above: int = SAMPLE_ABOVE_ROWS, sample_rows: int = SAMPLE_SIZE_ROWS,
                   threads: int = 1, open_adapter: Callable[[], Adapter] | None = None) -> dict[str, Any]:
    """Profile the given (default: all allowed) tables of the adapter's connection; ``relationships`` are the
    foreign keys the spec file declares; tables above ``sample_above`` rows are partly profiled on a sample of about
    ``sample_rows`` rows (``profile_table``).

    With ``threads`` above 1 and ``open_adapter`` (a new, unopened adapter on the same connection and guard, built in
    the calling thread), up to ``threads`` tables, then foreign-key containment queries, run at once, each thread on
    its own adapter; the profile is the same as one after the other. Engines in SEQUENTIAL_ENGINES stay on one."""
    infos = adapter.introspect(tables)
    threads = max(1, min(threads, len(infos) or 1))
    parallel = threads > 1 and open_adapter is not None and adapter.engine not in SEQUENTIAL_ENGINES

    def announce(index: int) -> None:
        if progress:
            info = infos[index]
            progress(f"profiling {info.name} ({info.row_count} rows, {len(info.columns)} columns)")

    table_jobs: list[Job[dict[str, Any]]] = [
        partial(profile_table, table=info, sample_above=sample_above, sample_rows=sample_rows) for info in infos]
    if parallel:
        assert open_adapter is not None  # noqa: S101 - narrowed above
        with _Workers([open_adapter() for _ in range(threads)]) as workers:
            profiles = workers.run(table_jobs, cancelled=cancelled, before=announce)
            profile_tables = {info.name: p for info, p in zip(infos, profiles, strict=True)}
            foreign_keys, ambiguous = infer_foreign_keys(adapter, profile_tables, relationships, run=workers.run)
    else:
        profiles = _sequential(adapter, table_jobs, cancelled=cancelled, before=announce)
        profile_tables = {info.name: p for info, p in zip(infos, profiles, strict=True)}
        foreign_keys, ambiguous = infer_foreign_keys(adapter, profile_tables, relationships)
    return {
        "connection": adapter.connection.name,
        "engine": adapter.engine,
        "dialect": adapter.dialect,
        "generated_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "tables": profile_tables,
        "foreign_keys": foreign_keys,
        "ambiguous_foreign_keys": ambiguous,
    }


def _key_verdict(distinct: int, rows: int, declared: bool) -> str:
    if declared:
        return "a key, kept unique by the database"
    return "a key" if distinct == rows else f"not a key: {distinct:,} distinct values"


def profile_markdown(profile: dict[str, Any]) -> str:
    """A readable report of a profile."""
    lines = [f"# Source profile: {profile['connection']} ({profile['engine']})", "",
             f"Generated {profile['generated_at']}.", ""]
    for table, info in profile["tables"].items():
        keys = ", ".join(info["candidate_keys"]) or "none"
        lines += [f"## {table}", "", f"{info['row_count']:,} rows; candidate keys: {keys}.", ""]
        if info.get("sampling"):
            sample = info["sampling"]
            lines += [f"Sampled: distinct counts and frequent values come from {sample['rows']:,} of the "
                      f"{info['row_count']:,} rows ({sample['method']}); row and null counts, min and max are "
                      "exact.", ""]
            checked = sample.get("keys_checked", {})
            if checked:
                declared = set(sample.get("keys_declared_unique", []))
                verdicts = [f"{name} ({_key_verdict(n, info['row_count'], name in declared)})"
                            for name, n in checked.items()]
                lines += ["Columns unique in the sample, counted over the full table unless the database keeps them "
                          "unique: " + ", ".join(verdicts) + ".", ""]
        lines += ["| column | declared | observed | nulls | distinct | min | max | samples |",
                  "|---|---|---|---:|---:|---|---|---|"]
        for name, c in info["columns"].items():
            samples = ", ".join(str(s) for s in c["samples"][:3])
            lines.append(f"| {name} | {c['declared_type'] or '-'} | {c['observed_type']} | {c['nulls']:,} | "
                         f"{c['distinct']:,} | {c['min']} | {c['max']} | {samples} |")
        lines.append("")
    lines += ["## Inferred foreign keys", ""]
    if not profile["foreign_keys"]:
        lines.append("None found.")
    for fk in profile["foreign_keys"]:
        lines.append(f"- {fk['table']}.{fk['column']} → {fk['ref_table']}.{fk['ref_column']} "
                     f"(by {' and '.join(fk['by'])}; {fk['containment']:.2%} of values found, "
                     f"{fk['orphan_values']} orphan values): " + "; ".join(fk.get("evidence", [])))
    for item in profile.get("ambiguous_foreign_keys", []):
        lines.append(f"- {item['table']}.{item['column']}: its values fit {', '.join(item['candidates'])}, and "
                     "nothing tells which: asked, not guessed")
    return "\n".join(lines) + "\n"
