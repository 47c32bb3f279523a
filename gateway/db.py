"""Engine, sessions and write transactions for the embedded SQLite file and for PostgreSQL.

Publishing is serialised by the log head: on PostgreSQL a row lock (`SELECT … FOR UPDATE`),
on SQLite a process lock plus `BEGIN IMMEDIATE`, so a reader never upgrades into a deadlock.
A SQLite file removed or replaced under the running process refuses writes (DatabaseFileLost).
"""

from __future__ import annotations

import hashlib
import os
import select
import sqlite3
import threading
import weakref
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, create_engine, event, text
from sqlalchemy.exc import DisconnectionError, OperationalError
from sqlalchemy.orm import Session, sessionmaker

from gateway.errors import BadRequest
from gateway.settings import DatabaseSettings

INT64 = range(-(2**63), 2**63)
_SHARED: weakref.WeakKeyDictionary[Engine, dict[str, Any]] = weakref.WeakKeyDictionary()


def shared_state(engine: Engine) -> dict[str, Any]:
    """What the code reading a database keeps for it in the process (the log's node cache,
    gateway.transparency.tlog), one dict for all the engines of one `Database`: on SQLite the
    readers' and the writer's engines see the same file."""
    state = _SHARED.get(engine)
    if state is None:
        state = _SHARED.setdefault(engine, {})
    return state


def make_engine(
    url: str,
    *,
    pool_size: int = 10,
    max_overflow: int | None = None,
    pool_timeout: float = 30.0,
    immediate: bool = True,
) -> Engine:
    """An engine with the settings each backend needs (WAL and busy timeout on SQLite). The
    pool keeps `pool_size` connections and opens up to `max_overflow` more (default: as many
    again); a checkout that waits `pool_timeout` seconds raises sqlalchemy.exc.TimeoutError,
    which the API answers 503 `database_busy`."""
    pool = {
        "pool_size": pool_size,
        "max_overflow": pool_size if max_overflow is None else max_overflow,
        "pool_timeout": pool_timeout,
    }
    if url.startswith("sqlite"):
        path = url.split("///", 1)[-1]
        if path and path != ":memory:":
            Path(path).parent.mkdir(parents=True, exist_ok=True)
        engine = create_engine(
            url, connect_args={"check_same_thread": False, "timeout": 30}, **pool
        )
        _configure_sqlite(engine, immediate=immediate)
        _refuse_unstorable_parameters(engine)
        return engine
    if url.startswith("postgresql://"):
        url = "postgresql+psycopg://" + url.removeprefix("postgresql://")
    engine = create_engine(url, **pool)
    _plan_each_execution(engine)
    _check_pooled_connections(engine)
    _treat_broken_connections_as_disconnects(engine)
    _refuse_unstorable_parameters(engine)
    return engine


def _plan_each_execution(engine: Engine) -> None:
    """Each PostgreSQL connection plans every execution for its parameters and the tables as
    they are (`plan_cache_mode = force_custom_plan`). psycopg prepares a statement on its
    fifth execution, and PostgreSQL may then keep one generic plan for it until the tables
    are analysed again. A gateway's plans were made in its first seconds, on tables of a
    few rows, and a server that had not analysed them since (autovacuum off, or behind)
    kept them as the tables grew: in bench/e2e.py (200 publishes/s, 2 workers, a fresh
    database) a claim took 80 ms and a settle 140 ms on such plans, and deliveries fell to
    311/s of 800; forcing custom plans gave 797/s (bench/RESULTS.md, issue 24 §3 and §5).
    Parsing is still saved; planning runs each time, a few tens of µs for these statements.
    Set with the connection (one statement when the pool opens it), not as a startup option,
    which connection poolers refuse."""

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        with dbapi_connection.cursor() as cursor:
            cursor.execute("SET plan_cache_mode = force_custom_plan")
        dbapi_connection.commit()


def libpq_url(url: str) -> str:
    """The libpq form of a PostgreSQL URL (`postgresql://`, no SQLAlchemy driver), for a
    psycopg connection of its own."""
    scheme, _, rest = url.partition("://")
    if not scheme.startswith("postgresql"):
        raise ValueError(f"not a PostgreSQL URL: {scheme}://…")
    return f"postgresql://{rest}"


def _refuse_unstorable_parameters(engine: Engine) -> None:
    """Text with U+0000 (NUL) and integers beyond 64 bits are refused with a 400 before they
    reach the database, on both backends alike: PostgreSQL cannot store such text, neither
    database such a number, and the driver's DataError or OverflowError was a 500. Request
    values (ids, codes, purposes, cursors) reach queries in many places; this is the one
    place they all pass. A list is an array parameter (gateway.bulk's rows on PostgreSQL, a
    proof's node keys): its elements are checked alike."""

    @event.listens_for(engine, "before_cursor_execute")
    def _check(
        conn: Any, cursor: Any, statement: str, parameters: Any, context: Any, executemany: bool
    ) -> None:
        for row in parameters if executemany else (parameters,):
            _check_values(row.values() if isinstance(row, dict) else row or ())


def _check_values(values: Any) -> None:
    for value in values:
        if isinstance(value, str):
            if "\x00" in value:
                raise BadRequest("invalid_text", "text may not contain U+0000 (NUL)")
        elif isinstance(value, int):
            if value not in INT64:
                raise BadRequest(
                    "number_out_of_range", f"{value} is beyond the 64-bit integer range"
                )
        elif isinstance(value, list):
            _check_values(value)


def _check_pooled_connections(engine: Engine) -> None:
    """A pooled connection is checked on checkout without a round trip: an idle PostgreSQL
    connection has nothing to read, so a readable socket means the server closed it or said
    why it is about to (a restart, `pg_terminate_backend`, an idle timeout), and the pool
    replaces it before a request uses it. SQLAlchemy's `pool_pre_ping` did this with a
    `SELECT 1` per transaction, a round trip to the server for every group of publishes or
    questions. What the ping caught and this does not: a peer gone without closing the
    socket that answers a send with a reset (a failover to another host at the same
    address); there the request's first statement fails instead, a 503 the client retries.

    A connection just opened is not checked, as the pre-ping did not check it: the pool
    replaces a connection on checkout twice at most, and then fails with an error that is
    not the database's (a 500, not a 503) when the server kills new connections as fast."""

    @event.listens_for(engine, "connect")
    def _on_connect(_dbapi_connection: Any, record: Any) -> None:
        record.info["fresh"] = True  # the record's info is emptied with each new connection

    @event.listens_for(engine, "checkout")
    def _on_checkout(dbapi_connection: Any, record: Any, _proxy: Any) -> None:
        if record.info.pop("fresh", False):
            return
        if dbapi_connection.closed or dbapi_connection.broken:
            raise DisconnectionError("the connection is closed")
        if dbapi_connection.info.transaction_status.name != "IDLE":  # psycopg's enum
            # e.g. psycopg still believes a query of a killed backend is ACTIVE
            raise DisconnectionError("the connection came back in the middle of a statement")
        poll = select.poll()
        poll.register(dbapi_connection.fileno(), select.POLLIN)
        if poll.poll(0):
            raise DisconnectionError("the server closed the connection or is closing it")


def _treat_broken_connections_as_disconnects(engine: Engine) -> None:
    """A connection whose server backend was killed mid-statement can come back to the pool
    with psycopg still believing a query is ACTIVE (checkout replaces it, above); one still in
    use when that happens fails its next statement with a ProgrammingError that the dialect
    does not count as a disconnect, and the request got a 500 (seen in CI under
    pg_terminate_backend). Counting it as one makes the pool replace the connection, as it
    does for a closed socket."""

    @event.listens_for(engine, "handle_error")
    def _on_error(context: Any) -> None:
        if broken_connection(context.original_exception):
            context.is_disconnect = True


def broken_connection(error: BaseException) -> bool:
    """A driver error that leaves the connection unusable beyond what the dialect counts
    (above); for statements run on the driver's connection directly (the log's node reads)."""
    text = str(error)
    return "connection in transaction status ACTIVE" in text or "socket closed" in text


def _configure_sqlite(engine: Engine, *, immediate: bool) -> None:
    # pysqlite's own transaction handling would BEGIN DEFERRED lazily; take it over so that
    # every transaction is BEGIN IMMEDIATE (SQLAlchemy "Serializable isolation" recipe).
    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA synchronous=NORMAL")  # durable across process crashes in WAL
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute("PRAGMA busy_timeout=30000")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn: Any) -> None:
        conn.exec_driver_sql("BEGIN IMMEDIATE" if immediate else "BEGIN")


class DatabaseFileLost(OperationalError):
    """The SQLite file this process opened is no longer at its path: removed (`rm`), or
    replaced by another file. An OperationalError, so that it is the database being
    unavailable everywhere (a 503 `database_unavailable`, a delivery round retried)."""

    def __init__(self, path: str) -> None:
        self.path = path
        self.reason = (
            f"the database file {path} was removed or replaced while the gateway ran; writes "
            f"are refused until that very file is back (process {os.getpid()} still holds it "
            "open); a copy is another file, which only a restart takes"
        )
        super().__init__(None, None, sqlite3.OperationalError(self.reason))

    def __reduce__(self) -> Any:  # DBAPIError's would call __init__ with its own arguments
        return type(self), (self.path,)


class _SqliteFile:
    """The file a SQLite database lives in, as it was when first connected to (device and
    inode). SQLite keeps writing to a file unlinked under it, and opens a new empty one at the
    path: both lose what is written, silently. So after the first connection, a new one is
    opened only at the same file, and `check` (a stat, about a microsecond) tells whether it
    is still there."""

    def __init__(self, path: str) -> None:
        self.path = path
        self._identity: tuple[int, int] | None = None

    def watch(self, engine: Engine) -> None:
        event.listen(engine, "do_connect", self._before_connect)
        event.listen(engine, "connect", self._connected)

    def check(self) -> None:
        """Raise DatabaseFileLost unless the path still holds the file first connected to
        (nothing to compare before that)."""
        if self._identity is None:
            return
        try:
            found = os.stat(self.path)
        except OSError:
            raise DatabaseFileLost(self.path) from None
        if (found.st_dev, found.st_ino) != self._identity:
            raise DatabaseFileLost(self.path)

    def _before_connect(self, *_: Any) -> None:
        self.check()  # before sqlite3.connect, which would create an empty file at the path

    def _connected(self, *_: Any) -> None:
        if self._identity is None:
            found = os.stat(self.path)
            self._identity = (found.st_dev, found.st_ino)


def _file_of(engine: Engine) -> _SqliteFile | None:
    database = engine.url.database
    if engine.dialect.name != "sqlite" or not database or database == ":memory:":
        return None
    if database.startswith("file:"):  # a URI filename (`?uri=true`): not a plain path
        return None
    return _SqliteFile(os.path.abspath(database))


class Database:
    """Owns the engines and sessionmakers; lives in the app's lifespan, never at import time.

    Two pools: the API's (`pool_size` plus as many in overflow, used by requests, the
    publishing and query threads, the delivery worker) and a small one for streamed exports
    (`export_pool_size`, no overflow), so that however many exports run, and however slowly
    their clients read, they never take a connection the API needs."""

    def __init__(
        self,
        url: str,
        *,
        pool_size: int = 10,
        pool_timeout: float = 30.0,
        export_pool_size: int = 2,
        export_pool_timeout: float = 5.0,
        log_node_cache_mib: float = DatabaseSettings().log_node_cache_mib,
    ) -> None:
        self.url = url
        self.engine = make_engine(url, pool_size=pool_size, pool_timeout=pool_timeout)
        self.sessions = sessionmaker(self.engine, expire_on_commit=False)
        self.is_sqlite = self.engine.dialect.name == "sqlite"
        self._write_lock = threading.Lock()
        # WAL lets SQLite readers run beside the one writer: give them deferred transactions.
        self._read_engine = (
            make_engine(url, pool_size=pool_size, pool_timeout=pool_timeout, immediate=False)
            if self.is_sqlite
            else None
        )
        self._read_sessions = (
            sessionmaker(self._read_engine, expire_on_commit=False)
            if self._read_engine is not None
            else self.sessions
        )
        self.export_engine = make_engine(
            url,
            pool_size=export_pool_size,
            max_overflow=0,
            pool_timeout=export_pool_timeout,
            immediate=False,
        )
        self._export_sessions = sessionmaker(self.export_engine, expire_on_commit=False)
        state = {"log_node_cache_bytes": int(log_node_cache_mib * 2**20)}
        for engine in self._engines():
            _SHARED[engine] = state
        self.file = _file_of(self.engine)
        if self.file is not None:
            for engine in self._engines():
                self.file.watch(engine)

    def _engines(self) -> list[Engine]:
        engines = [self.engine, self.export_engine]
        return engines if self._read_engine is None else [*engines, self._read_engine]

    @contextmanager
    def transaction(self) -> Iterator[Session]:
        """One unit of work: committed when the block exits cleanly, rolled back otherwise.

        On SQLite the process-wide lock keeps threads from spinning on SQLITE_BUSY, and a
        database file removed or replaced under the process raises DatabaseFileLost before
        anything is written to it.
        """
        if self.is_sqlite:
            with self._write_lock:
                self.check_file()
                with self.sessions.begin() as session:
                    yield session
        else:
            with self.sessions.begin() as session:
                yield session

    def unit_of_work(self, *, read_only: bool = False) -> UnitOfWork:
        """A transaction that begins at its session's first statement: a request's
        (gateway.runtime.write_session, read_session), whose session is made on the event
        loop, used in a worker thread and ended in another. `read_only`: as `reader()`, on
        the readers' engine, beside the writer."""
        return UnitOfWork(self, read_only=read_only)

    @contextmanager
    def reader(self) -> Iterator[Session]:
        """A read-only unit of work; on SQLite it runs beside the writer thanks to WAL."""
        with self._read_sessions.begin() as session:
            yield session

    @contextmanager
    def export_reader(self) -> Iterator[Session]:
        """A read-only unit of work on the exports' own pool: for one batch of a streamed
        export, never for the time a client takes to read it."""
        with self._export_sessions.begin() as session:
            yield session

    @contextmanager
    def leader(self, name: str) -> Iterator[bool]:
        """Whether this process may do `name`'s work now, for as long as the block runs. On
        PostgreSQL, where several processes of the gateway share the database, a
        session-level advisory lock taken without waiting: False while another process holds
        it (released when the block ends, or with the connection if the process dies). On
        SQLite True: one process writes a SQLite database."""
        if self.is_sqlite:
            yield True
            return
        key = int.from_bytes(hashlib.sha256(name.encode()).digest()[:8], "big", signed=True)
        with self.engine.connect() as conn:
            held = bool(conn.execute(text("SELECT pg_try_advisory_lock(:k)"), {"k": key}).scalar())
            conn.commit()  # the lock is the session's: no transaction stays open meanwhile
            try:
                yield held
            finally:
                if held:
                    conn.execute(text("SELECT pg_advisory_unlock(:k)"), {"k": key})
                    conn.commit()

    def api_connections_in_use(self) -> int:
        """Connections of the API's pool (or pools, on SQLite) checked out right now."""
        engines = [self.engine] if self._read_engine is None else [self.engine, self._read_engine]
        return sum(_checked_out(engine) for engine in engines)

    def export_connections_in_use(self) -> int:
        return _checked_out(self.export_engine)

    def check_file(self) -> None:
        """Raise DatabaseFileLost if this SQLite database's file was removed or replaced
        (nothing to check on PostgreSQL or in memory)."""
        if self.file is not None:
            self.file.check()

    def dispose(self) -> None:
        for engine in self._engines():
            engine.dispose()


class UnitOfWork:
    """One write transaction over threads: `session` begins at its first statement, in the
    thread that runs it, and `end` commits (or, given the exception, rolls back) and closes,
    in whatever thread calls it. As `Database.transaction`: on SQLite the process's writer
    lock is held from the session's beginning to its end (taken lazily, so the lock is never
    held while a thread waits for a worker thread: with every worker blocked on the lock,
    that would never end), and a lost database file is refused before anything is written."""

    def __init__(self, db: Database, *, read_only: bool = False) -> None:
        self.session = db._read_sessions() if read_only else db.sessions()
        self._db = db
        self._locked = False
        if db.is_sqlite and not read_only:
            event.listen(self.session, "after_transaction_create", self._lock)

    def _lock(self, session: Session, transaction: Any) -> None:
        if transaction.parent is None and not self._locked:
            self._db._write_lock.acquire()
            self._locked = True
            self._db.check_file()

    def end(self, error: BaseException | None = None) -> None:
        try:
            if error is None:
                self.session.commit()
            else:
                self.session.rollback()
        finally:
            try:
                self.session.close()
            finally:
                if self._locked:
                    self._locked = False
                    self._db._write_lock.release()


def _checked_out(engine: Engine) -> int:
    checked_out = getattr(engine.pool, "checkedout", None)  # QueuePool's; not every pool's
    return int(checked_out()) if checked_out is not None else 0
