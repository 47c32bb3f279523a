"""Issue 20, finding 13: log injection in the text log format. A request path with `%0A`
wrote a line of the caller's choosing into the log; now every text field (the message, each
`key=value`) is escaped, a value that could pass for more fields is quoted, and a
traceback's lines are indented below their record, so that each record starts exactly one
line at column 0."""

from __future__ import annotations

import io
import logging
from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient
from hypothesis import given, settings
from hypothesis import strategies as st

from gateway.logs import TextFormatter, configure_logging, log_event


@pytest.fixture
def text_log() -> Iterator[io.StringIO]:
    root = logging.getLogger()
    saved = (root.handlers[:], root.level)
    stream = io.StringIO()
    configure_logging("text", stream=stream, level="DEBUG")
    try:
        yield stream
    finally:
        for handler in root.handlers[:]:
            root.removeHandler(handler)
        for handler in saved[0]:
            root.addHandler(handler)
        root.setLevel(saved[1])


def records_start_at_column_0(text: str) -> list[str]:
    """The lines that begin a record (every other line is indented below one)."""
    lines = text.split("\n")
    assert lines[-1] == ""
    return [line for line in lines[:-1] if not line.startswith(" ")]


def test_a_path_with_an_encoded_newline_writes_one_access_line(
    client: TestClient, text_log: io.StringIO
) -> None:
    forged = "2026-11-01 08:00:00,000 WARNING gateway.access admin login from 10.0.0.1"
    response = client.get("/v1/nothing%0A" + forged.replace(" ", "%20") + "%0D%0A%1B[2J")
    assert response.status_code == 404
    (line,) = [
        line for line in text_log.getvalue().splitlines() if "gateway.access" in line.split()[:4]
    ]
    assert f'method=GET path="/v1/nothing\\n{forged}\\r\\n\\x1b[2J" status=404 ' in line
    assert len(text_log.getvalue().splitlines()) == len(
        records_start_at_column_0(text_log.getvalue())
    )


def test_a_value_cannot_pass_for_another_field(text_log: io.StringIO) -> None:
    log_event("access.refused", what="GET /x status=200 agency=ops", agency=None, code="x")
    line = text_log.getvalue().rstrip("\n")
    assert line.endswith('access.refused what="GET /x status=200 agency=ops" code=x')


def test_a_message_with_line_breaks_stays_one_line(text_log: io.StringIO) -> None:
    logging.getLogger("gateway.delivery").warning(
        "delivery %s failed", "7\u2028forged\rline\x85next"
    )
    (line,) = text_log.getvalue().splitlines()  # splitlines also breaks at U+2028 and U+0085
    assert line.endswith("gateway.delivery delivery 7\\u2028forged\\rline\\x85next failed")


def test_a_traceback_stays_below_its_record_even_with_a_forged_line_in_it(
    text_log: io.StringIO,
) -> None:
    try:
        raise ValueError("bad input\n2026-11-01 08:00:00,000 INFO gateway.access forged")
    except ValueError:
        logging.getLogger("gateway.delivery").exception("round failed", extra={"round": 3})
    text = text_log.getvalue()
    (record,) = records_start_at_column_0(text)
    assert record.endswith("ERROR gateway.delivery round failed round=3")
    assert "  ValueError: bad input\n  2026-11-01 08:00:00,000 INFO gateway.access forged" in text


# The class: whatever a message or a field holds, a record is one line at column 0 and the
# lines of its traceback are indented below it.
ANY_TEXT = st.text(alphabet=st.characters(codec="utf-8"), max_size=40)


@settings(max_examples=300, deadline=None)
@given(message=ANY_TEXT, value=ANY_TEXT, key=ANY_TEXT)
def test_any_text_in_any_field_makes_one_line(message: str, value: str, key: str) -> None:
    record = logging.makeLogRecord(
        {"name": "gateway.events", "levelno": 20, "levelname": "INFO", "msg": message}
    )
    record.gateway_fields = {key or "k": value, "other": 1}
    text = TextFormatter().format(record)
    assert len(text.splitlines()) == 1, text
    assert text.endswith(" other=1")
