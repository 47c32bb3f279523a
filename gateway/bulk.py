"""Many rows in one statement, through the driver's executemany.

SQLAlchemy's Core executemany builds a parameter dictionary per row and runs each value
through the column type's processor inside its generic machinery; for the few tables every
publish and every question writes (log entries, ledger changes, enterprises, tree nodes,
deliveries, access records) that per-row work cost more than the database's own
(`bench/profile_publish.py`). Here the statement text is built once per dialect from the
table, each row becomes a tuple, and only the columns whose type has a bind processor on that
dialect go through it: the very processors SQLAlchemy would apply, so the stored values are
the same. The engine's `before_cursor_execute` listeners still see every row
(`gateway.db._refuse_unstorable_parameters`).

On PostgreSQL an insert is one statement whatever the number of rows: the values travel as one
array per column and `unnest` turns them back into rows. psycopg's executemany sent and
answered each row as a statement of its own, and its per-row work in Python cost a group of
single publishes more than SQLite's whole insert (bench/pg_parity.py, issue 24 §4); an update
joins its rows the same way.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Mapping, Sequence
from operator import itemgetter
from typing import Any

from sqlalchemy import Connection, Table, TypeDecorator
from sqlalchemy.engine import Dialect

Processor = Callable[[Any], Any]


class _Plan:
    """One dialect's statement text, and how a row mapping becomes its parameter tuple."""

    __slots__ = ("convert", "get", "sql")

    def __init__(self, sql: str, table: Table, keys: Sequence[str], dialect: Dialect) -> None:
        self.sql = sql
        self.get: Callable[[Mapping[str, Any]], tuple[Any, ...]] = _getter(keys)
        # (position, processor, whether its results are remembered within one call)
        self.convert: list[tuple[int, Processor, bool]] = []
        for position, key in enumerate(keys):
            column_type = table.c[key].type
            processor = column_type.dialect_impl(dialect).bind_processor(dialect)
            if processor is not None:
                self.convert.append((position, processor, _temporal(column_type)))

    def parameters(self, rows: Sequence[Mapping[str, Any]]) -> list[tuple[Any, ...]]:
        """Each row's values, converted. A date or time that is the very same object in
        several rows (a batch's acceptance time in every row) is converted once: by identity,
        since equal instants in different offsets may be stored differently."""
        get, convert = self.get, self.convert
        if not convert:
            return [get(row) for row in rows]
        memos: list[dict[int, Any] | None] = [{} if temporal else None for *_, temporal in convert]
        plan = [(p, f, m) for (p, f, _), m in zip(convert, memos, strict=True)]
        out: list[tuple[Any, ...]] = []
        for row in rows:
            values = list(get(row))
            for position, processor, memo in plan:
                value = values[position]
                if memo is None:
                    values[position] = processor(value)
                    continue
                done = memo.get(id(value), _MISSING)
                if done is _MISSING:
                    done = memo[id(value)] = processor(value)
                values[position] = done
            out.append(tuple(values))
        return out

    def columns(self, rows: Sequence[Mapping[str, Any]]) -> tuple[list[Any], ...]:
        """The converted values as one list per column (psycopg sends a list as an array; a
        tuple would be a record)."""
        return tuple(list(column) for column in zip(*self.parameters(rows), strict=True))


_MISSING = object()


def _temporal(column_type: Any) -> bool:
    if isinstance(column_type, TypeDecorator):
        column_type = column_type.impl_instance
    try:
        return column_type.python_type in (dt.datetime, dt.date)
    except NotImplementedError:
        return False


def _getter(keys: Sequence[str]) -> Callable[[Mapping[str, Any]], tuple[Any, ...]]:
    if len(keys) == 1:
        (key,) = keys
        return lambda row: (row[key],)
    return itemgetter(*keys)


def _marker(dialect: Dialect) -> str:
    if dialect.paramstyle == "qmark":
        return "?"
    if dialect.paramstyle in ("format", "pyformat"):
        return "%s"
    raise NotImplementedError(f"paramstyle {dialect.paramstyle}")  # neither of ours


class _Bulk:
    """A statement run for many rows, its text and conversions worked out once per dialect and
    set of columns (the keys of the first row: every row must hold the same keys, as
    SQLAlchemy's executemany requires)."""

    def __init__(self, table: Table) -> None:
        self._table = table
        self._plans: dict[tuple[str, tuple[str, ...]], _Plan] = {}

    def __call__(self, connection: Connection, rows: Sequence[Mapping[str, Any]]) -> None:
        if not rows:
            return
        dialect = connection.dialect
        plan = self.plan(dialect, rows)
        if dialect.name == "postgresql":
            connection.exec_driver_sql(plan.sql, plan.columns(rows))
        else:
            connection.exec_driver_sql(plan.sql, plan.parameters(rows))

    def plan(self, dialect: Dialect, rows: Sequence[Mapping[str, Any]]) -> _Plan:
        """The statement for `rows` (not empty) on `dialect`."""
        keys = tuple(rows[0])
        plan = self._plans.get((dialect.name, keys))
        if plan is None:
            plan = self._plans[(dialect.name, keys)] = self._plan(dialect, keys)
        return plan

    def _plan(self, dialect: Dialect, keys: tuple[str, ...]) -> _Plan:
        raise NotImplementedError

    def _arrays(self, dialect: Dialect, keys: Sequence[str]) -> str:
        """`unnest(CAST(%b AS type[]), …)`: the columns `keys` as rows, in the arrays' order
        (a function scan: the rows come out in the order they were given). `%b`: psycopg
        sends the arrays in binary; its text form escapes every element in Python, which
        cost 3 to 6 times as much as the binary form and more than executemany."""
        casts = ", ".join(
            f"CAST(%b AS {self._table.c[key].type.compile(dialect)}[])" for key in keys
        )
        return f"unnest({casts})"


class BulkInsert(_Bulk):
    """`INSERT INTO table (the row's columns) VALUES …` for every row (on PostgreSQL, once:
    `… SELECT * FROM unnest(…)`), followed by `on_conflict` when given: an `ON CONFLICT …`
    clause both databases read alike (SQLite's upsert; no two rows may then hold the same
    conflicting key, which PostgreSQL refuses within one statement)."""

    def __init__(self, table: Table, on_conflict: str = "") -> None:
        super().__init__(table)
        self._on_conflict = on_conflict

    def _plan(self, dialect: Dialect, keys: tuple[str, ...]) -> _Plan:
        quote = dialect.identifier_preparer
        columns = ", ".join(quote.format_column(self._table.c[key]) for key in keys)
        if dialect.name == "postgresql":
            rows = f"SELECT * FROM {self._arrays(dialect, keys)}"
        else:
            rows = f"VALUES ({', '.join([_marker(dialect)] * len(keys))})"
        sql = f"INSERT INTO {quote.format_table(self._table)} ({columns}) {rows}"
        if self._on_conflict:
            sql = f"{sql} {self._on_conflict}"
        return _Plan(sql, self._table, keys, dialect)


class BulkUpdate(_Bulk):
    """`UPDATE table SET (every other column of the row) WHERE key = row[key]` for every row (on
    PostgreSQL, once: `… FROM unnest(…) AS v WHERE key = v.key`); no two rows may hold the
    same key."""

    def __init__(self, table: Table, key: str) -> None:
        super().__init__(table)
        self._key = key

    def _plan(self, dialect: Dialect, keys: tuple[str, ...]) -> _Plan:
        quote, mark = dialect.identifier_preparer, _marker(dialect)
        others = [k for k in keys if k != self._key]
        table, key = quote.format_table(self._table), quote.format_column(self._table.c[self._key])
        if dialect.name == "postgresql":
            names = [quote.quote(f"v_{k}") for k in (*others, self._key)]
            assignments = ", ".join(
                f"{quote.format_column(self._table.c[k])} = v.{name}"
                for k, name in zip(others, names, strict=False)
            )
            sql = (
                f"UPDATE {table} SET {assignments} "
                f"FROM {self._arrays(dialect, (*others, self._key))} AS v({', '.join(names)}) "
                f"WHERE {table}.{key} = v.{names[-1]}"
            )
            return _Plan(sql, self._table, (*others, self._key), dialect)
        assignments = ", ".join(f"{quote.format_column(self._table.c[k])} = {mark}" for k in others)
        sql = f"UPDATE {table} SET {assignments} WHERE {key} = {mark}"
        return _Plan(sql, self._table, (*others, self._key), dialect)


class Writes:
    """Bulk writes of one transaction, sent together.

    On PostgreSQL they wait for `send()` and go as one statement: each write a data-modifying
    CTE (`WITH w0 AS (INSERT …), w1 AS (UPDATE …) …`), all of which PostgreSQL runs, in one
    round trip where each had cost one (a single publish's writes took four, bench/pg_parity.py,
    issue 24 §4). The parts run on one snapshot: none may read what another writes, and no two
    may write the same row; foreign keys are checked at the statement's end. A `notify` is sent
    as `pg_notify` in the same statement, delivered at commit as `NOTIFY` is. On SQLite, which
    has no round trips to save, each write runs at once and `send()` has nothing left to do.
    """

    def __init__(self, connection: Connection) -> None:
        self.connection = connection
        self.combined = connection.dialect.name == "postgresql"
        self._parts: list[str] = []
        self._parameters: list[Any] = []
        self._notify: str | None = None

    def add(self, bulk: _Bulk, rows: Sequence[Mapping[str, Any]]) -> None:
        if not rows:
            return
        if not self.combined:
            bulk(self.connection, rows)
            return
        plan = bulk.plan(self.connection.dialect, rows)
        self._parts.append(plan.sql)
        self._parameters.extend(plan.columns(rows))

    def add_statement(self, sql: str, parameters: Sequence[Any]) -> None:
        """A data-modifying statement in the driver's format (PostgreSQL only)."""
        if not self.combined:
            raise RuntimeError("Writes.add_statement is for PostgreSQL")
        self._parts.append(sql)
        self._parameters.extend(parameters)

    def notify(self, channel: str) -> None:
        """Notify `channel`'s listeners when the transaction commits (PostgreSQL; nothing on
        SQLite, which has no notifications)."""
        if not channel.replace("_", "").isalnum():
            raise ValueError(f"not a channel name: {channel!r}")
        self._notify = channel

    def send(self) -> None:
        if not self.combined:
            return
        parts, parameters, notify = self._parts, self._parameters, self._notify
        self._parts, self._parameters, self._notify = [], [], None
        if notify is not None:
            parts = [*parts, f"SELECT pg_notify('{notify}', '')"]
        if not parts:
            return
        *ctes, main = parts
        if ctes:
            main = f"WITH {', '.join(f'w{n} AS ({cte})' for n, cte in enumerate(ctes))} {main}"
        self.connection.exec_driver_sql(main, tuple(parameters)).close()
