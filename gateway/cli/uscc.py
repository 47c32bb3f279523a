"""`gateway uscc`: check a unified social credit code part by part, and make valid codes for
test data (GB 32100-2015 with the GB 11714 organisation code, domain.md §7)."""

from __future__ import annotations

import random
from typing import Annotated

import typer

from contracts.uscc import ALPHABET, CATEGORIES, complete_uscc, problem
from gateway.cli.root import JsonFlag, console, emit, err, fail

uscc_app = typer.Typer(
    no_args_is_help=True, help="Unified social credit codes: check one, make valid ones."
)


@uscc_app.command("check")
def uscc_check(
    codes: Annotated[list[str], typer.Argument(help="One or more 18-character codes.")],
    as_json: JsonFlag = False,
) -> None:
    """Say for each code whether it is valid, and if not which part fails (department and
    category, region, organisation-code check, code check). Exit 1 if any fails."""
    results = []
    for code in codes:
        found = problem(code)
        results.append(
            {
                "code": code,
                "valid": found is None,
                "part": found.part if found else None,
                "detail": found.detail if found else None,
            }
        )
    if as_json:
        emit(results)
    else:
        for result in results:
            if result["valid"]:
                console.print(f"{result['code']}  valid", soft_wrap=True)
            else:
                err.print(
                    f"{result['code']}  invalid ({result['part']}): {result['detail']}",
                    soft_wrap=True,
                )
    if not all(result["valid"] for result in results):
        raise typer.Exit(1)


@uscc_app.command("make")
def uscc_make(
    region: Annotated[
        str, typer.Option(help="Six-digit GB/T 2260 division code of positions 3-8.")
    ] = "350100",
    kind: Annotated[
        str,
        typer.Option(
            help="Positions 1-2: registering department and category, e.g. 91 enterprise, "
            "11 government organ, 51 social organisation."
        ),
    ] = "91",
    count: Annotated[int, typer.Option(min=1, max=100_000, help="How many codes.")] = 1,
    seed: Annotated[int | None, typer.Option(help="Random seed, for repeatable test data.")] = None,
    as_json: JsonFlag = False,
) -> None:
    """Print valid codes for test data: both check characters computed, the organisation
    code drawn at random (never a real organisation's on purpose)."""
    if len(kind) != 2 or kind[1] not in CATEGORIES.get(kind[0], {}):
        known = ", ".join(d + c for d, cs in CATEGORIES.items() for c in cs)
        raise fail(f"--kind {kind!r} is not a department and category ({known})", 2)
    rng = random.Random(seed)  # noqa: S311 - test data, repeatable by seed; not a secret
    made: list[str] = []
    try:
        while len(made) < count:
            body = "".join(rng.choice(ALPHABET) for _ in range(8))
            code = complete_uscc(kind + region + body)
            if code not in made:
                made.append(code)
    except ValueError as exc:
        raise fail(str(exc), 2) from exc
    if as_json:
        emit(made)
    else:
        for code in made:
            console.print(code, soft_wrap=True)
