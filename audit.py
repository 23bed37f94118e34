"""The audit trail: who opened which page with which filters, and what each export took.

One row per recorded request in `audit_event`, written by an `after_request` hook.
The DuckDB warehouse is an immutable snapshot only the ETL writes, so web workers
cannot append to it: with DuckDB the trail goes to `audit.sqlite` beside the
warehouse file (SQLite in WAL mode takes appends from many processes at once); with
PostgreSQL it goes to the warehouse itself. `BLUELAMP_AUDIT_URL` overrides both.

Requests never wait for the store: events go on an in-process queue that a
background thread writes in batches; a store that is down or slow costs a log line,
not the user's request. `flush()` waits for the queue, for tests and shutdown.
"""

from __future__ import annotations

import atexit
import dataclasses
import datetime as dt
import json
import logging
import os
import queue
import re
import threading
from collections.abc import Callable, Mapping
from urllib.parse import parse_qsl, urlencode

import dash
import pandas as pd
from flask import current_app, g, request
from sqlalchemy import (
    BigInteger,
    Column,
    DateTime,
    Engine,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    create_engine,
    event,
    func,
    inspect,
    select,
)
from sqlalchemy import exc as sa_exc
from sqlalchemy.engine import make_url
from sqlalchemy.schema import CreateIndex, CreateTable
from werkzeug.exceptions import RequestEntityTooLarge

import settings
from dashboards import components
from etl import warehouse

log = logging.getLogger("bluelamp.audit")

OUTCOMES = ("allowed", "refused", "error")
REASON_POLICIES = ("optional", "required")
CALLBACK_PATH = "/_dash-update-component"
# Not recorded unless they fail: static files, Dash's own plumbing, boundary files,
# and /api/freshness, which wall displays poll every few seconds (a row per poll
# would bury the requests that matter).
QUIET_PREFIXES = (
    "/assets/",
    "/_dash-component-suites/",
    "/_dash-layout",
    "/_dash-dependencies",
    "/_favicon",
    "/_reload-hash",
    "/api/freshness",
    "/geo/",
)
# The navbar's "data as at" clock, refreshed every minute on every open page.
QUIET_OUTPUT_PREFIX = "shell-"
SECRET_NAMES = re.compile(
    r"pass(wor)?d|passwd|secret|token|authori[sz]|cookie|api.?key", re.I
)
FILTERS_MAX = 2000
FIRST_YEAR, LAST_YEAR = 2000, 2999  # dates outside these are typing errors
TEXT_MAX = 1000
NAME_MAX = 200
QUEUE_MAX = 10_000
BATCH_MAX = 500
RETRY_MAX_SECONDS = 30

metadata = MetaData()

audit_event = Table(
    "audit_event",
    metadata,
    # INTEGER PRIMARY KEY is SQLite's rowid (auto-numbered); BIGINT would not be.
    Column(
        "id",
        BigInteger().with_variant(Integer, "sqlite"),
        primary_key=True,
        autoincrement=True,
    ),
    Column("at", DateTime, nullable=False),  # UTC, naive, as in the warehouse
    Column("user_name", String(NAME_MAX)),
    Column("role", String(NAME_MAX)),
    Column("method", String(10), nullable=False),
    Column("path", Text, nullable=False),
    Column("page", String(NAME_MAX)),
    Column("callback", Text),  # the callback's outputs, "id.property, ..."
    Column("filters", Text),  # the query string, or the callback's inputs as JSON
    Column("status", Integer, nullable=False),
    Column("outcome", String(10), nullable=False),
    Column("reasons", Text),  # why it was refused (or failed), "; "-separated
    Column("export_chart", String(NAME_MAX)),
    Column("export_rows", BigInteger),
    Column("export_columns", Text),  # column names, comma-separated
    Column("reason_code", String(NAME_MAX)),
    Index("ix_audit_event_at", "at"),
    Index("ix_audit_event_user_name", "user_name", "at"),
)
COLUMNS = [c.name for c in audit_event.columns]
DEFINITIONS = {
    "id": "the event's number, in the order events were written",
    "at": "when the request was answered (UTC)",
    "user_name": "the signed-in user (for a 401, the known user a failed login named)",
    "role": "the user's role at the time",
    "method": "the HTTP method",
    "path": "the URL path asked for (its query string is under filters)",
    "page": "the page the request or callback belongs to",
    "callback": "for a callback, the component properties it was asked to update",
    "filters": "the query string, or a callback's input values (JSON, truncated)",
    "status": "the HTTP status answered",
    "outcome": "allowed, refused (401, 403, an area or export refused) or error",
    "reasons": "why it was refused or failed",
    "export_chart": "for an export, which rows were asked for",
    "export_rows": "for an export, the rows that left",
    "export_columns": "for an export, the names of the columns that left",
    "reason_code": "for an export, the reason code given",
}


class AuditUnavailable(RuntimeError):
    """The audit store cannot be read; the message is fit to show an admin."""


def store_url(audit_url: str, warehouse_url: str) -> str:
    """Where the trail goes: the setting if given, else PostgreSQL's warehouse, else
    `audit.sqlite` beside the DuckDB file (which only the ETL may write)."""
    if audit_url:
        if make_url(audit_url).get_backend_name() == "duckdb":
            raise ValueError(
                "BLUELAMP_AUDIT_URL cannot be DuckDB: it takes one writing process "
                "and every web worker appends; use sqlite:/// or postgresql+psycopg://"
            )
        return audit_url
    if warehouse.is_duckdb(warehouse_url):
        beside = warehouse.duckdb_path(warehouse_url).parent / "audit.sqlite"
        return f"sqlite:///{beside}"
    return warehouse_url


def reason_codes(text: str) -> tuple[str, ...]:
    return tuple(dict.fromkeys(c.strip() for c in text.split(",") if c.strip()))


# ---------------------------------------------------------------------------
# Filters for the admin page and the audit CSV


@dataclasses.dataclass(frozen=True)
class AuditFilters:
    user: str | None = None
    outcome: str | None = None
    page: str | None = None
    start: dt.date | None = None  # local (UK) dates, inclusive
    end: dt.date | None = None
    exports_only: bool = False

    def query_string(self) -> str:
        pairs = [
            (key, value)
            for key, value in [
                ("user", self.user),
                ("outcome", self.outcome),
                ("page", self.page),
                ("from", self.start and self.start.isoformat()),
                ("to", self.end and self.end.isoformat()),
                ("exports", "1" if self.exports_only else None),
            ]
            if value
        ]
        return "?" + urlencode(pairs) if pairs else ""

    def sentence(self) -> str:
        parts = [
            f"user {self.user}" if self.user else "every user",
            f"outcome {self.outcome}" if self.outcome else "every outcome",
            f"page {self.page}" if self.page else "every page",
            f"from {self.start}" if self.start else "",
            f"to {self.end} (inclusive, UK dates)" if self.end else "",
            "exports only" if self.exports_only else "",
        ]
        return ", ".join(p for p in parts if p)


def _arg(args: Mapping, key: str) -> str | None:
    value = args.get(key)
    if isinstance(value, list | tuple):
        value = value[-1] if value else None
    value = None if value is None else str(value).strip()
    return value or None


def parse_filters(args: Mapping) -> tuple[AuditFilters, list[str]]:
    """AuditFilters from query arguments (or the page's controls), and a message for
    each value ignored."""
    problems = []
    outcome = _arg(args, "outcome")
    if outcome is not None and outcome not in OUTCOMES:
        problems.append(f"Unknown outcome {outcome!r}: showing every outcome.")
        outcome = None
    dates = {}
    for key in ("from", "to"):
        value = _arg(args, key)
        try:
            day = dt.date.fromisoformat(value) if value else None
        except ValueError:
            day = dt.date.min
        if day is not None and not FIRST_YEAR <= day.year <= LAST_YEAR:
            problems.append(
                f"{value[:20]!r} is not a date (YYYY-MM-DD, {FIRST_YEAR} to "
                f"{LAST_YEAR}): ignored."
            )
            day = None
        dates[key] = day
    start, end = dates["from"], dates["to"]
    if start and end and start > end:
        start, end = end, start
    exports = _arg(args, "exports")
    filters = AuditFilters(
        user=_arg(args, "user"),
        outcome=outcome,
        page=_arg(args, "page"),
        start=start,
        end=end,
        exports_only=exports not in (None, "0", "false"),
    )
    return filters, problems


def _utc_midnight(day: dt.date) -> dt.datetime:
    local = dt.datetime.combine(day, dt.time(), tzinfo=components.DISPLAY_ZONE)
    return local.astimezone(dt.UTC).replace(tzinfo=None)


def _where(filters: AuditFilters) -> list:
    c = audit_event.c
    clauses = []
    if filters.user:
        clauses.append(c.user_name == filters.user)
    if filters.outcome:
        clauses.append(c.outcome == filters.outcome)
    if filters.page:
        clauses.append(c.page == filters.page)
    if filters.start:
        clauses.append(c.at >= _utc_midnight(filters.start))
    if filters.end:
        clauses.append(c.at < _utc_midnight(filters.end + dt.timedelta(days=1)))
    if filters.exports_only:
        clauses.append(c.export_chart.is_not(None))
    return clauses


# ---------------------------------------------------------------------------
# The store and its writer thread


def _sqlite_pragmas(dbapi_connection, _record):
    cursor = dbapi_connection.cursor()
    # WAL: readers never block the writer, and writers from other processes queue
    # on the lock (busy timeout) rather than fail.
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute("PRAGMA busy_timeout=30000")
    cursor.close()


def _brief(exc: BaseException) -> str:
    """One line about an error, without the SQL statement or its parameters."""
    orig = getattr(exc, "orig", None) or exc
    text = str(orig).strip().splitlines()[0] if str(orig).strip() else ""
    return f"{type(orig).__name__}: {text[:200]}"


def _transient(exc: BaseException) -> bool:
    """Whether writing again later may work (the store is down, locked, or lacks
    the table), rather than this data never fitting."""
    return isinstance(exc, sa_exc.DBAPIError) and not isinstance(
        exc, sa_exc.DataError | sa_exc.IntegrityError
    )


_STOP = object()


class AuditLog:
    """Appends audit events to one store from a background thread, and reads them."""

    def __init__(
        self,
        url: str,
        reason_required: bool = False,
        reason_codes: tuple[str, ...] = (),
    ):
        self.url = url
        self.reason_required = reason_required
        self.reason_codes = tuple(reason_codes)
        self.safe_url = make_url(url).render_as_string(hide_password=True)
        self._lock = threading.Lock()
        self._give_up = threading.Event()
        self._pid = None
        self._engine_: Engine | None = None
        self._table_ready = False
        self._queue: queue.Queue = queue.Queue(QUEUE_MAX)
        self._thread: threading.Thread | None = None
        self._dropped = 0

    # -- the engine and the table ------------------------------------------

    def _engine(self) -> Engine:
        if self._engine_ is None:
            with self._lock:
                if self._engine_ is None:
                    self._engine_ = self._make_engine()
        return self._engine_

    def _make_engine(self) -> Engine:
        if make_url(self.url).get_backend_name() == "sqlite":
            engine = create_engine(
                self.url, connect_args={"timeout": 30, "check_same_thread": False}
            )
            event.listen(engine, "connect", _sqlite_pragmas)
            return engine
        return create_engine(self.url, pool_pre_ping=True)

    def _ensure_table(self) -> None:
        """Create `audit_event` on first use; tolerate another process racing us."""
        if self._table_ready:
            return
        engine = self._engine()
        try:
            with engine.begin() as conn:
                conn.execute(CreateTable(audit_event, if_not_exists=True))
                for index in audit_event.indexes:
                    conn.execute(CreateIndex(index, if_not_exists=True))
        except sa_exc.DBAPIError:
            if not inspect(engine).has_table("audit_event"):
                raise
        self._table_ready = True

    # -- writing -------------------------------------------------------------

    def _check_process(self) -> None:
        # After a fork (gunicorn --preload) the parent's thread and connections are
        # not ours: start afresh in this process.
        pid = os.getpid()
        if self._pid == pid:
            return
        with self._lock:
            if self._pid == pid:
                return
            if self._engine_ is not None:
                self._engine_.dispose(close=False)
                self._engine_ = None
            self._queue = queue.Queue(QUEUE_MAX)
            self._thread = None
            self._pid = pid

    def _ensure_thread(self) -> None:
        self._check_process()
        if self._thread is not None and self._thread.is_alive():
            return
        with self._lock:
            if self._thread is None or not self._thread.is_alive():
                self._give_up.clear()
                self._thread = threading.Thread(
                    target=self._run, name="bluelamp-audit", daemon=True
                )
                self._thread.start()
                atexit.register(self.close)

    def record(self, event_: dict) -> None:
        """Queue one event (a dict of audit_event's columns); never blocks."""
        self._ensure_thread()
        # Every row names every column: a batch insert takes its columns from the
        # first row.
        row = {c: event_.get(c) for c in COLUMNS if c != "id"}
        try:
            self._queue.put_nowait(row)
        except queue.Full:
            self._dropped += 1
            if self._dropped == 1 or self._dropped % 1000 == 0:
                log.error(
                    "audit: queue full (store %s not keeping up): %d event(s) dropped",
                    self.safe_url,
                    self._dropped,
                )

    def flush(self, timeout: float = 10) -> bool:
        """Wait until every event queued so far is written; False if not in time."""
        self._check_process()
        if self._thread is None or not self._thread.is_alive():
            return self._queue.empty()
        done = threading.Event()
        try:
            self._queue.put(done, timeout=timeout)
        except queue.Full:
            return False
        return done.wait(timeout)

    def close(self, timeout: float = 5) -> None:
        """Write what is queued (waiting up to `timeout`), then stop the thread."""
        thread = self._thread
        if thread is None or not thread.is_alive() or self._pid != os.getpid():
            return
        try:
            self._queue.put(_STOP, timeout=timeout)
        except queue.Full:
            pass
        thread.join(timeout)
        if thread.is_alive():
            self._give_up.set()
            thread.join(1)

    def _take(self) -> tuple[list[dict], list[threading.Event], bool]:
        events, waiters, stop = [], [], False
        item = self._queue.get()
        while True:
            if item is _STOP:
                stop = True
            elif isinstance(item, threading.Event):
                waiters.append(item)
            else:
                events.append(item)
            if stop or len(events) >= BATCH_MAX:
                break
            try:
                item = self._queue.get_nowait()
            except queue.Empty:
                break
        return events, waiters, stop

    def _run(self) -> None:
        while True:
            events, waiters, stop = self._take()
            failures = 0
            while events and not self._write(events):
                failures += 1
                if self._give_up.wait(min(RETRY_MAX_SECONDS, 0.5 * 2**failures)):
                    log.error(
                        "audit: %d event(s) lost at shutdown: %s unreachable",
                        len(events),
                        self.safe_url,
                    )
                    break
            for waiter in waiters:
                waiter.set()
            if stop:
                return

    def _write(self, events: list[dict]) -> bool:
        """Insert a batch; True when done (bad rows dropped), False to retry later.

        Leaves in `events` only what still needs writing.
        """
        try:
            self._ensure_table()
            with self._engine().begin() as conn:
                conn.execute(audit_event.insert(), events)
            events.clear()
            return True
        except Exception as exc:  # noqa: BLE001 - whatever it is: log a line
            if _transient(exc):
                self._table_ready = False
                self._log_retry(len(events), exc)
                return False
        # Some row the store refuses: write the others one by one, drop that one.
        while events:
            try:
                with self._engine().begin() as conn:
                    conn.execute(audit_event.insert(), [events[0]])
            except Exception as exc:  # noqa: BLE001
                if _transient(exc):
                    self._log_retry(len(events), exc)
                    return False
                log.error("audit: one event refused by the store (%s)", _brief(exc))
            events.pop(0)
        return True

    def _log_retry(self, count: int, exc: BaseException) -> None:
        log.error(
            "audit: %d event(s) not yet written to %s (%s); will retry",
            count,
            self.safe_url,
            _brief(exc),
        )

    # -- reading ---------------------------------------------------------------

    def _read(self, statement):
        try:
            self._ensure_table()
            with self._engine().connect() as conn:
                result = conn.execute(statement)
                return list(result.keys()), result.fetchall()
        except sa_exc.SQLAlchemyError as exc:
            raise AuditUnavailable(
                f"The audit trail could not be read ({_brief(exc)}); check "
                "BLUELAMP_AUDIT_URL"
            ) from exc

    def events(
        self, filters: AuditFilters = AuditFilters(), limit=None, offset=0
    ) -> pd.DataFrame:
        """Matching events, newest first."""
        statement = (
            select(audit_event)
            .where(*_where(filters))
            .order_by(audit_event.c.at.desc(), audit_event.c.id.desc())
            .offset(offset)
        )
        if limit is not None:
            statement = statement.limit(limit)
        keys, rows = self._read(statement)
        frame = pd.DataFrame(rows, columns=keys)
        if not frame.empty:
            frame["at"] = pd.to_datetime(frame["at"])
        return frame

    def count(self, filters: AuditFilters = AuditFilters()) -> int:
        _keys, rows = self._read(
            select(func.count()).select_from(audit_event).where(*_where(filters))
        )
        return int(rows[0][0])

    def distinct(self, column: str, limit: int = 500) -> list[str]:
        col = audit_event.c[column]
        _keys, rows = self._read(
            select(col).where(col.is_not(None)).distinct().order_by(col).limit(limit)
        )
        return [r[0] for r in rows]


def current() -> AuditLog:
    """The audit log of the running app."""
    return current_app.extensions["bluelamp_audit"]


# ---------------------------------------------------------------------------
# Exports: what a route tells the hook about the rows that left


@dataclasses.dataclass
class Export:
    """One export's bookkeeping: its route fills it in; the hook records it when the
    response has been sent (for a streamed CSV, when its last row has gone)."""

    chart: str
    page: str | None = None
    columns: tuple[str, ...] = ()
    total: int = 0  # rows the export holds
    rows: int = 0  # rows sent so far
    reason: str | None = None
    streamed: bool = False
    _finished: bool = False
    _then: Callable[[], None] | None = None
    _lock: threading.Lock = dataclasses.field(default_factory=threading.Lock)

    def holds(self, frame: pd.DataFrame, streamed: bool = False) -> None:
        self.columns = tuple(str(c) for c in frame.columns)
        self.total = len(frame)
        self.streamed = streamed
        if not streamed:
            self.rows = self.total

    def finish(self) -> None:
        """The stream ended (all sent, or the client went away): record it now."""
        with self._lock:
            if self._finished:
                return
            self._finished = True
            then = self._then
        if then is not None:
            then()

    def _when_finished(self, fn: Callable[[], None]) -> None:
        with self._lock:
            if not self._finished:
                self._then = fn
                return
        fn()

    def fields(self) -> dict:
        return {
            "export_chart": self.chart,
            "export_rows": self.rows,
            "export_columns": ",".join(self.columns) or None,
            "reason_code": self.reason,
        }


def note_export(chart: str, page: str | None = None) -> Export:
    """Tell the audit trail this request is an export (call before any check, so a
    refused one is recorded as an export too)."""
    export = Export(chart=chart, page=page)
    g.bluelamp_export = export
    return export


# ---------------------------------------------------------------------------
# The after_request hook


def _clean(value, limit: int) -> str | None:
    """Text a store will take: valid UTF-8, no NUL, at most `limit` characters."""
    if value is None:
        return None
    text = str(value).replace("\x00", "\ufffd")
    text = text.encode("utf-8", "replace").decode("utf-8")
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _clip(value, depth: int = 0):
    """A bounded copy of a callback value: long strings and lists cut short."""
    if isinstance(value, str):
        return value if len(value) <= 200 else value[:200] + "…"
    if depth >= 3 and isinstance(value, list | dict):
        return "…"
    if isinstance(value, list):
        clipped = [_clip(v, depth + 1) for v in value[:20]]
        return clipped + ["…"] if len(value) > 20 else clipped
    if isinstance(value, dict):
        items = list(value.items())
        clipped = {str(k): _clip(v, depth + 1) for k, v in items[:20]}
        if len(items) > 20:
            clipped["…"] = f"{len(items) - 20} more"
        return clipped
    return value if isinstance(value, int | float | bool) or value is None else "…"


def _id_text(component_id) -> str:
    if isinstance(component_id, dict):
        return json.dumps(component_id, sort_keys=True, default=str)
    return str(component_id)


def _flat(items) -> list[dict]:
    out = []
    for item in items if isinstance(items, list) else []:
        if isinstance(item, dict):
            out.append(item)
        elif isinstance(item, list):  # a pattern-matching ALL input
            out.extend(i for i in item if isinstance(i, dict))
    return out


def _outputs(body: dict) -> list[str]:
    outputs = body.get("outputs")
    outputs = outputs if isinstance(outputs, list) else [outputs]
    return [f"{_id_text(o.get('id'))}.{o.get('property')}" for o in _flat(outputs)]


def _callback_filters(body: dict) -> str:
    values = {}
    for item in _flat(body.get("inputs")) + _flat(body.get("state")):
        key = f"{_id_text(item.get('id'))}.{item.get('property')}"
        values[key] = (
            "[redacted]" if SECRET_NAMES.search(key) else _clip(item.get("value"))
        )
    return json.dumps(values, default=str, ensure_ascii=False)


def _query_filters() -> str | None:
    text = request.query_string.decode("utf-8", "replace")
    if not text:
        return None
    pairs = parse_qsl(text, keep_blank_values=True)
    if any(SECRET_NAMES.search(k) for k, _v in pairs):
        text = urlencode(
            [(k, "[redacted]" if SECRET_NAMES.search(k) else v) for k, v in pairs],
            safe="[]",
        )
    return text


def _page_path(path: str) -> str | None:
    path = path.rstrip("/") or "/"
    return next(
        (p["path"] for p in dash.page_registry.values() if p["path"] == path), None
    )


def _export_from_path(path: str) -> Export | None:
    """An export refused before its route ran (so never noted): named from its URL,
    `/export/crime/types.csv` -> crime/types of /crime."""
    if not path.startswith("/export/"):
        return None
    chart = path.removeprefix("/export/").rsplit(".", 1)[0]
    return Export(chart=chart, page=_page_path("/" + chart.split("/", 1)[0]))


def _outcome(status: int, reasons: list[str]) -> str:
    if status >= 500:
        return "error"
    if reasons or status in (401, 403):
        return "refused"
    return "error" if status >= 400 else "allowed"


def _event(response, pages_of_callback) -> tuple[dict, Export | None] | None:
    """The audit row for this request, or None when it is not one to record."""
    status = response.status_code
    path, method = request.path, request.method
    export = g.get("bluelamp_export") or _export_from_path(path)
    body = None
    if path == CALLBACK_PATH and method == "POST":
        try:
            body = request.get_json(silent=True)
        except (RequestEntityTooLarge, RecursionError):
            # Over the size limit, or nested too deep to parse: record the refusal
            # without the body.
            body = None
        body = body if isinstance(body, dict) else {}
    if 300 <= status < 400:
        return None  # a redirect (to log in, or a trailing slash) shows nothing
    if status < 400 and export is None:
        if path.startswith(QUIET_PREFIXES):
            return None
        if body is not None:
            outputs = _outputs(body)
            if outputs and all(o.startswith(QUIET_OUTPUT_PREFIX) for o in outputs):
                return None
        elif not (method == "GET" and _page_path(path)):
            return None
    identity = components.current_identity()
    reasons = list(dict.fromkeys(g.get("bluelamp_refusals", [])))
    if status == 401 and not reasons:
        reasons.append("no valid login")
    elif status == 403 and not reasons:
        reasons.append("forbidden")
    if body is not None:
        pages = pages_of_callback(body) if pages_of_callback else []
        page = ", ".join(dict.fromkeys(p["path"] for p in pages)) or None
        callback, filters = ", ".join(_outputs(body)), _callback_filters(body)
    else:
        page = export.page if export is not None else _page_path(path)
        callback, filters = None, _query_filters()
    row = {
        "at": components.utcnow(),
        "user_name": identity.name if identity else None,
        "role": identity.role if identity else None,
        "method": method[:10],
        "path": path,
        "page": page,
        "callback": callback,
        "filters": filters,
        "status": status,
        "outcome": _outcome(status, reasons),
        "reasons": "; ".join(reasons) or None,
    }
    return row, export


def _store(row: dict, export: Export | None, trail: AuditLog) -> None:
    row = dict(row)
    if export is not None:
        row.update(export.fields())
        if export.streamed and export.rows < export.total:
            row["outcome"] = "error"
            ended = f"download ended after {export.rows:,} of {export.total:,} rows"
            row["reasons"] = "; ".join(r for r in [row["reasons"], ended] if r)
    limits = {"filters": FILTERS_MAX, "user_name": NAME_MAX, "role": NAME_MAX}
    limits.update(page=NAME_MAX, export_chart=NAME_MAX, reason_code=NAME_MAX)
    for key, value in row.items():
        if isinstance(value, str):
            row[key] = _clean(value, limits.get(key, TEXT_MAX))
    trail.record(row)


def install(server, env: Mapping[str, str], pages_of_callback=None) -> AuditLog:
    """Record requests to `server` in the audit store named by the settings.

    `pages_of_callback(body)` names the pages a callback request belongs to.
    """
    policy = settings.get("BLUELAMP_EXPORT_REASON", env)
    if policy not in REASON_POLICIES:
        raise ValueError(
            f"BLUELAMP_EXPORT_REASON is {policy!r}; use one of {REASON_POLICIES}"
        )
    codes = reason_codes(settings.get("BLUELAMP_EXPORT_REASON_CODES", env))
    if not codes:
        raise ValueError("BLUELAMP_EXPORT_REASON_CODES names no reason codes")
    trail = AuditLog(
        store_url(
            settings.get("BLUELAMP_AUDIT_URL", env),
            settings.get("BLUELAMP_WAREHOUSE_URL", env),
        ),
        reason_required=policy == "required",
        reason_codes=codes,
    )
    server.extensions["bluelamp_audit"] = trail

    def record_request(response):
        try:
            found = _event(response, pages_of_callback)
            if found is None:
                return response
            row, export = found
            trail_now = current()  # tests may swap the log while the app runs
            if export is not None and export.streamed:
                response.call_on_close(export.finish)
                export._when_finished(lambda: _store(row, export, trail_now))
            else:
                _store(row, export, trail_now)
        except Exception as exc:  # noqa: BLE001 - auditing must not fail a request
            log.error(
                "audit: could not record %s %s (%s)",
                request.method,
                request.path,
                _brief(exc),
            )
        return response

    server.after_request(record_request)
    return trail
