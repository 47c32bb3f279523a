"""Load N synthetic enterprises (and optionally N log entries) fast into a migrated gateway
database, so benchmarks can ask real queries of a large register without publishing it.

    python bench/populate.py --db postgresql --enterprises 1000000         # database bench_populate
    python bench/populate.py --db sqlite --path /tmp/g.db --enterprises 100000 --log-entries 100000

PostgreSQL rows go in by COPY (psycopg), SQLite rows by executemany in large transactions.
Every row is reproducible from (seed, position): enterprise i has the code `code_of(i)` (a
valid unified social credit code, GB 32100-2015 check character), a Fujian district, an
industry and grading scheme, and a grade state whose ledger fields agree with what the ledger
handlers (gateway/ledger/apply.py) would have left after its messages:

    none     (~20 %)  ledger 新增, no grade fields
    active   (~65 %)  ledger 达标, level 1/2/3 (small_micro for that scheme), authority,
                      valid_from within the last 3 years, valid_to = valid_from + 3 years - 1 day,
                      certificate and announcement numbers
    revoked  (~8 %)   ledger 未达标, reapply_after = decision + 12 months, the old certificate
                      kept, 40 % of them on the black list (3-year term from the decision)
    expired  (~7 %)   ledger 未达标, the old certificate kept

plus a red-list entry for 10 % of level-1 holders and an ordinary accident in the last year for
1 % of everyone. What is not written: `ledger_changes` (the history), and the log entries behind
each row unless --log-entries is given; `last_index` then names position i, a log the loader
did not write. --log-entries appends synthetic 700-byte leaves (kind `message`, type
`bench.synthetic`, subjects spread over the enterprises) through the gateway's own Merkle node
code (`gateway.transparency.tlog.DbSubtrees`), so roots and proofs over them verify.

Library use (bench/query.py, bench/scale.py): `fresh_database`, `populate`, `code_of`.
"""

from __future__ import annotations

import argparse
import datetime as dt
import functools
import json
import os
import random
import sqlite3
import sys
import time
import uuid
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psycopg

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from contracts.dates import add_months  # noqa: E402
from contracts.uscc import ALPHABET, complete_uscc  # noqa: E402
from gateway.db import libpq_url  # noqa: E402
from gateway.demo.dataset import INDUSTRIES  # noqa: E402
from gateway.migrate import upgrade  # noqa: E402

PG_ADMIN = os.environ.get("GATEWAY_TEST_PG_URL", "postgresql://postgres@127.0.0.1:5432/test")
BLOCK = 10_000  # rows drawn from one RNG stream: any (start, count) gives the same rows

# GB/T 2260 districts of Fujian's nine prefecture-level cities (city name for the row's name).
DISTRICTS: tuple[tuple[str, str], ...] = (
    ("350102", "福州"), ("350103", "福州"), ("350104", "福州"), ("350105", "福州"),
    ("350111", "福州"), ("350112", "福州"), ("350121", "福州"), ("350181", "福州"),
    ("350203", "厦门"), ("350205", "厦门"), ("350206", "厦门"), ("350211", "厦门"),
    ("350212", "厦门"), ("350213", "厦门"),
    ("350302", "莆田"), ("350303", "莆田"), ("350304", "莆田"), ("350305", "莆田"),
    ("350404", "三明"), ("350405", "三明"), ("350423", "三明"),
    ("350502", "泉州"), ("350503", "泉州"), ("350504", "泉州"), ("350505", "泉州"),
    ("350521", "泉州"), ("350581", "泉州"), ("350582", "泉州"), ("350583", "泉州"),
    ("350602", "漳州"), ("350603", "漳州"), ("350604", "漳州"), ("350681", "漳州"),
    ("350702", "南平"), ("350703", "南平"), ("350781", "南平"),
    ("350802", "龙岩"), ("350803", "龙岩"), ("350881", "龙岩"),
    ("350902", "宁德"), ("350981", "宁德"), ("350982", "宁德"),
)  # fmt: skip
ENTERPRISE_COLUMNS = (
    "uscc",
    "name",
    "region_code",
    "industry_section",
    "scheme",
    "required",
    "ledger_status",
    "registered_on",
    "grade_status",
    "grade_level",
    "grade_scheme",
    "grade_authority",
    "grade_valid_from",
    "grade_valid_to",
    "grade_held_since",
    "reapply_after",
    "certificate_no",
    "announcement_no",
    "self_assessment_year",
    "updated_at",
    "last_index",
)
LISTING_COLUMNS = (
    "uscc",
    "listing_id",
    "list_type",
    "deciding_agency",
    "term_start",
    "term_end",
    "status",
    "removed_on",
    "data",
    "message_id",
)
ACCIDENT_COLUMNS = (
    "uscc",
    "accident_id",
    "occurred_on",
    "accident_class",
    "deaths",
    "serious_injuries",
    "direct_loss_cny",
    "message_id",
)
LOG_COLUMNS = (
    "idx",
    "kind",
    "message_id",
    "type",
    "issuer",
    "subject",
    "issued_at",
    "accepted_at",
    "jws",
    "leaf_hash",
    "receipt",
)


@functools.lru_cache(maxsize=1 << 17)
def code_of(i: int) -> str:
    """The code of enterprise i (i < 31**6): `91` + district + `MA` + i in base 31 + check.
    Remembered: its check characters were two thirds of a register's generation, which the
    tests repeat for each database they fill (a second of a test's CPU)."""
    region = DISTRICTS[(i * 7919) % len(DISTRICTS)][0]
    org = "".join(ALPHABET[(i // 31**k) % 31] for k in range(5, -1, -1))
    return complete_uscc(f"91{region}MA{org}")


def _three_years(start: dt.date) -> dt.date:
    return add_months(start, 36) - dt.timedelta(days=1)


@dataclass
class Rows:
    enterprises: list[tuple[Any, ...]] = field(default_factory=list)
    listings: list[tuple[Any, ...]] = field(default_factory=list)
    accidents: list[tuple[Any, ...]] = field(default_factory=list)


def _block(block: int, seed: int, today: dt.date, now: dt.datetime) -> Rows:
    """The rows of enterprises block*BLOCK … block*BLOCK + BLOCK - 1."""
    rng = random.Random(f"{seed}:{block}")
    rows = Rows()
    for i in range(block * BLOCK, (block + 1) * BLOCK):
        uscc = code_of(i)
        region = uscc[2:8]
        city = DISTRICTS[(i * 7919) % len(DISTRICTS)][1]
        section, scheme, stem = INDUSTRIES[rng.randrange(len(INDUSTRIES))]
        registered = dt.date(2016, 1, 1) + dt.timedelta(days=rng.randrange(2500))
        draw = rng.random()
        status = (
            "none"
            if draw < 0.20
            else "active"
            if draw < 0.85
            else "revoked"
            if draw < 0.93
            else "expired"
        )
        level = scheme_ = authority = valid_from = valid_to = reapply = None
        certificate = announcement = assessed = None
        ledger = "新增"
        if status != "none":
            if status == "active":  # a grade still in force: announced within 3 years
                announced = today - dt.timedelta(days=rng.randrange(10, 1080))
            else:  # the award that was revoked or ran out
                announced = today - dt.timedelta(days=rng.randrange(1100, 1800))
            seq = rng.randrange(1, 999)
            held = (
                "small_micro"
                if scheme == "small_micro"
                else rng.choices(("1", "2", "3"), weights=(12, 38, 50))[0]
            )
            certificate = f"闽AQB{region}{announced.year}{seq:04d}"
            announcement = f"闽应急公告〔{announced.year}〕{seq}号"
            if status == "active":
                ledger = "达标"
                level, scheme_ = held, scheme
                authority = "provincial" if held in ("1", "2") else "city"
                valid_from, valid_to = announced, _three_years(announced)
                if rng.random() < 0.3:
                    assessed = announced.year
                if held == "1" and rng.random() < 0.10:
                    rows.listings.append(_listing(uscc, i, "red", valid_from, valid_to))
            else:
                ledger = "未达标"
                if status == "revoked":
                    decided = today - dt.timedelta(days=rng.randrange(1, 700))
                    reapply = add_months(decided, 12)
                    if rng.random() < 0.40:
                        end = add_months(decided, 36)
                        rows.listings.append(_listing(uscc, i, "black", decided, end))
        if rng.random() < 0.01:
            occurred = today - dt.timedelta(days=rng.randrange(5, 360))
            rows.accidents.append(
                (
                    uscc,
                    f"{region}-ACC-{i:07d}",
                    occurred,
                    "ordinary",
                    0,
                    1,
                    180000,
                    str(uuid.UUID(int=rng.getrandbits(128), version=4)),
                )
            )
        rows.enterprises.append(
            (
                uscc,
                f"{city}{stem}第{i + 1}有限公司",
                region,
                section,
                scheme,
                rng.random() < 0.85,
                ledger,
                registered,
                status,
                level,
                scheme_,
                authority,
                valid_from,
                valid_to,
                valid_from,  # held since: no renewals here, the award's own start
                reapply,
                certificate,
                announcement,
                assessed,
                now,
                i,
            )
        )
    return rows


def _listing(uscc: str, i: int, list_type: str, start: dt.date, end: dt.date) -> tuple[Any, ...]:
    listing_id = f"FJ-{'SX' if list_type == 'black' else 'SXJL'}-{start.year}-{i:07d}"
    data = {
        "listing_id": listing_id,
        "list_type": list_type,
        "deciding_agency": "fj.yjt",
        "decision_no": f"闽应急{'失信' if list_type == 'black' else '守信'}〔{start.year}〕{i}号",
        "decided_on": start.isoformat(),
        "term_start": start.isoformat(),
        "term_end": end.isoformat(),
        "reason": "瞒报生产安全事故" if list_type == "black" else "安全生产标准化一级企业",
    }
    message_id = str(uuid.uuid5(uuid.NAMESPACE_URL, f"bench-listing-{uscc}"))
    return (uscc, listing_id, list_type, "fj.yjt", start, end, "active", None, data, message_id)


def generate(start: int, count: int, seed: int, today: dt.date, now: dt.datetime) -> Iterator[Rows]:
    """Rows of enterprises start … start + count - 1, a block at a time."""
    end = start + count
    for block in range(start // BLOCK, (end + BLOCK - 1) // BLOCK):
        rows = _block(block, seed, today, now)
        lo, hi = max(start, block * BLOCK), min(end, (block + 1) * BLOCK)
        if (lo, hi) != (block * BLOCK, (block + 1) * BLOCK):
            keep = {code_of(i) for i in range(lo, hi)}
            rows = Rows(
                [r for r in rows.enterprises if r[0] in keep],
                [r for r in rows.listings if r[0] in keep],
                [r for r in rows.accidents if r[0] in keep],
            )
        yield rows


# --- writing ---------------------------------------------------------------------------------


def _sqlite_path(url: str) -> str:
    return url.split("///", 1)[1]


def _sqlite_value(value: Any) -> Any:
    """What SQLAlchemy's SQLite types store: ISO dates, naive UTC datetimes, JSON text."""
    if isinstance(value, dt.datetime):
        value = value.astimezone(dt.UTC).replace(tzinfo=None)
        return value.strftime("%Y-%m-%d %H:%M:%S.%f")
    if isinstance(value, dt.date):
        return value.isoformat()
    if isinstance(value, dict):
        return json.dumps(value, ensure_ascii=False)
    if isinstance(value, bool):
        return int(value)
    return value


class _Writer:
    def __init__(self, url: str) -> None:
        self.pg = url.startswith("postgresql")
        if self.pg:
            self.pgconn = psycopg.connect(libpq_url(url))
        else:
            self.sqlite = sqlite3.connect(_sqlite_path(url), isolation_level=None)
            self.sqlite.execute("PRAGMA journal_mode=WAL")
            self.sqlite.execute("PRAGMA synchronous=OFF")
            self.sqlite.execute("PRAGMA foreign_keys=OFF")
            self.sqlite.execute("PRAGMA cache_size=-200000")
            self.sqlite.execute("BEGIN")

    def write(self, table: str, columns: Sequence[str], rows: Sequence[tuple[Any, ...]]) -> None:
        if not rows:
            return
        if self.pg:
            with self.pgconn.cursor().copy(f"COPY {table} ({', '.join(columns)}) FROM STDIN") as cp:
                for row in rows:
                    cp.write_row([json.dumps(v) if isinstance(v, dict) else v for v in row])
        else:
            marks = ", ".join("?" * len(columns))
            self.sqlite.executemany(
                f"INSERT INTO {table} ({', '.join(columns)}) VALUES ({marks})",
                ([_sqlite_value(v) for v in row] for row in rows),
            )

    def commit(self) -> None:
        if self.pg:
            self.pgconn.commit()
        else:
            self.sqlite.execute("COMMIT")
            self.sqlite.execute("BEGIN")

    def close(self, analyze: Sequence[str]) -> None:
        if self.pg:
            self.pgconn.commit()
            self.pgconn.autocommit = True
            for table in analyze:
                self.pgconn.execute(f"ANALYZE {table}")
            self.pgconn.close()
        else:
            self.sqlite.execute("COMMIT")
            self.sqlite.execute("ANALYZE")
            self.sqlite.close()


@dataclass
class Loaded:
    enterprises: int
    listings: int
    accidents: int
    log_entries: int
    seconds: float

    def describe(self) -> str:
        rate = self.enterprises / self.seconds if self.seconds else 0.0
        return (
            f"{self.enterprises:,} enterprises ({self.listings:,} listings, "
            f"{self.accidents:,} accidents), {self.log_entries:,} log entries "
            f"in {self.seconds:.1f} s"
            + (f" ({rate:,.0f} enterprises/s)" if self.enterprises and not self.log_entries else "")
        )


def populate(
    url: str,
    count: int,
    *,
    start: int = 0,
    seed: int = 1,
    log_entries: int = 0,
    today: dt.date | None = None,
) -> Loaded:
    """Write enterprises start … start + count - 1 (and their listings and accidents) into the
    migrated database at `url`; then `log_entries` synthetic log entries. Commits every
    100,000 rows; statistics are refreshed at the end (ANALYZE)."""
    began = time.perf_counter()
    now = dt.datetime.now(dt.UTC)
    today = today or now.date()
    writer = _Writer(url)
    listings = accidents = done = 0
    try:
        for rows in generate(start, count, seed, today, now):
            writer.write("enterprises", ENTERPRISE_COLUMNS, rows.enterprises)
            writer.write("listings", LISTING_COLUMNS, rows.listings)
            writer.write("accidents", ACCIDENT_COLUMNS, rows.accidents)
            listings, accidents = listings + len(rows.listings), accidents + len(rows.accidents)
            done += len(rows.enterprises)
            if done % 100_000 < BLOCK:
                writer.commit()
    finally:
        writer.close(("enterprises", "listings", "accidents"))
    if log_entries:
        append_log(url, log_entries, subjects=max(count + start, 1), seed=seed, now=now)
    return Loaded(count, listings, accidents, log_entries, time.perf_counter() - began)


def append_log(url: str, count: int, *, subjects: int, seed: int, now: dt.datetime) -> None:
    """Append `count` synthetic 700-byte leaves after the log's current head: Merkle nodes by
    the gateway's own `DbSubtrees.append` (in memory, 100,000 leaves per transaction), rows
    by COPY / executemany, then the head moved under its lock."""
    from sqlalchemy import text

    from gateway.db import Database
    from gateway.transparency.tlog import DbSubtrees, lock_head, right_edge
    from keys import merkle

    rng = random.Random(f"{seed}:log")
    db = Database(url, pool_size=1)
    try:
        done = 0
        while done < count:
            chunk = min(100_000, count - done)
            with db.transaction() as session:
                size = lock_head(session)
                nodes = DbSubtrees(session)
                nodes.prefetch(right_edge(size))
                entries = []
                for n in range(size, size + chunk):
                    subject = code_of(rng.randrange(subjects))
                    leaf = f"bench-leaf-{n:012d}-{subject}".encode().ljust(700, b".")
                    digest = merkle.leaf_hash(leaf)
                    nodes.append(n, digest)
                    entries.append(
                        (
                            n,
                            "message",
                            str(uuid.UUID(int=rng.getrandbits(128), version=4)),
                            "bench.synthetic",
                            "bench",
                            subject,
                            now,
                            now,
                            leaf,
                            digest,
                            "",
                        )
                    )
                pending = [(p["level"], p["idx"], p["hash"]) for p in nodes._pending]
                nodes._pending = []
                session.connection().execute(
                    text("UPDATE log_head SET size = :size WHERE id = 1"), {"size": size + chunk}
                )
                raw = session.connection().connection.driver_connection
                assert raw is not None
                if db.is_sqlite:
                    raw.executemany(
                        f"INSERT INTO log_entries ({', '.join(LOG_COLUMNS)}) VALUES "
                        f"({', '.join('?' * len(LOG_COLUMNS))})",
                        ([_sqlite_value(v) for v in e] for e in entries),
                    )
                    raw.executemany(
                        "INSERT INTO tree_nodes (level, idx, hash) VALUES (?, ?, ?)", pending
                    )
                else:
                    with raw.cursor() as cur:
                        with cur.copy(
                            f"COPY log_entries ({', '.join(LOG_COLUMNS)}) FROM STDIN"
                        ) as cp:
                            for e in entries:
                                cp.write_row(e)
                        with cur.copy("COPY tree_nodes (level, idx, hash) FROM STDIN") as cp:
                            for p in pending:
                                cp.write_row(p)
            done += chunk
    finally:
        db.dispose()


# --- databases -------------------------------------------------------------------------------


def fresh_database(backend: str, *, name: str, directory: Path | None = None) -> str:
    """A new, migrated database: PostgreSQL `name` (dropped first) or `directory/name.db`."""
    if backend == "sqlite":
        assert directory is not None, "SQLite needs a directory"
        directory.mkdir(parents=True, exist_ok=True)
        path = directory / f"{name}.db"
        for suffix in ("", "-wal", "-shm"):
            Path(f"{path}{suffix}").unlink(missing_ok=True)
        url = f"sqlite:///{path}"
    else:
        with psycopg.connect(PG_ADMIN, autocommit=True) as admin:
            admin.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
            admin.execute(f"CREATE DATABASE {name}")
        url = PG_ADMIN.rpartition("/")[0] + "/" + name
    upgrade(url)
    return url


def drop_database(url: str) -> None:
    """Drop a PostgreSQL database made by `fresh_database` (SQLite files are the caller's)."""
    if url.startswith("postgresql"):
        with psycopg.connect(PG_ADMIN, autocommit=True) as admin:
            admin.execute(f"DROP DATABASE IF EXISTS {url.rpartition('/')[2]} WITH (FORCE)")


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--db", choices=["sqlite", "postgresql"], default="postgresql")
    parser.add_argument("--enterprises", type=int, default=1_000_000)
    parser.add_argument("--log-entries", type=int, default=0, help="synthetic log entries")
    parser.add_argument("--name", default="bench_populate", help="PostgreSQL database name")
    parser.add_argument("--path", type=Path, help="SQLite file (default: ./bench_populate.db)")
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    if args.db == "sqlite":
        path = args.path or Path("bench_populate.db")
        url = fresh_database("sqlite", name=path.stem, directory=path.resolve().parent)
    else:
        url = fresh_database("postgresql", name=args.name)
    loaded = populate(url, args.enterprises, seed=args.seed, log_entries=args.log_entries)
    print(f"{args.db} {url}: {loaded.describe()}")


if __name__ == "__main__":
    main()
