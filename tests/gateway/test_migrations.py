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
    assert current_revision(database_url) == "0018"


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
        assert current_revision(database_url) == "0018"
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
