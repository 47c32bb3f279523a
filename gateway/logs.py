"""Structured logs: one JSON object per line, each carrying the id of the request it belongs to,
and the pure-ASGI middleware that assigns that id, echoes it and writes the access line."""

from __future__ import annotations

import datetime as dt
import json
import logging
import os
import random
import re
import sys
import threading
import time
from contextvars import ContextVar
from typing import Any, Literal, TextIO

import orjson
from starlette.datastructures import MutableHeaders
from starlette.types import ASGIApp, Message, Receive, Scope, Send

REQUEST_ID_HEADER = "X-Request-ID"
# The id of the request being served, None outside one. Starlette's run_in_threadpool (anyio)
# runs sync code in a copy of this context, so threads serving a request see it too.
request_id: ContextVar[str | None] = ContextVar("gateway_request_id", default=None)

_SANE_ID = re.compile(r"[A-Za-z0-9._-]{1,128}")
# Probes and scrapes arrive every few seconds from every orchestrator and Prometheus: their
# successful answers are logged at DEBUG so that INFO stays readable.
_PROBE_PATHS = frozenset({"/healthz", "/readyz", "/metrics"})
_FIELDS = "gateway_fields"  # the LogRecord attribute that carries log_event's fields
_HANDLER_MARK = "_gateway_handler"
# Every attribute a plain LogRecord has: what is not among them came in through `extra=`.
_RECORD_ATTRIBUTES = frozenset(vars(logging.makeLogRecord({}))) | {"message", "asctime"}
_NOT_FIELDS = _RECORD_ATTRIBUTES | {"request_id", "color_message"}  # uvicorn's ANSI copy

_events = logging.getLogger("gateway.events")
_access = logging.getLogger("gateway.access")


def log_event(event: str, /, **fields: Any) -> None:
    """Log `event` at INFO on `gateway.events` with `fields` and the current request id.

    Any field name is safe (`name` or `args` too): fields travel in one record attribute, never
    as LogRecord attributes; one named like a fixed key of the line (`time`, `level`, `logger`,
    `message`, `event`, `request_id`) is shadowed by it. Values JSON cannot hold go as `str()`.
    """
    _emit(_events, logging.INFO, event, fields, stacklevel=3)


def _emit(
    logger: logging.Logger, level: int, event: str, fields: dict[str, Any], stacklevel: int = 2
) -> None:
    if logger.isEnabledFor(level):
        extra = {"event": event, "request_id": request_id.get(), _FIELDS: fields}
        logger.log(level, event, extra=extra, stacklevel=stacklevel)


class JsonFormatter(logging.Formatter):
    """One JSON object per line: `time` (UTC, ISO 8601), `level`, `logger`, `message`, `event`
    (records of `log_event`), `request_id`, then every other field. The fixed keys win over a
    field of the same name, so a field can never pass for another request's id."""

    def format(self, record: logging.LogRecord) -> str:
        fields = _fields_of(record)
        line: dict[str, Any] = {
            "time": dt.datetime.fromtimestamp(record.created, dt.UTC).isoformat(
                timespec="milliseconds"
            ),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        if "event" in fields:
            line["event"] = fields.pop("event")
        line["request_id"] = _request_id_of(record)
        line |= {key: value for key, value in fields.items() if key not in line}
        if record.exc_info:
            line["exception"] = self.formatException(record.exc_info)
        if record.stack_info:
            line["stack"] = self.formatStack(record.stack_info)
        try:
            return orjson.dumps(line, default=str).decode()
        except TypeError:  # what orjson refuses even with `default` (integers beyond 64 bits)
            return json.dumps(line, ensure_ascii=False, default=str)


# What could end a line, or rewrite one on a terminal, for any reader (str.splitlines breaks
# at \x1c-\x1e, U+0085, U+2028 and U+2029 too): escaped in text lines, as is the backslash
# that starts an escape, so that a request path's `%0A` cannot write a line of its own.
_UNSAFE = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029\\]")
_ESCAPES = {"\n": "\\n", "\r": "\\r", "\t": "\\t", "\\": "\\\\"}
# A value holding these could pass for more fields: quoted (logfmt's convention).
_NEEDS_QUOTES = re.compile(r'[\s"=]|^$')


def _escaped(text: str) -> str:
    return _UNSAFE.sub(_escape, text)


def _escape(match: re.Match[str]) -> str:
    code = ord(match[0])
    return _ESCAPES.get(match[0]) or (f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}")


class TextFormatter(logging.Formatter):
    """`time level logger message request_id=… key=value …`, for people at a terminal.

    One record starts one line: control characters and line breaks in the message and the
    fields are escaped (`\\n`, `\\x1b`, `\\u2028`), a value with a space, `"` or `=` is
    quoted, and the lines of a traceback are indented below the record (an exception's message
    is the caller's text too)."""

    def __init__(self) -> None:
        super().__init__("%(asctime)s %(levelname)s %(name)s %(message)s")

    def formatMessage(self, record: logging.LogRecord) -> str:
        return f"{record.asctime} {record.levelname} {_escaped(record.name)} " + _escaped(
            record.message
        )

    def format(self, record: logging.LogRecord) -> str:
        text = super().format(record)
        fields = {"request_id": _request_id_of(record)} | _fields_of(record)
        if fields.get("event") == record.getMessage():
            del fields["event"]
        suffix = " ".join(
            f"{_escaped(str(key))}={_quoted(value)}"
            for key, value in fields.items()
            if value is not None
        )
        head, newline, tail = text.partition("\n")  # the traceback, below the fields
        if suffix:
            head = f"{head} {suffix}"
        if not newline:
            return head
        return head + "".join(f"\n  {_escaped(line)}" for line in tail.split("\n"))


def _quoted(value: Any) -> str:
    text = _escaped(str(value))
    if not _NEEDS_QUOTES.search(text):
        return text
    return '"' + text.replace('"', '\\"') + '"'


def _fields_of(record: logging.LogRecord) -> dict[str, Any]:
    """`log_event`'s fields, then whatever came in through `extra=` (its `event` included)."""
    fields: dict[str, Any] = dict(getattr(record, _FIELDS, None) or {})
    for key, value in vars(record).items():
        if key not in _NOT_FIELDS and key != _FIELDS:
            fields[key] = value
    return fields


def _request_id_of(record: logging.LogRecord) -> str | None:
    """The id current where the record was made, else where it is formatted (the same thread
    for the handlers configured here)."""
    captured = getattr(record, "request_id", None)
    return captured if isinstance(captured, str) else request_id.get()


class _StderrHandler(logging.StreamHandler[TextIO]):
    """Writes to whatever `sys.stderr` is at the time, as logging's last-resort handler does,
    so a replaced or closed stream (test capture, a daemon's redirection) is never held."""

    def __init__(self) -> None:
        logging.Handler.__init__(self)

    @property
    def stream(self) -> TextIO:  # type: ignore[override]  # read-only on purpose
        return sys.stderr


class _BatchingStderrHandler(_StderrHandler):
    """Writes lines in batches: a line waits at most `interval` seconds for others to join it
    in one write, instead of a write (a system call) per line. WARNING and above are written at
    once, with whatever waits before them; so is a batch of `max_lines`; and everything is
    written when logging shuts down (process exit, `logging.shutdown`) or the handler closes.

    One flusher thread per handler, started with the first line, writes each batch: a thread
    started per batch (up to 20 a second under load) cost the event loop more than the lines.
    """

    def __init__(self, interval: float, max_lines: int = 512) -> None:
        super().__init__()
        self.interval, self.max_lines = interval, max_lines
        self._lines: list[str] = []
        self._waiting = threading.Event()  # set while a line waits for its batch
        self._stop = threading.Event()
        self._flusher: threading.Thread | None = None

    def emit(self, record: logging.LogRecord) -> None:
        # Handler.handle holds self.lock (an RLock) around emit.
        try:
            self._lines.append(self.format(record))
        except Exception:
            self.handleError(record)
            return
        if record.levelno >= logging.WARNING or len(self._lines) >= self.max_lines:
            self._write()
        elif not self._waiting.is_set():
            if self._flusher is None and not self._stop.is_set():
                self._flusher = threading.Thread(
                    target=self._flush_batches, name="log-flusher", daemon=True
                )
                self._flusher.start()
            self._waiting.set()

    def _flush_batches(self) -> None:
        while True:
            self._waiting.wait()
            if self._stop.wait(self.interval):  # lines arriving meanwhile join the batch
                return  # close() wrote what was left
            self.flush()

    def flush(self) -> None:
        with self.lock:  # type: ignore[union-attr]  # created by Handler.__init__
            self._waiting.clear()  # under the lock: a line emitted after this wakes us again
            self._write()

    def close(self) -> None:
        self._stop.set()
        self._waiting.set()  # wake an idle flusher so that it sees the handler closed
        self.flush()
        super().close()

    def _write(self) -> None:
        if self._lines:
            text = "\n".join(self._lines) + "\n"
            self._lines.clear()
            stream = self.stream
            stream.write(text)
            stream.flush()


def configure_logging(
    log_format: Literal["json", "text"] = "json",
    *,
    level: str | int = "INFO",
    stream: TextIO | None = None,
    batch_seconds: float = 0.0,
) -> logging.Handler:
    """Send every log record of the process, uvicorn's included, through one handler on the
    root logger in `log_format`. Idempotent: replaces the handler an earlier call installed.

    `batch_seconds` > 0 (stderr only) writes lines in batches at most that far apart instead of
    one write per line: the server's access and event lines cost a system call each otherwise.
    """
    handler: logging.Handler
    if stream is not None:
        handler = logging.StreamHandler(stream)
    elif batch_seconds > 0:
        handler = _BatchingStderrHandler(batch_seconds)
    else:
        handler = _StderrHandler()
    handler.setFormatter(JsonFormatter() if log_format == "json" else TextFormatter())
    setattr(handler, _HANDLER_MARK, True)
    root = logging.getLogger()
    for old in [h for h in root.handlers if getattr(h, _HANDLER_MARK, False)]:
        root.removeHandler(old)
        old.close()  # writes what it held
    root.addHandler(handler)
    root.setLevel(level)
    # No line shows the caller's file, thread or process: don't look them up for every record
    # (the logging HOWTO's "Optimization"; findCaller walked the stack on every access line).
    logging._srcfile = None
    logging.logThreads = False
    logging.logProcesses = False
    logging.logMultiprocessing = False
    # uvicorn gives its loggers their own text handlers and stops propagation; hand them to
    # the root handler instead (`gateway serve` turns uvicorn's access log off: ours replaces it).
    for name in ("uvicorn", "uvicorn.error"):
        logger = logging.getLogger(name)
        logger.handlers.clear()
        logger.propagate = True
    # httpx logs every webhook POST at INFO; the worker records each attempt itself.
    logging.getLogger("httpx").setLevel(logging.WARNING)
    return handler


# Request ids need to be unique, not secret: 128 bits from a generator seeded once from the
# OS, instead of uuid4's os.urandom per request (a system call that hands the GIL to another
# thread on every request: bench/RESULTS.md, standing queries).
_ids = random.Random(os.urandom(32))  # noqa: S311 -- unique, not secret


def new_request_id() -> str:
    """32 hex digits, as `uuid4().hex` gives."""
    return f"{_ids.getrandbits(128):032x}"


def _sane_request_id(scope: Scope) -> str | None:
    for name, value in scope.get("headers", ()):
        if name == b"x-request-id":
            candidate = value.decode("latin-1")
            return candidate if _SANE_ID.fullmatch(candidate) else None
    return None


class RequestContextMiddleware:
    """Gives each HTTP request an id (the caller's `X-Request-ID` when it is ≤ 128 characters
    of `[A-Za-z0-9._-]`, else a new one), makes it current for everything the request runs,
    echoes it in the response and logs one access line when the request is done.

    Pure ASGI, not BaseHTTPMiddleware: the response is passed through message by message,
    so streaming bodies stream and background tasks run in the request's context.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        rid = _sane_request_id(scope) or new_request_id()
        token = request_id.set(rid)
        started = time.perf_counter()
        status: int | None = None
        finished: float | None = None

        async def send_with_id(message: Message) -> None:
            nonlocal status, finished
            if message["type"] == "http.response.start":
                status = message["status"]
                message.setdefault("headers", [])
                MutableHeaders(scope=message)[REQUEST_ID_HEADER] = rid
            elif message["type"] == "http.response.body" and not message.get("more_body"):
                finished = time.perf_counter()
            await send(message)

        error: str | None = None
        try:
            await self.app(scope, receive, send_with_id)
        except Exception as exc:
            error = type(exc).__name__  # the traceback is the server's to log
            raise
        finally:
            fields: dict[str, Any] = {
                "method": scope["method"],
                "path": scope["path"],  # not the query string: filters and cursors, long
                "status": 500 if status is None and error else status,
                "duration_ms": round(((finished or time.perf_counter()) - started) * 1000, 2),
            }
            if error is not None:
                fields["error"] = error
            _emit_access(scope["path"], status, error, fields)
            request_id.reset(token)


def _emit_access(path: str, status: int | None, error: str | None, fields: dict[str, Any]) -> None:
    if error is not None:
        level = logging.ERROR
    elif status is None or status >= 500:
        level = logging.WARNING
    elif path in _PROBE_PATHS and status < 400:
        level = logging.DEBUG
    else:
        level = logging.INFO
    _emit(_access, level, "http.request", fields, stacklevel=3)
