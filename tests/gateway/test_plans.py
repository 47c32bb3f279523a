"""gateway.db: on PostgreSQL every execution of a statement is planned for its parameters and
the tables as they are. psycopg prepares a statement on its fifth execution, and PostgreSQL
would then settle on one generic plan, kept until the tables are analysed again: made on the
tables of a gateway's first seconds, such plans read every delivery once the tables had grown
(bench/e2e.py, issue 24). Here a statement run twenty times on a pooled connection is
prepared and never planned generically, and the session says why."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from sqlalchemy import Engine

from gateway.db import make_engine


@pytest.fixture
def engine(database_url: str) -> Iterator[Engine]:
    made = make_engine(database_url)
    yield made
    made.dispose()


def test_prepared_statements_are_planned_for_each_execution(engine: Engine) -> None:
    if engine.dialect.name != "postgresql":
        pytest.skip("SQLite plans each statement as it is prepared, with no plan cache to keep")
    statement = "SELECT count(*) FROM generate_series(1, 10) AS n WHERE n > %(low)s"
    with engine.connect() as connection:
        assert connection.exec_driver_sql("SHOW plan_cache_mode").scalar() == "force_custom_plan"
        for low in range(20):
            assert (
                connection.exec_driver_sql(statement, {"low": low % 10}).scalar() == 10 - low % 10
            )
        plans = connection.exec_driver_sql(
            "SELECT generic_plans, custom_plans FROM pg_prepared_statements"
            " WHERE statement LIKE 'SELECT count(*) FROM generate_series%%'"
        ).one()
    assert plans.generic_plans == 0
    assert plans.custom_plans >= 10  # prepared from the fifth execution on
