"""What a random draw (双随机, issue 21) and its verification cost over a large ledger.

    python bench/draws.py                         # 10^5 candidates
    taskset -c 0 python bench/draws.py --candidates 100000 --share 0.02

Builds `--candidates` enterprises, each an `enterprise.registered` and a `grade.awarded` leaf
signed with Ed25519 (levels 1/2/3 in the proportion 1:2:3, five regions), logs a draw request,
three entries after it and a signed checkpoint (not timed). Then times, each alone: the ledger
fold over all ledger leaves, the candidates, resolving the request, the split into three strata
(by level), the selection of `--share` of the candidates, the inspector assignment; then the
whole draw from the log as a gateway keeping no ledger in memory would run it (fold +
resolve_request + draw_result), the same with a LedgerReplay kept up to date, and
`verify_draw` (checkpoint signature, root over every leaf, the request's gateway signature,
fold, candidates, seed, selection, inspectors). Goal: the draw and its verification each under
2 s on one core. The baseline is the stdlib's base64url and JSON decoding of every payload, the
floor under any fold written in Python. Figures are CPU seconds of this process
(`time.process_time`) and wall seconds.
"""

from __future__ import annotations

import argparse
import base64
import datetime as dt
import json
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))

from draw_factories import (  # noqa: E402
    GATEWAY_KEY,
    LOG_VKEY,
    SECRET,
    checkpoint_note,
    gateway_entry,
    message,
    registration,
    request_json,
    uscc,
)

from keys.draw_records import (  # noqa: E402
    REQUESTED_TYPE,
    DrawRequest,
    draw_candidates,
    draw_result,
    resolve_request,
)
from keys.draw_verify import verify_draw  # noqa: E402
from keys.draws import assign_inspectors, derive_seed, select  # noqa: E402
from keys.ledger_fold import LedgerReplay, fold_ledger, split_strata  # noqa: E402
from keys.merkle import leaf_hash, root_from_leaves  # noqa: E402

ON = dt.date(2027, 1, 1)
LEVELS = ("1", "2", "2", "3", "3", "3")
T = TypeVar("T")


def timed(label: str, run: Callable[[], T]) -> T:
    cpu, wall = time.process_time(), time.perf_counter()
    value = run()
    cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
    print(f"{label:<52} {cpu:7.3f} s CPU {wall:7.3f} s wall", flush=True)
    return value


def ledger(count: int) -> list[bytes]:
    leaves = []
    for n in range(count):
        region = f"3501{n % 5 + 1:02d}"
        code = uscc(n, region=region)
        leaves.append(registration(code, region=region))
        data = {
            "level": LEVELS[n % len(LEVELS)],
            "scheme": "industry_trade",
            "authority_level": "provincial",
            "announcement_no": "闽应急公告〔2025〕1号",
            "certificate_no": f"闽AQB{n:08d}",
            "announced_on": "2025-01-01",
            "valid_from": "2025-01-01",
            "valid_to": "2027-12-31",
        }
        leaves.append(message(type="grade.awarded", subject=code, data=data, n=n))
    return leaves


def decode_all(leaves: list[bytes]) -> None:
    """The floor under the fold: base64.urlsafe_b64decode and json.loads of each payload."""
    for leaf in leaves:
        segment = leaf.split(b".")[1]
        json.loads(base64.urlsafe_b64decode(segment + b"=" * (-len(segment) % 4)))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--candidates", type=int, default=100_000, help="enterprises (default 1e5)")
    parser.add_argument("--share", type=float, default=0.02, help="share drawn (default 0.02)")
    parser.add_argument("--inspectors", type=int, default=400, help="inspector pool size")
    parser.add_argument("--per-enterprise", type=int, default=2, help="inspectors per enterprise")
    parser.add_argument(
        "--db",
        choices=("none", "sqlite", "postgresql"),
        default="sqlite",
        help="also time reading the same number of candidates from a gateway database "
        "(bench/populate.py), raw and as the gateway's draw reads them (default sqlite)",
    )
    args = parser.parse_args()

    began = time.perf_counter()
    leaves = ledger(args.candidates)
    print(f"built {len(leaves):,} signed ledger leaves in {time.perf_counter() - began:.1f} s")
    counts = {level: LEVELS.count(level) * args.candidates // len(LEVELS) for level in "123"}
    strata = [
        {"name": f"level-{lv}", "where": {"levels": [lv]}, "sample": round(n * args.share)}
        for lv, n in counts.items()
    ]
    inspectors = [f"insp-{i:04d}" for i in range(args.inspectors)]
    overrides: dict[str, Any] = {
        "strata": strata,
        "inspectors": inspectors,
        "inspectors_per_enterprise": args.per_enterprise,
    }

    timed(f"baseline: stdlib decode of {len(leaves):,} payloads", lambda: decode_all(leaves))
    facts = timed(f"fold_ledger over {len(leaves):,} leaves", lambda: fold_ledger(leaves, ON))
    draft = DrawRequest.from_json(request_json(**overrides))
    codes = timed("candidates (achieved ledger, 3501)", lambda: draw_candidates(draft, facts))
    request = timed(
        "resolve_request (candidates, digest, checks)",
        lambda: resolve_request(request_json(**overrides), facts, []),
    )
    index = len(leaves)
    leaves.append(gateway_entry(type=REQUESTED_TYPE, data=request.to_json()))
    leaves += [registration(uscc(10**7 + n)) for n in range(3)]
    checkpoint = checkpoint_note(leaves)
    root = root_from_leaves([leaf_hash(leaf) for leaf in leaves])
    seed = derive_seed(
        checkpoint_root=root, request_leaf_hash=leaf_hash(leaves[index]), secret=SECRET
    )
    split = timed(
        "split_strata (3 strata by level)", lambda: split_strata(facts, codes, request.strata)
    )
    results = timed(
        f"select {sum(s['sample'] for s in strata):,} of {len(codes):,} in 3 strata",
        lambda: select(seed, split),
    )
    selected = [code for r in results for code in r.selected]
    timed(
        f"assign_inspectors ({args.per_enterprise} of {args.inspectors} each)",
        lambda: assign_inspectors(seed, selected, inspectors, args.per_enterprise, {}),
    )

    def whole_draw() -> dict[str, Any]:
        # As the gateway would with no ledger kept in memory: fold, resolve, then draw.
        ledger_facts = fold_ledger(leaves[:index], ON)
        resolve_request(request_json(**overrides), ledger_facts, [])
        return draw_result(
            request,
            ledger_facts,
            request_index=index,
            seed_checkpoint_size=len(leaves),
            seed=seed,
            secret=SECRET,
        )

    result = timed("the draw: fold + resolve_request + draw_result", whole_draw)
    replay = LedgerReplay()
    for leaf in leaves[:index]:
        replay.apply(leaf)

    def kept_draw() -> None:
        # As a gateway keeping a LedgerReplay up to date as entries are appended.
        ledger_facts = replay.facts(ON)
        resolve_request(request_json(**overrides), ledger_facts, [])
        draw_result(
            request,
            ledger_facts,
            request_index=index,
            seed_checkpoint_size=len(leaves),
            seed=seed,
            secret=SECRET,
        )

    timed("the draw, ledger kept: facts + resolve + draw_result", kept_draw)
    result = json.loads(json.dumps(result))  # as a verifier reads it from the log
    differences = timed(
        "verify_draw (root, fold, candidates, seed, selection)",
        lambda: verify_draw(
            leaves=leaves,
            request_index=index,
            seed_checkpoint=checkpoint,
            log_vkey=LOG_VKEY,
            secret_hex=SECRET.hex(),
            result=result,
            gateway_jwk=GATEWAY_KEY.public_key.jwk(),
        ),
    )
    print("verified" if not differences else f"NOT VERIFIED: {differences[0]}")
    if args.db != "none":
        from_the_database(args.db, args.candidates)


def from_the_database(backend: str, count: int) -> None:
    """The gateway draws from its database, not from the log: read `count` enterprises'
    ledger facts there, raw (one SELECT of the columns, the floor) and as
    gateway.supervision.draws.ledger_facts does (the same SELECT made LedgerFacts)."""
    import tempfile

    from sqlalchemy import select

    from bench.populate import drop_database, fresh_database, populate
    from gateway.db import Database
    from gateway.models import Enterprise
    from gateway.supervision.draws import ledger_facts

    with tempfile.TemporaryDirectory() as folder:
        url = fresh_database(backend, name="bench_draws", directory=Path(folder))
        try:
            populate(url, count)
            db = Database(url, pool_size=1)
            try:
                with db.reader() as session:
                    columns = select(*Enterprise.__table__.columns)
                    timed(
                        f"{backend}: baseline SELECT of {count:,} enterprises' rows",
                        lambda: session.execute(columns).all(),
                    )
                    found = timed(
                        f"{backend}: ledger_facts of {count:,} (the gateway's candidates read)",
                        lambda: ledger_facts(session, ON),
                    )
                print(f"{backend}: {sum(f.achieved for f in found.values()):,} achieved on {ON}")
            finally:
                db.dispose()
        finally:
            if backend == "postgresql":
                drop_database(url)


if __name__ == "__main__":
    main()
