"""The Alembic migrations build exactly the schema the models describe, on both databases."""

from __future__ import annotations

import pytest
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext

from gateway.db import make_engine
from gateway.migrate import alembic_config, current_revision, upgrade
from gateway.models import Base


def test_migrated_schema_matches_the_models(database_url: str) -> None:
    upgrade(database_url)  # idempotent on an up-to-date database
    engine = make_engine(database_url, pool_size=1)
    try:
        with engine.connect() as conn:
            diff = compare_metadata(MigrationContext.configure(conn), Base.metadata)
    finally:
        engine.dispose()
    assert diff == [], diff
    assert current_revision(database_url) == "0022"


def test_narrowing_the_grade_numbers_again_refuses_to_lose_any(database_url: str) -> None:
    """Migration 0013's downgrade: a number longer than the old 64 characters stops it with a
    sentence saying why (PostgreSQL would refuse the ALTER, SQLite keep the long value)."""
    upgrade(database_url)
    engine = make_engine(database_url, pool_size=1)
    try:
        with engine.begin() as conn:
            conn.exec_driver_sql(
                "INSERT INTO enterprises (uscc, name, region_code, industry_section, scheme,"
                " required, ledger_status, registered_on, grade_status, certificate_no,"
                " updated_at, last_index) VALUES ('91350900587527783P', 'x', '350900', 'C',"
                " 'hazardous_chemicals', true, '新增', '2023-05-04', 'none', '"
                + "A" * 100
                + "', '2026-11-01 08:00:00+00:00', 0)"
            )
    finally:
        engine.dispose()
    with pytest.raises(RuntimeError, match="longer than 64 characters"):
        command.downgrade(alembic_config(database_url), "0012")


def test_a_gateway_holding_data_is_migrated_down_and_up_again(database_url: str) -> None:
    """An enterprise other rows refer to: on SQLite, migrations that rebuild a table (0013,
    batch mode) failed on the foreign keys, so an existing gateway could not be upgraded."""
    command.downgrade(alembic_config(database_url), "0012")
    engine = make_engine(database_url, pool_size=1)
    try:
        with engine.begin() as conn:
            conn.exec_driver_sql(
                "INSERT INTO enterprises (uscc, name, region_code, industry_section, scheme,"
                " required, ledger_status, registered_on, grade_status, certificate_no,"
                " updated_at, last_index) VALUES ('91350900587527783P', '宁德某化工', '350900',"
                " 'C', 'hazardous_chemicals', true, '达标', '2023-05-04', 'active', 'FJ-2023-1',"
                " '2026-11-01 08:00:00+00:00', 3)"
            )
            conn.exec_driver_sql(
                "INSERT INTO ledger_changes (uscc, ledger, change, from_status, to_status,"
                " actor, at, message_id, log_index, reason) VALUES ('91350900587527783P',"
                " 'achieved', 'entered', '新增', '达标', 'fj-yjt', '2026-11-01 08:00:00+00:00',"
                " '6ba7b810-9dad-11d1-80b4-00c04fd430c8', 3, 'grade.awarded')"
            )
        upgrade(database_url)
        assert current_revision(database_url) == "0022"
        command.downgrade(alembic_config(database_url), "0012")
        upgrade(database_url)
        with engine.connect() as conn:
            rows = conn.exec_driver_sql(
                "SELECT e.name, e.certificate_no, c.reason FROM enterprises e"
                " JOIN ledger_changes c ON c.uscc = e.uscc"
            ).all()
            assert [tuple(r) for r in rows] == [("宁德某化工", "FJ-2023-1", "grade.awarded")]
            if conn.dialect.name == "sqlite":  # enforced again on the migrating connection
                assert conn.exec_driver_sql("PRAGMA foreign_keys").scalar() == 1
    finally:
        engine.dispose()


def test_0019_counts_the_last_hours_attempts_into_hourly_rows(database_url: str) -> None:
    """An upgraded gateway shows the same 24-hour health as before: migration 0019 counts the
    attempts of the last 25 hours (not older ones, nor an operator's replay) per hour."""
    import datetime as dt

    command.downgrade(alembic_config(database_url), "0018")
    now = dt.datetime.now(dt.UTC).replace(microsecond=0)
    # the three recent attempts fall in one hour whatever the time of day (from :57 on,
    # "two hours ago" plus two minutes would cross into the next hour's row)
    recent = now.replace(minute=10, second=0) - dt.timedelta(hours=2)
    older = now - dt.timedelta(hours=30)

    def stamp(at: dt.datetime) -> str:
        return at.isoformat(sep=" ")

    engine = make_engine(database_url, pool_size=1)
    try:
        with engine.begin() as conn:
            conn.exec_driver_sql(
                "INSERT INTO agencies (id, name, uscc, roles, created_at) VALUES ('fj-picc',"
                f" 'x', '11350000MB0000035C', '[\"insurer\"]', '{stamp(now)}')"
            )
            conn.exec_driver_sql(
                "INSERT INTO subscriptions (id, agency_id, types, view, signing, status,"
                " retry_schedule, created_at, consecutive_failures, queued, acked_index)"
                " VALUES ('s-1', 'fj-picc', '[]', 'full', '[\"v1a\"]', 'active', '[]',"
                f" '{stamp(now)}', 0, 1, -1)"
            )
            conn.exec_driver_sql(
                "INSERT INTO deliveries (id, subscription_id, log_index, message_id, uscc,"
                " subseq, status, attempts, next_attempt_at) VALUES (1, 's-1', 0, 'm-1',"
                f" '91350900587527783P', 1, 'delivered', 3, '{stamp(now)}')"
            )
            for at, code, error in (
                (older, 500, "http_500"),  # outside any window
                (recent, 503, "http_503"),
                (recent + dt.timedelta(minutes=1), 204, None),
                (recent + dt.timedelta(minutes=2), None, "replay"),  # an operator, not a POST
            ):
                conn.exec_driver_sql(
                    "INSERT INTO delivery_attempts (delivery_id, at, status_code, latency_ms,"
                    f" error_class) VALUES (1, '{stamp(at)}', {code or 'NULL'}, 10,"
                    f" {repr(error) if error else 'NULL'})"
                )
        upgrade(database_url)
        with engine.connect() as conn:
            rows = conn.exec_driver_sql(
                "SELECT attempts, succeeded, latency_ms_sum, last_error FROM delivery_hours"
            ).all()
        assert [tuple(r) for r in rows] == [(2, 1, 20.0, "http_503")]
    finally:
        engine.dispose()


def test_0021_fills_the_queue_heads_of_what_is_queued(database_url: str) -> None:
    """An upgraded gateway's claim finds every queue already waiting: per (subscription,
    enterprise) its earliest pending, dead or parked delivery, due unless it is stuck."""
    import datetime as dt

    command.downgrade(alembic_config(database_url), "0020")
    now = dt.datetime(2026, 12, 7, 8, 0, tzinfo=dt.UTC)
    a, b, c = "91350900587527783P", "91350100MA2XY0129P", "91350100MA2XY0567C"
    engine = make_engine(database_url, pool_size=1)
    try:
        with engine.begin() as conn:
            conn.exec_driver_sql(
                "INSERT INTO agencies (id, name, uscc, roles, created_at) VALUES ('fj-picc',"
                f" 'x', '11350000MB0000035C', '[\"insurer\"]', '{now.isoformat(sep=' ')}')"
            )
            for sub, url in (("s-1", "'https://r.example/hook'"), ("s-2", "NULL")):
                conn.exec_driver_sql(
                    "INSERT INTO subscriptions (id, agency_id, url, types, view, signing, status,"
                    " retry_schedule, created_at, consecutive_failures, queued, acked_index)"
                    f" VALUES ('{sub}', 'fj-picc', {url}, '[]', 'full', '[\"v1a\"]', 'active',"
                    f" '[]', '{now.isoformat(sep=' ')}', 0, 1, -1)"
                )
            rows = [  # (subscription, log index, enterprise, status, minutes from now)
                ("s-1", 1, a, "delivered", 0),
                ("s-1", 2, a, "pending", 5),
                ("s-1", 3, a, "pending", 0),
                ("s-1", 4, b, "dead", 0),
                ("s-1", 5, b, "pending", 0),
                ("s-1", 6, c, "skipped", 0),
                ("s-2", 2, a, "pending", 0),  # pull-only: never due
            ]
            for n, (sub, index, uscc, status, minutes) in enumerate(rows, 1):
                at = (now + dt.timedelta(minutes=minutes)).isoformat(sep=" ")
                conn.exec_driver_sql(
                    "INSERT INTO deliveries (id, subscription_id, log_index, message_id, uscc,"
                    f" subseq, status, attempts, next_attempt_at) VALUES ({n}, '{sub}', {index},"
                    f" 'm-{index}', '{uscc}', {index}, '{status}', 0, '{at}')"
                )
        upgrade(database_url)
        with engine.connect() as conn:
            heads = conn.exec_driver_sql(
                "SELECT subscription_id, uscc, log_index, due_at FROM delivery_heads"
                " ORDER BY subscription_id, uscc"
            ).all()
    finally:
        engine.dispose()

    def moment(value: object) -> dt.datetime | None:
        if isinstance(value, str):  # SQLite hands back text
            value = dt.datetime.fromisoformat(value)
        assert value is None or isinstance(value, dt.datetime)
        return value.astimezone(dt.UTC) if value else None

    assert [(s, u, i, moment(due)) for s, u, i, due in heads] == [
        ("s-1", b, 4, None),
        ("s-1", a, 2, now + dt.timedelta(minutes=5)),
        ("s-2", a, 2, None),
    ]


def test_0022_leaves_room_on_the_deliveries_pages_on_postgresql(database_url: str) -> None:
    """The claim's lease is an update no index sees; with room on the page PostgreSQL keeps it
    there (heap-only). Downgrading takes the setting away again; SQLite has none."""
    engine = make_engine(database_url, pool_size=1)

    def options() -> list[str]:
        with engine.connect() as conn:
            found = conn.exec_driver_sql(
                "SELECT reloptions FROM pg_class WHERE relname = 'deliveries'"
            ).scalar_one()
        return list(found or [])

    try:
        upgrade(database_url)
        if engine.dialect.name != "postgresql":
            command.downgrade(alembic_config(database_url), "0021")  # runs, changes nothing
            upgrade(database_url)
            assert current_revision(database_url) == "0022"
            return
        assert options() == ["fillfactor=70"]
        command.downgrade(alembic_config(database_url), "0021")
        assert options() == []
        upgrade(database_url)
        assert options() == ["fillfactor=70"]
    finally:
        engine.dispose()
