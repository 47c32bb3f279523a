"""Alembic environment: runs the gateway's migrations on the connection or URL it is given.

On SQLite a migration that alters a table rebuilds it (Alembic's batch mode: copy, drop the
old, rename), and with foreign keys enforced dropping a table that other rows refer to fails
(`FOREIGN KEY constraint failed`: an existing gateway could not be upgraded past 0013). As
SQLite's documentation prescribes for such changes, foreign keys are switched off around the
migration's transaction, `PRAGMA foreign_key_check` must find nothing wrong before it
commits, and they are switched on again.
"""

from __future__ import annotations

from typing import Any

from alembic import context
from sqlalchemy.engine import Connection

from gateway.db import make_engine
from gateway.models import Base

config = context.config
target_metadata = Base.metadata


def _migrate(connection: Connection) -> None:
    sqlite = connection.dialect.name == "sqlite" and not connection.in_transaction()
    if sqlite:  # a no-op inside a transaction: set on the driver's connection, before it
        _pragma(connection, "PRAGMA foreign_keys=OFF")
    try:
        context.configure(connection=connection, target_metadata=target_metadata)
        with context.begin_transaction():
            context.run_migrations()
            if sqlite:
                broken = connection.exec_driver_sql("PRAGMA foreign_key_check").fetchall()
                if broken:  # raising here rolls the migration back
                    raise RuntimeError(
                        f"the migrated database breaks {len(broken)} foreign keys, e.g. "
                        f"{tuple(broken[0])} (table, rowid, referred table, key): not migrated"
                    )
    finally:
        if sqlite:
            _pragma(connection, "PRAGMA foreign_keys=ON")


def _pragma(connection: Connection, statement: str) -> None:
    driver: Any = connection.connection.driver_connection
    driver.execute(statement)


def run_migrations_online() -> None:
    connection = config.attributes.get("connection")
    if connection is not None:
        _migrate(connection)
        return
    engine = make_engine(config.get_main_option("sqlalchemy.url") or "", pool_size=1)
    try:
        with engine.connect() as conn:
            _migrate(conn)
    finally:  # a migration that refuses (0013's downgrade) leaves no connection open
        engine.dispose()


if context.is_offline_mode():
    context.configure(url=config.get_main_option("sqlalchemy.url"), literal_binds=True)
    with context.begin_transaction():
        context.run_migrations()
else:
    run_migrations_online()
