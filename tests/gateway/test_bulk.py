"""gateway.bulk: rows written through the driver's executemany are stored exactly as
SQLAlchemy's own INSERT and UPDATE store them, on both databases."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from typing import Any

import pytest
from sqlalchemy import Engine, event, insert, select, update
from sqlalchemy.exc import IntegrityError

from gateway import models
from gateway.bulk import BulkInsert, BulkUpdate, Writes
from gateway.db import make_engine
from gateway.errors import BadRequest

AT = dt.datetime(2026, 11, 29, 13, 2, 32, 123456, tzinfo=dt.UTC)
ENTERPRISES: Any = models.Enterprise.__table__
RECTIFICATIONS: Any = models.Rectification.__table__
ENTRIES: Any = models.LogEntry.__table__


@pytest.fixture
def engine(database_url: str) -> Iterator[Engine]:
    made = make_engine(database_url)
    yield made
    made.dispose()


def _enterprise(uscc: str, **changes: Any) -> dict[str, Any]:
    row = {column.key: None for column in ENTERPRISES.columns}
    row.update(
        uscc=uscc,
        name="宁德化工有限公司",
        region_code="350902",
        industry_section="C",
        scheme="hazardous_chemicals",
        required=True,
        ledger_status="达标",
        registered_on=dt.date(2020, 3, 1),
        grade_status="active",
        grade_level="2",
        grade_valid_to=dt.date(2028, 3, 1),
        self_assessment_year=2025,
        updated_at=AT,
        last_index=41,
    )
    row.update(changes)
    return row


def _raw(
    engine: Engine, table: str, key: str, values: tuple[Any, Any], differ: tuple[str, ...] = ()
) -> list[dict[str, Any]]:
    """The rows of the two keys as the database holds them (no SQLAlchemy types on the way
    back), without the key and the `differ` columns."""
    with engine.connect() as connection:
        result = connection.exec_driver_sql(f"SELECT * FROM {table}")
        rows = [dict(zip(result.keys(), row, strict=True)) for row in result]
    by_key = {row[key]: row for row in rows}
    return [
        {k: v for k, v in by_key[value].items() if k != key and k not in differ} for value in values
    ]


def test_insert_stores_what_sqlalchemy_stores(engine: Engine) -> None:
    with engine.begin() as connection:
        connection.execute(insert(ENTERPRISES), [_enterprise("A" * 18)])
        BulkInsert(ENTERPRISES)(connection, [_enterprise("B" * 18)])
        order = {"kind": "hazard", "hazard_level": "major", "ordered_on": dt.date(2025, 2, 1)}
        order |= {"deadline": dt.date(2025, 3, 31), "status": "ordered", "message_id": "m"}
        order |= {"data": {"description": "液氯储罐区", "n": [1, 2.5, None]}}
        connection.execute(
            insert(RECTIFICATIONS), [{**order, "uscc": "A" * 18, "rectification_id": "1"}]
        )
        BulkInsert(RECTIFICATIONS)(
            connection, [{**order, "uscc": "B" * 18, "rectification_id": "2"}]
        )
        entry = {"kind": "message", "type": "grade.awarded", "issuer": "fj.yjt"}
        entry |= {"subject": None, "issued_at": AT, "accepted_at": AT, "jws": b"\x00\xffjws"}
        entry |= {"leaf_hash": bytes(range(32)), "receipt": "r"}
        connection.execute(insert(ENTRIES), [{**entry, "idx": 1, "message_id": "one"}])
        BulkInsert(ENTRIES)(connection, [{**entry, "idx": 2, "message_id": "two"}])
    ours, theirs = _raw(engine, "enterprises", "uscc", ("A" * 18, "B" * 18))
    assert ours == theirs
    ours, theirs = _raw(
        engine, "rectifications", "uscc", ("A" * 18, "B" * 18), ("rectification_id",)
    )
    assert ours == theirs
    ours, theirs = _raw(engine, "log_entries", "idx", (1, 2), ("message_id",))
    assert ours == theirs
    with engine.connect() as connection:
        stored = connection.execute(select(ENTRIES).where(ENTRIES.c.idx == 2)).one()
    assert (stored.jws, stored.leaf_hash, stored.accepted_at) == (
        b"\x00\xffjws",
        bytes(range(32)),
        AT,
    )


def test_update_stores_what_sqlalchemy_stores(engine: Engine) -> None:
    with engine.begin() as connection:
        BulkInsert(ENTERPRISES)(connection, [_enterprise(c * 18) for c in "ABC"])
    later = {"grade_status": "revoked", "grade_level": None, "required": False}
    later |= {"reapply_after": dt.date(2027, 1, 1), "updated_at": AT + dt.timedelta(days=1)}
    with engine.begin() as connection:
        connection.execute(
            update(ENTERPRISES).where(ENTERPRISES.c.uscc == "A" * 18).values(**later)
        )
        BulkUpdate(ENTERPRISES, "uscc")(connection, [_enterprise("B" * 18, **later)])
    ours, theirs = _raw(engine, "enterprises", "uscc", ("A" * 18, "B" * 18))
    assert ours == theirs
    untouched = _raw(engine, "enterprises", "uscc", ("C" * 18, "C" * 18))[0]
    assert untouched != ours


def test_many_rows_and_an_unstorable_one(engine: Engine) -> None:
    rows = [_enterprise(f"{n:018d}", last_index=n) for n in range(300)]
    with engine.begin() as connection:
        BulkInsert(ENTERPRISES)(connection, rows)
    with engine.connect() as connection:
        indexes = connection.execute(select(ENTERPRISES.c.last_index)).scalars().all()
    assert sorted(indexes) == list(range(300))
    with pytest.raises(BadRequest) as refused, engine.begin() as connection:
        BulkInsert(ENTERPRISES)(connection, [_enterprise("X" * 18, name="a\x00b")])
    assert refused.value.code == "invalid_text"
    with engine.connect() as connection:
        assert (
            connection.execute(select(ENTERPRISES).where(ENTERPRISES.c.uscc == "X" * 18)).first()
            is None
        )


def test_a_time_shared_by_many_rows_and_equal_instants_in_other_offsets(engine: Engine) -> None:
    """Conversions are remembered per object within a call: rows sharing one datetime get its
    value, and an equal instant written in another offset is converted on its own."""
    east = AT.astimezone(dt.timezone(dt.timedelta(hours=8)))
    entry = {"kind": "message", "type": "t", "issuer": "i", "subject": None, "jws": b"j"}
    entry |= {"leaf_hash": b"h", "receipt": "r"}
    rows = [
        {**entry, "idx": n, "message_id": f"m{n}", "issued_at": when, "accepted_at": AT}
        for n, when in enumerate([AT, east, AT + dt.timedelta(seconds=1), east])
    ]
    with engine.begin() as connection:
        BulkInsert(ENTRIES)(connection, rows)
        connection.execute(insert(ENTRIES), [{**rows[1], "idx": 9, "message_id": "sa"}])
    with engine.connect() as connection:
        stored = connection.execute(
            select(ENTRIES.c.idx, ENTRIES.c.issued_at, ENTRIES.c.accepted_at).order_by("idx")
        ).all()
    second = AT + dt.timedelta(seconds=1)
    assert [tuple(row) for row in stored] == [
        (0, AT, AT),
        (1, AT, AT),
        (2, second, AT),
        (3, AT, AT),
        (9, AT, AT),
    ]
    ours, theirs = _raw(engine, "log_entries", "idx", (1, 9), ("message_id",))
    assert ours == theirs


def test_an_unstorable_value_in_any_row_refuses_the_whole_insert(engine: Engine) -> None:
    """On PostgreSQL the rows travel as one array per column: the NUL and 64-bit checks look
    into the arrays, so a bad value in the last of many rows is refused like one alone."""
    for bad, code in ((dict(name="a\x00b"), "invalid_text"), (dict(last_index=2**63), None)):
        rows = [_enterprise(f"{n:018d}", last_index=n) for n in range(5)]
        rows.append(_enterprise("Y" * 18, **bad))
        with pytest.raises(BadRequest) as refused, engine.begin() as connection:
            BulkInsert(ENTERPRISES)(connection, rows)
        assert refused.value.code == (code or "number_out_of_range")
    with engine.connect() as connection:
        assert connection.execute(select(ENTERPRISES)).first() is None


def test_update_of_many_rows_changes_each_its_own(engine: Engine) -> None:
    with engine.begin() as connection:
        BulkInsert(ENTERPRISES)(connection, [_enterprise(f"{n:018d}") for n in range(50)])
        BulkUpdate(ENTERPRISES, "uscc")(
            connection, [_enterprise(f"{n:018d}", last_index=1000 + n) for n in range(0, 50, 2)]
        )
    with engine.connect() as connection:
        rows = connection.execute(select(ENTERPRISES.c.uscc, ENTERPRISES.c.last_index))
        stored = {uscc: index for uscc, index in rows}
    assert stored == {f"{n:018d}": 1000 + n if n % 2 == 0 else 41 for n in range(50)}


def test_insert_with_a_conflict_clause_updates_only_where_it_says(engine: Engine) -> None:
    """The clause follows the rows on both databases: a conflicting row updates the stored
    one where the clause's condition holds, is dropped where it does not, and a new key is
    inserted."""
    upsert = BulkInsert(
        ENTERPRISES,
        on_conflict="ON CONFLICT (uscc) DO UPDATE SET last_index = excluded.last_index"
        " WHERE enterprises.last_index < excluded.last_index",
    )
    with engine.begin() as connection:
        upsert(connection, [_enterprise(f"{n:018d}", last_index=10 * n) for n in range(4)])
        upsert(
            connection,
            [
                _enterprise(f"{0:018d}", last_index=5),  # later: taken
                _enterprise(f"{2:018d}", last_index=3),  # earlier: left as it was
                _enterprise(f"{9:018d}", last_index=7),  # new
            ],
        )
    with engine.connect() as connection:
        rows = connection.execute(select(ENTERPRISES.c.uscc, ENTERPRISES.c.last_index))
        stored = {uscc: index for uscc, index in rows}
    assert stored == {
        f"{0:018d}": 5,
        f"{1:018d}": 10,
        f"{2:018d}": 20,
        f"{3:018d}": 30,
        f"{9:018d}": 7,
    }


def test_writes_go_as_one_statement_on_postgresql_and_one_by_one_on_sqlite(
    engine: Engine,
) -> None:
    """Writes: on PostgreSQL nothing is sent before `send()`, then one statement does every
    part (an insert and an update of another table, and one of the same table's other rows);
    on SQLite each part runs as it is added."""
    sent: list[str] = []
    event.listen(engine, "before_cursor_execute", lambda *a: sent.append(a[2]))
    with engine.begin() as connection:
        BulkInsert(ENTERPRISES)(connection, [_enterprise(f"{n:018d}") for n in range(3)])
        sent.clear()
        writes = Writes(connection)
        writes.add(BulkInsert(ENTERPRISES), [_enterprise(f"{n:018d}") for n in range(3, 5)])
        writes.add(BulkUpdate(ENTERPRISES, "uscc"), [_enterprise(f"{0:018d}", last_index=99)])
        writes.add(BulkInsert(ENTERPRISES), [])  # nothing: no part
        postgresql = engine.dialect.name == "postgresql"
        assert len(sent) == (0 if postgresql else 2)
        writes.send()
        assert len(sent) == (1 if postgresql else 2)
        if postgresql:
            assert sent[0].startswith("WITH w0 AS (INSERT INTO enterprises")
        writes.send()  # sent already: nothing more
        assert len(sent) == (1 if postgresql else 2)
    with engine.connect() as connection:
        rows = connection.execute(select(ENTERPRISES.c.uscc, ENTERPRISES.c.last_index))
        stored = {uscc: index for uscc, index in rows}
    assert stored == {f"{n:018d}": 99 if n == 0 else 41 for n in range(5)}


def test_a_write_that_fails_fails_the_whole_statement(engine: Engine) -> None:
    """A part refused by the database (a duplicate key) refuses the others with it."""
    with engine.begin() as connection:
        BulkInsert(ENTERPRISES)(connection, [_enterprise(f"{0:018d}")])

    def both() -> None:
        with engine.begin() as connection:
            writes = Writes(connection)
            writes.add(BulkInsert(ENTERPRISES), [_enterprise(f"{1:018d}")])
            writes.add(BulkInsert(ENTERPRISES), [_enterprise(f"{0:018d}")])
            writes.send()

    with pytest.raises(IntegrityError):
        both()
    with engine.connect() as connection:
        assert connection.execute(select(ENTERPRISES.c.uscc)).scalars().all() == [f"{0:018d}"]
