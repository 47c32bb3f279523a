"""Every unified social credit code the project shows — in the README, the docs, the tests, the
code, the client, the benches and the examples — passes the full check (GB 32100-2015 with the
GB 11714 organisation code, issue 18 §4), unless it is a deliberately bad example listed here
with the reason. A reader copies examples; an invalid one teaches the wrong rule."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

from contracts.uscc import problem

ROOT = Path(__file__).resolve().parents[2]
SCANNED = ("README.md", "docs", "tests", "gateway", "client", "bench", "examples")
# Vendored third-party files: their 18-digit numbers are not codes of ours.
SKIPPED = (ROOT / "tests" / "data",)
SKIPPED_PARTS = {"__pycache__", "node_modules", ".venv"}

# Looks like a code: two characters, six digits (the division), ten more; not part of a longer
# token (hex digests, base64). Letters outside the code's alphabet still match, so that an
# example using I, O, S, V or Z is caught too.
LOOKS_LIKE_USCC = re.compile(r"(?<![0-9A-Za-z])[0-9A-Z]{2}[0-9]{6}[0-9A-Z]{10}(?![0-9A-Za-z])")

# Deliberately bad examples: each fails on purpose, and the reason says which part it shows.
BAD_ON_PURPOSE = {
    "000000000000000000": "department 0 does not exist (issue 18 §4 names it)",
    "81350900587527783P": "department 8 does not exist",
    "94350900587527783P": "category 4 of department 9 does not exist",
    "91990900587527783P": "division 990900 does not exist",
    "91350900587527784T": "organisation-code check character wrong (issue 18 §4's example)",
    "913509005875277831": "code check character wrong",
    "91350900587527783Q": "code check character wrong: one character changed",
    "91350900587527783X": "code check character wrong: a bad code among good ones",
    "9135090058752778I3": "I is not in the code's alphabet",
    "9135090058752778IP": "I is not in the code's alphabet",
    "91350203AY4CL12T2Q": "code check character wrong: the refusal shown (valid: …T2P)",
    "91350102MA0000001L": "organisation-code check wrong: the draws' old golden vector, below",
}


def scanned_files() -> Iterator[Path]:
    for name in SCANNED:
        path = ROOT / name
        candidates = [path] if path.is_file() else sorted(path.rglob("*"))
        for file in candidates:
            if not file.is_file() or SKIPPED_PARTS & set(file.parts):
                continue
            if any(file.is_relative_to(skipped) for skipped in SKIPPED):
                continue
            yield file


def examples() -> dict[str, list[str]]:
    """Each code-looking token and the files that show it."""
    found: dict[str, list[str]] = {}
    for file in scanned_files():
        try:
            text = file.read_text("utf-8")
        except UnicodeDecodeError:
            continue  # not text
        for token in set(LOOKS_LIKE_USCC.findall(text)):
            found.setdefault(token, []).append(str(file.relative_to(ROOT)))
    return found


def test_every_example_code_passes_the_full_check_or_is_bad_on_purpose() -> None:
    found = examples()
    assert len(found) > 20  # the scan sees the examples at all
    invalid = {
        code: (p.part, files)
        for code, files in sorted(found.items())
        if (p := problem(code)) is not None and code not in BAD_ON_PURPOSE
    }
    assert invalid == {}, "fix these codes (gateway uscc check / gateway uscc make), or list them"


def test_every_bad_example_listed_is_used_and_does_fail() -> None:
    found = examples()
    assert {code for code in BAD_ON_PURPOSE if code not in found} == set()
    assert {code for code in BAD_ON_PURPOSE if problem(code) is None} == set()


def test_the_scan_catches_a_wrong_organisation_check_character() -> None:
    # 91350102MA0000001L was a golden vector of docs/draws.md: its code check is right but
    # position 17 is not the GB 11714 check of MA000000.
    assert LOOKS_LIKE_USCC.findall("codes: ['91350102MA0000001L'] and ab91350102MA0000001L") == [
        "91350102MA0000001L"
    ]
    found = problem("91350102MA0000001L")
    assert found is not None
    assert found.part == "organisation_code"
