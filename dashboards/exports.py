"""The crime page's query string, its CSV and heat-map exports, and its boundary files.

The page and its exports read one query string (`Selection`), so a CSV downloaded
from a chart holds exactly the rows the chart drew, for exactly the same filters.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import html
import re
from collections.abc import Iterable, Iterator, Mapping
from urllib.parse import parse_qs, urlencode

import pandas as pd
from flask import (
    Blueprint,
    Response,
    abort,
    g,
    has_app_context,
    has_request_context,
    request,
    stream_with_context,
)

import accounts
import audit
import settings
from dashboards import components, disclosure
from etl import warehouse
from geo import boundaries, heatmap
from queries import crime, incidents, scope

blueprint = Blueprint("crime_exports", __name__)

DEFAULT_PERIOD = "rolling-12"
MONTH_RE = re.compile(r"^\d{4}-(0[1-9]|1[0-2])$", re.ASCII)
# Hostile input: a parameter value longer than this, or holding control characters,
# is dropped with a message; a multi-valued one keeps its first MAX_VALUES.
MAX_VALUE_CHARS = 200
MAX_VALUES = 50
SHOWN_CHARS = 40
CONTROL_RE = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029]")
# An area code as dim_area holds them: ONS codes and force slugs.
AREA_CODE_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9 _.'&()-]{0,99}$", re.ASCII)
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")
CSV_CHUNK_ROWS = 20_000
CHARTS = {
    "kpis": "Headline figures (KPI cards)",
    "areas": "Crimes by area at the map's level (map and ranking table)",
    "trend": "Crimes by month with c-chart limits (trend chart)",
    "types": "Crimes by crime type (crime type chart)",
    "outcomes": "Crimes by outcome group, cohort basis (outcome chart)",
    "points": "Crimes with coordinates (the rows behind the hot-spot map)",
}
DEFINITIONS = {
    "crimes": "recorded crimes in the period (police.uk street-level data; "
    "anti-social behaviour excluded)",
    "crimes_last_year": "recorded crimes in the same months one year earlier",
    "z": "Poisson z = 2 * (sqrt(crimes) - sqrt(crimes_last_year))",
    "significance": "signal if |z| >= 3, watch if 1.96 <= |z| < 3, otherwise noise "
    "(Wheeler 2018)",
    "population": "Census 2021 usual residents of the area's LSOAs",
    "rate_per_1000": "crimes per 1,000 usual residents; residents are a poor "
    "denominator where few people live but many visit (city centres)",
    "harm_days": "Cambridge Crime Harm Index style: the sum of each crime type's "
    "harm weight in days of imprisonment",
    "asb": "anti-social behaviour incidents in the period (not recorded crime)",
    "asb_last_year": "anti-social behaviour incidents a year earlier",
    "unplaced": "crimes in the force's data that could not be placed in an LSOA "
    "(counted at force level only)",
    "share": "share of the period's crimes in this outcome group, by their latest "
    "outcome so far (cohort basis); awaiting outcome = no final outcome yet",
    "centre": "c-chart centre line: mean monthly crimes in the period",
    "lower": "c-chart lower limit: centre - 3 * sqrt(centre), not below 0",
    "upper": "c-chart upper limit: centre + 3 * sqrt(centre)",
    "outside": "true where the month lies outside the control limits",
}


@dataclasses.dataclass(frozen=True)
class Selection:
    """Every filter and the drill level, as the URL's query string holds them."""

    period: str = DEFAULT_PERIOD
    start: str | None = None  # YYYY-MM, custom period only
    end: str | None = None
    types: tuple[str, ...] = ()
    level: str = "force"
    area: str | None = None
    measure: str = "count"

    def query_string(self) -> str:
        """`?key=value...` naming only what differs from the defaults, or ""."""
        pairs = []
        if self.period != DEFAULT_PERIOD:
            pairs.append(("period", self.period))
        if self.period == "custom":
            pairs += [("from", m) for m in [self.start] if m]
            pairs += [("to", m) for m in [self.end] if m]
        pairs += [("type", t) for t in self.types]
        if self.area:
            pairs += [("level", self.level), ("area", self.area)]
        if self.measure != "count":
            pairs.append(("measure", self.measure))
        return "?" + urlencode(pairs) if pairs else ""

    def replace(self, **changes) -> Selection:
        return dataclasses.replace(self, **changes)

    @property
    def map_level(self) -> str:
        """The level the map and ranking show: the chosen area's children (or the
        area itself at the lowest level); the forces when none is chosen."""
        if self.area is None:
            return "force"
        return crime.CHILD_LEVEL[self.level] or self.level


def _one(value) -> str | None:
    if isinstance(value, list):
        value = value[-1] if value else None
    return None if value in (None, "") else str(value)


def _many(value) -> tuple[str, ...]:
    values = value if isinstance(value, list) else [value]
    return tuple(dict.fromkeys(str(v) for v in values if v not in (None, "")))


def _shown(value) -> str:
    """A value quoted for a message: control characters escaped, a long one cut."""
    text = str(value)
    return repr(text if len(text) <= SHOWN_CHARS else text[:SHOWN_CHARS] + "...")


def _checked_args(
    args: Mapping, single: tuple[str, ...], multi: tuple[str, ...], problems: list
) -> dict:
    """The known parameters, each value a str (a list for `multi` ones): a value too
    long or holding control characters is dropped, a repeated single one is cut to
    its last, and each says so in `problems`. Unknown parameters are left alone."""
    clean = {}
    for key in (*single, *multi):
        raw = args.get(key)
        raw = raw if isinstance(raw, list) else [raw]
        values = [str(v) for v in raw if v is not None and str(v) != ""]
        if key in single and len(values) > 1:
            problems.append(
                f"Parameter {key!r} is given {len(values)} times: using the last."
            )
            values = values[-1:]
        if len(values) > MAX_VALUES:
            problems.append(
                f"Parameter {key!r} is given {len(values):,} times: using the first "
                f"{MAX_VALUES}."
            )
            values = values[:MAX_VALUES]
        kept = []
        for value in values:
            if CONTROL_RE.search(value):
                problems.append(f"Parameter {key!r} holds control characters: ignored.")
            elif len(value) > MAX_VALUE_CHARS:
                problems.append(
                    f"Parameter {key!r} is {len(value):,} characters long (at most "
                    f"{MAX_VALUE_CHARS}): ignored."
                )
            else:
                kept.append(value)
        if kept:
            clean[key] = kept if key in multi else kept[-1]
    return clean


def _is_month(value: str) -> bool:
    if not MONTH_RE.match(value):
        return False
    try:
        dt.datetime.strptime(value, "%Y-%m")
    except ValueError:  # year 0000
        return False
    return True


def parse_selection(args: Mapping) -> tuple[Selection, list[str]]:
    """A Selection from query arguments, and a message for each value ignored."""
    problems = []
    args = _checked_args(
        args, ("period", "from", "to", "measure", "level", "area"), ("type",), problems
    )
    period = _one(args.get("period")) or DEFAULT_PERIOD
    if period not in crime.PRESETS:
        problems.append(f"Unknown period {_shown(period)}: showing rolling 12 months.")
        period = DEFAULT_PERIOD
    months = {}
    for key in ("from", "to"):
        value = _one(args.get(key))
        if value is not None and not _is_month(value):
            problems.append(f"{_shown(value)} is not a month (YYYY-MM): ignored.")
            value = None
        months[key] = value if period == "custom" else None
    measure = _one(args.get("measure")) or "count"
    if measure not in crime.MEASURES:
        problems.append(f"Unknown measure {_shown(measure)}: showing counts.")
        measure = "count"
    level, area = _checked_level_area(args, problems)
    selection = Selection(
        period=period,
        start=months["from"],
        end=months["to"],
        types=_many(args.get("type")),
        level=level,
        area=area,
        measure=measure,
    )
    return selection, problems


@dataclasses.dataclass(frozen=True)
class Resolved:
    """A Selection checked against the warehouse and turned into query filters."""

    selection: Selection
    filters: crime.CrimeFilters
    sentence: str
    path: tuple[dict, ...]  # force down to the chosen area; () for all forces
    problems: tuple[str, ...]
    # The problems that are invalid parameters (not a scope notice): an export with
    # any answers 400 rather than export other rows than asked for.
    invalid: tuple[str, ...] = ()

    @property
    def map_level(self) -> str:
        return self.selection.map_level

    @property
    def force_code(self) -> str:
        return self.path[0]["area_code"] if self.path else boundaries.ALL_FORCES


def _checked_area(selection, problems: list[str], query):
    """The chosen area's breadcrumb; an unknown area falls back to all forces (or a
    user's own areas), with a message, so a bad URL shows a page, not an error.

    With no area chosen, a user limited to one area opens on it. The queries
    themselves keep a scoped user inside their areas (queries.scope); an area outside
    them is refused here only to say so, and recorded in the audit trail.
    """
    identity = components.current_identity()
    if selection.area is None:
        if not scope.restricted() or identity is None or len(identity.areas) != 1:
            return selection, ()
        home = identity.areas[0]
        level = query(crime.area_level, home)
        if level is None:
            return selection, ()
        selection = selection.replace(level=level, area=home)
    path = tuple(query(crime.area_path, selection.level, selection.area))
    if not path:
        if scope.restricted():
            problems.append(
                f"{selection.level} {selection.area!r} is not one of your areas: "
                "showing your areas."
            )
            components.record_refusal(
                f"area outside scope: {selection.level} {selection.area}"
            )
        else:
            problems.append(
                f"No {selection.level} area with code {selection.area!r}: "
                "showing all forces."
            )
        selection = selection.replace(level="force", area=None)
    return selection, path


def resolve(selection: Selection, problems=(), query=None) -> Resolved:
    """Check the selection's area, crime types and months against the data; drop
    what is unknown, with a message, rather than fail."""
    query = query or components.cached_query
    problems = list(problems)
    months = query(crime.months_available)["month"]
    try:
        start, end, sentence = crime.resolve_period(
            selection.period, months, selection.start, selection.end
        )
    except ValueError as exc:
        raise components.NoData(f"No crime data to show: {exc}") from exc
    if selection.period == "custom" and len(months):
        held = sorted(pd.Timestamp(m) for m in months)
        problems += _range_problems(
            selection.start,
            selection.end,
            f"{held[0]:%Y-%m}",
            f"{held[-1]:%Y-%m}",
            f"{start:%Y-%m} to {end:%Y-%m}",
            "months",
        )
    known = set(query(crime.crime_type_tree)["crime_type"])
    unknown = [t for t in selection.types if t not in known]
    if unknown:
        shown = ", ".join(_shown(t) for t in unknown[:5])
        more = f" and {len(unknown) - 5:,} more" if len(unknown) > 5 else ""
        problems.append(f"Unknown crime type(s) ignored: {shown}{more}.")
        selection = selection.replace(
            types=tuple(t for t in selection.types if t in known)
        )
    selection, path, invalid = _checked_area_noting(selection, problems, query)
    filters = crime.CrimeFilters(
        start_month=start,
        end_month=end,
        crime_types=selection.types,
        area_level=selection.level,
        area_code=selection.area,
    )
    return Resolved(
        selection, filters, sentence, path, tuple(problems), invalid=invalid
    )


def _checked_level_area(args: Mapping, problems: list) -> tuple[str, str | None]:
    """The level and area code asked for: an unknown level, or a value that cannot
    be an area code (SQL, markup, a sentence), falls back to all forces."""
    level, area = _one(args.get("level")) or "force", _one(args.get("area"))
    if level not in crime.LEVELS:
        problems.append(f"Unknown area level {_shown(level)}: showing all forces.")
        level, area = "force", None
    if area is not None and not AREA_CODE_RE.match(area):
        problems.append(f"{_shown(area)} is not an area code: showing all forces.")
        area = None
    return ("force", None) if area is None else (level, area)


def _range_problems(asked_from, asked_to, first: str, last: str, shown, unit):
    """A message when a custom range was turned round, or cut to the data held;
    `first` and `last` are formatted as the asked values are, so compare as text."""
    if asked_from and asked_to and asked_from > asked_to:
        return [f"From {asked_from} is after to {asked_to}: showing {shown}."]
    if (asked_from and asked_from < first) or (asked_to and asked_to > last):
        lo, hi = asked_from or first, asked_to or last
        return [
            f"The {unit} {lo} to {hi} reach beyond the data held ({first} to "
            f"{last}): showing {shown}."
        ]
    return []


def _checked_area_noting(selection, problems: list[str], query):
    """`_checked_area`, and the problems so far that are invalid parameters (not a
    scope notice), each recorded as a refusal for the audit trail."""
    before = len(problems)
    selection, path = _checked_area(selection, problems, query)
    # A scoped user's area outside their scope is recorded by _checked_area; the
    # page (and an export) shows their own areas and says so.
    invalid = problems if not scope.restricted() else problems[:before]
    for problem in invalid:
        components.record_refusal(f"invalid filter: {problem}")
    return selection, path, tuple(invalid)


def query_args(search: str | None) -> dict:
    """`?a=1&t=x&t=y` as Dash Pages passes it to a layout: {"a": "1", "t": [...]}."""
    parsed = parse_qs(_text(search).lstrip("?"))
    return {k: v[0] if len(v) == 1 else v for k, v in parsed.items()}


def _text(search) -> str:
    # A crafted callback can send anything where a page keeps its query string.
    return search if isinstance(search, str) else ""


def resolve_query_string(search: str | None, query=None) -> Resolved:
    """`resolve` of a query string, once per request (an export checks it first)."""
    search = _text(search)
    return _once_per_request(
        ("crime", search),
        query,
        lambda: resolve(*parse_selection(query_args(search)), query),
    )


def _once_per_request(key, query, make):
    # Resolving records refusals: an export checked before its route runs must not
    # record them twice. Only the default (cached) query is remembered.
    if query is not None or not has_request_context():
        return make()
    memo = g.setdefault("bluelamp_resolved", {})
    if key not in memo:
        memo[key] = make()
    return memo[key]


# ---------------------------------------------------------------------------
# The rows behind each chart


def chart_frame(chart: str, resolved: Resolved, query=None) -> pd.DataFrame:
    """Exactly the rows a chart draws; the page calls this too. For a role under
    disclosure control, small counts are blanked and marked (dashboards/disclosure)."""
    query = query or components.cached_query
    f = resolved.filters
    threshold = suppression_threshold()
    if chart == "points":
        if threshold:
            # One row per crime: no count to blank, every small one recoverable.
            components.record_refusal("crime points withheld by disclosure control")
            abort(
                Response(
                    "Forbidden: single crimes are not available to your role, for "
                    f"which counts under {threshold} are suppressed",
                    403,
                    mimetype="text/plain",
                )
            )
        # Not cached: hundreds of thousands of rows, asked for rarely.
        return components.query(crime.crime_points, f)
    if chart == "kpis":
        frame = pd.DataFrame([query(crime.kpis, f)])
    elif chart == "areas":
        frame = query(crime.by_area, f, resolved.map_level)
    elif chart == "trend":
        frame = query(crime.monthly, f)
    elif chart == "types":
        frame = query(crime.by_type, f)
    elif chart == "outcomes":
        frame = query(crime.outcome_groups, f)
    else:
        raise KeyError(chart)
    frame = disclosure.suppress(frame, disclosure.CRIME_RULES[chart], threshold)
    if chart == "areas":
        # Blanked rows sort last, so their place in the ranking says nothing.
        frame = frame.sort_values(
            ["rate_per_1000", "crimes"], ascending=False, na_position="last"
        ).reset_index(drop=True)
    return frame


def suppression_threshold() -> int:
    """Counts below this are suppressed for this request's role; 0: none are."""
    if not has_app_context():
        return 0
    policy = getattr(components.runtime(), "disclosure", None)
    return policy.threshold_for(components.current_role()) if policy else 0


# ---------------------------------------------------------------------------
# CSV formatting (pure)


def neutralise(value):
    """A text cell a spreadsheet would run as a formula, prefixed with a quote."""
    if isinstance(value, str) and value.startswith(FORMULA_STARTS):
        return "'" + value
    return value


def _neutralised(frame: pd.DataFrame) -> pd.DataFrame:
    out = frame.copy()
    for column in out.columns:
        if not (
            pd.api.types.is_numeric_dtype(out[column])
            or pd.api.types.is_bool_dtype(out[column])
        ):
            out[column] = out[column].map(neutralise, na_action="ignore")
    out.columns = [neutralise(str(c)) for c in out.columns]
    return out


def header_lines(items: Iterable[tuple[str, str]]) -> list[str]:
    """`# name: value` lines; line breaks in values flattened so none escapes."""
    return [
        "# " + re.sub(r"[\r\n]+", " ", f"{name}: {value}") + "\n"
        for name, value in items
    ]


def csv_chunks(
    frame: pd.DataFrame, header: Iterable[tuple[str, str]], chunk_rows=CSV_CHUNK_ROWS
) -> Iterator[str]:
    """The header block, the column names, then every row, in pieces to stream."""
    note = disclosure.header_note(frame)
    header = [*header, ("Disclosure control", note)] if note else header
    yield "".join(header_lines(header))
    safe = _neutralised(disclosure.for_csv(frame))
    yield safe.iloc[:0].to_csv(index=False, lineterminator="\n")
    for start in range(0, len(safe), chunk_rows):
        yield safe.iloc[start : start + chunk_rows].to_csv(
            index=False, header=False, lineterminator="\n"
        )


def _area_label(path) -> str:
    """An export header's area: its breadcrumb, force first."""
    parts = [f"{p['area_name']} ({p['level']} {p['area_code']})" for p in path]
    return " > ".join(parts) or "all forces"


def describe(resolved: Resolved, chart: str, run_id, now: dt.datetime):
    """The header block's (name, value) pairs for one export."""
    f, selection = resolved.filters, resolved.selection
    area = _area_label(resolved.path)
    items = [
        ("Bluelamp crime export", f"{chart}: {CHARTS[chart]}"),
        ("Period", resolved.sentence),
        ("Months", f"{f.start_month:%Y-%m} to {f.end_month:%Y-%m} (inclusive)"),
        ("Crime types", ", ".join(f.crime_types) or "all recorded crime types"),
        ("Area", area),
        ("Measure", selection.measure),
        ("Query", selection.query_string() or "(defaults)"),
    ]
    items += [(f"Definition of {c}", d) for c, d in DEFINITIONS.items()]
    items += [
        ("Extracted at (UTC)", now.strftime("%Y-%m-%dT%H:%M:%SZ")),
        ("ETL run id", str(run_id)),
    ]
    items += [("Note", p) for p in resolved.problems]
    return items


# ---------------------------------------------------------------------------
# Routes


def _role_may(export: bool) -> None:
    role = components.current_role()
    if not accounts.may_see(role, "/crime") or (
        export and not accounts.may_export(role)
    ):
        abort(Response("Forbidden: your role may not export this data", 403))


def _resolved_from_request() -> Resolved:
    return resolve_query_string(request.query_string.decode("utf-8", "replace"))


# Export routes whose query string is a page's filters, and that page.
_FILTERED_EXPORTS = {
    "crime_exports.export_csv": "/crime",
    "crime_exports.export_hotspots": "/crime",
    "crime_exports.export_incidents_csv": "/incidents",
}


_PAGE_FALLBACK = re.compile(r": showing [^.]*\.$")


@blueprint.before_request
def _refuse_invalid_filters():
    """An export never falls back: where the page drops or replaces a filter value
    (with a message), its export answers 400 with the messages, rather than hand
    over other rows than were asked for. Runs before the routes; a role that may not
    export is left to them (403)."""
    page = _FILTERED_EXPORTS.get(request.endpoint)
    role = components.current_role()
    if page is None or not (accounts.may_see(role, page) and accounts.may_export(role)):
        return None
    search = request.query_string.decode("utf-8", "replace")
    try:
        if page == "/crime":
            resolved = resolve_query_string(search)
        else:
            resolved = resolve_incident_query_string(search)
    except components.NoData:
        return None  # the route says so (503)
    if not resolved.invalid:
        return None
    # The page's fallback ("showing all forces") does not apply: nothing is exported.
    problems = [_PAGE_FALLBACK.sub(".", p) for p in resolved.invalid]
    lines = "".join(f"- {p}\n" for p in problems)
    return Response(
        "Bad request: this export's filters are not valid, so nothing was "
        f"exported:\n{lines}",
        400,
        mimetype="text/plain",
    )


def _export_gate(page: str, chart: str, charts: Mapping) -> audit.Export:
    """Note the export for the audit trail, then refuse it (403, 404, or a page
    asking for a reason code) unless the user's role may take it."""
    export = audit.note_export(f"{page.strip('/')}/{chart}", page=page)
    role = components.current_role()
    if not accounts.may_see(role, page) or not accounts.may_export(role):
        components.record_refusal(f"role {role} may not export from {page}")
        abort(Response("Forbidden: your role may not export this data", 403))
    if chart not in charts:
        abort(404)
    export.reason = _reason_code()
    return export


def _reason_code() -> str | None:
    """The request's valid `?reason=` code (None when optional and not given); else
    answer with a page asking for one."""
    trail = audit.current()
    given = request.args.get("reason", "").strip() or None
    if given in trail.reason_codes or (given is None and not trail.reason_required):
        return given
    components.record_refusal(
        "export reason code missing" if given is None else "unknown export reason code"
    )
    problem = (
        "This export needs a reason code."
        if given is None
        else "That reason code is not one of the list."
    )
    abort(_reason_page(problem, trail))


def _reason_page(problem: str, trail: audit.AuditLog) -> Response:
    """A small same-origin form: pick a reason code, and the same request is sent
    again with `&reason=`."""
    esc = html.escape
    hidden = "".join(
        f'<input type="hidden" name="{esc(k)}" value="{esc(v)}">'
        for k, v in request.args.items(multi=True)
        if k != "reason"
    )
    options = "" if trail.reason_required else '<option value="">(none)</option>'
    options += "".join(
        f'<option value="{esc(c)}">{esc(c)}</option>' for c in trail.reason_codes
    )
    required = " required" if trail.reason_required else ""
    page = f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>Reason for this export - Bluelamp</title>
<link rel="stylesheet" href="/assets/vendor/bootstrap.min.css"></head>
<body class="container py-4">
<h1 class="h3">Why are you exporting this data?</h1>
<p>{esc(problem)} It is recorded in the audit trail with the rows you take.</p>
<form method="get" action="{esc(request.path)}">{hidden}
<label class="form-label" for="reason">Reason code</label>
<select class="form-select mb-3" id="reason" name="reason"{required}>{options}</select>
<button class="btn btn-primary" type="submit">Download</button>
</form></body></html>
"""
    return Response(page, 400, mimetype="text/html")


def _csv_response(
    frame: pd.DataFrame, header: list, export: audit.Export, name: str
) -> Response:
    """Stream a CSV, counting the rows that leave for the audit trail."""
    export.holds(frame, streamed=True)
    if export.reason:
        header = [*header, ("Reason code", export.reason)]

    def counted():
        try:
            pieces = csv_chunks(frame, header, chunk_rows=CSV_CHUNK_ROWS)
            for number, piece in enumerate(pieces):
                yield piece
                if number >= 2:  # after the header block and the column names
                    export.rows = min(export.total, export.rows + CSV_CHUNK_ROWS)
        finally:
            export.finish()

    return Response(
        stream_with_context(counted()),
        mimetype="text/csv",
        headers={"Content-Disposition": f'attachment; filename="{name}"'},
    )


@blueprint.route("/export/crime/<chart>.csv")
def export_csv(chart: str):
    export = _export_gate("/crime", chart, CHARTS)
    try:
        resolved = _resolved_from_request()
        frame = chart_frame(chart, resolved)
        run_id = components.query(warehouse.latest_run_id)
    except components.NoData as exc:
        return Response(str(exc), 503, mimetype="text/plain")
    now = components.utcnow()
    name = f"bluelamp-crime-{chart}-{now:%Y%m%dT%H%M%SZ}.csv"
    return _csv_response(frame, describe(resolved, chart, run_id, now), export, name)


@blueprint.route("/export/crime/hotspots.html")
def export_hotspots():
    export = _export_gate("/crime", "hotspots", {"hotspots": "hot-spot map"})
    try:
        resolved = _resolved_from_request()
        points = chart_frame("points", resolved)
    except components.NoData as exc:
        return Response(str(exc), 503, mimetype="text/plain")
    area = " > ".join(p["area_name"] for p in resolved.path) or "All forces"
    types = ", ".join(resolved.filters.crime_types) or "all recorded crime types"
    page = heatmap.heatmap_html(
        points,
        tile_url=settings.get("BLUELAMP_TILE_URL"),
        title=f"Crime hot spots: {area}",
        notes=(resolved.sentence, f"Crime types: {types}"),
    )
    export.holds(points[["latitude", "longitude"]])  # all the map embeds
    now = components.utcnow()
    return Response(
        page,
        mimetype="text/html",
        headers={
            "Content-Disposition": 'attachment; filename="bluelamp-crime-hotspots-'
            f'{now:%Y%m%dT%H%M%SZ}.html"'
        },
    )


@blueprint.route("/geo/crime/<int:run_id>/<force_code>/<level>.geojson")
def boundary_file(run_id: int, force_code: str, level: str):
    """A simplified boundary layer; the run id in the URL makes it safe to cache."""
    _role_may(export=False)
    if level not in crime.LEVELS:
        abort(404)
    try:
        layer = components.query(boundaries.layer, run_id, level, force_code)
    except components.NoData as exc:
        return Response(str(exc), 503, mimetype="text/plain")
    return Response(
        layer.geojson,
        mimetype="application/geo+json",
        headers={"Cache-Control": "private, max-age=86400"},
    )


def boundary_url(run_id: int, resolved: Resolved) -> str:
    return f"/geo/crime/{run_id}/{resolved.force_code}/{resolved.map_level}.geojson"


def layer_for(resolved: Resolved) -> tuple[str, boundaries.Layer]:
    run_id = components.query(warehouse.latest_run_id)
    layer = components.query(
        boundaries.layer, run_id, resolved.map_level, resolved.force_code
    )
    return boundary_url(run_id, resolved), layer


# ---------------------------------------------------------------------------
# Incidents: the /incidents page's query string, the rows behind its charts, CSVs
#
# As for crime, the page and its exports read one query string
# (`IncidentSelection`), so a CSV holds exactly what the chart drew. Periods are
# dates, resolved against the dates the chosen source holds, so a source whose
# export ended years ago still shows its latest 28 days rather than nothing.

INCIDENT_PERIODS = {
    "last-28-days": "Last 28 days",
    "last-month": "Last month",
    "rolling-12": "Rolling 12 months",
    "fytd": "Financial year to date",
    "custom": "Custom dates",
}
INCIDENT_DEFAULT_PERIOD = "last-28-days"
INCIDENT_MEASURES = {
    "share": "Share attended within target",
    "median": "Median time to attend (min)",
}
INCIDENT_DEFAULT_MARGIN = 5
DATE_RE = re.compile(r"^\d{4}-\d{2}-\d{2}$", re.ASCII)
MARGIN_RE = re.compile(r"^[0-9]{1,4}$")
GRADE_RE = re.compile(r"^[A-Za-z0-9]{1,8}$")
CELL_RE = re.compile(r"^([0-6])-([0-9]|1[0-9]|2[0-3])$")
INCIDENT_CHARTS = {
    "grades": "Attendance by final grade (KPI cards and grade table)",
    "calls": "999 and 101 call answering (KPI cards)",
    "regrade": "Re-grade rate (KPI card)",
    "queue": "Open queue by grade, as at the period's end (KPI card)",
    "areas": "Attendance by area at the map's level (map and area table)",
    "trend": "Weekly share within target with p-chart limits (trend chart)",
    "hours": "Attendance by hour of the week (heat map)",
    "cell": "The incidents in the chosen hour-of-week cell (incident list)",
    "timeline": "The chosen incident's lifecycle steps (timeline)",
    "exceptions": "Incidents that missed their target by more than the margin",
    "open": "Incidents still open past their target, as at the period's end",
}
INCIDENT_DEFINITIONS = {
    "final_grade": "the incident's final grade: an incident upgraded from 2 to 1 "
    "counts as Grade 1",
    "attend_min": "time to attend: from the call (or, where no call time is "
    "recorded, the incident's creation) to the first unit's arrival, in minutes; "
    "answer + dispatch + travel",
    "target_min": "the grade's attendance target on the incident's date: urban or "
    "rural by the incident's location (targets are data with start and end dates)",
    "share_within_target": "attended within target / attended incidents with a target",
    "median_attend_min": "median time to attend, minutes",
    "p90_attend_min": "90th percentile time to attend, minutes",
    "z": "Poisson z = 2 * (sqrt(within target now) - sqrt(within target last year))",
    "significance": "signal if |z| >= 3, watch if 1.96 <= |z| < 3, otherwise noise "
    "(Wheeler 2018)",
    "share_within_10": "999: answered in under 10 s / answered (Home Office bands: "
    "under 10 s, 10 to under 60 s, 60 s and over); the BT connection leg "
    "(mean_bt_s) is shown apart",
    "mean_answer_s": "101: mean seconds from queue entry to answer",
    "abandoned_share": "calls abandoned / calls offered",
    "centre": "p-chart centre: the period's share within target",
    "lower": "p-chart lower limit: centre - 3 * sqrt(centre (1 - centre) / n)",
    "upper": "p-chart upper limit: centre + 3 * sqrt(centre (1 - centre) / n)",
    "over_by_min": "minutes beyond the target",
    "waiting_min": "minutes the incident has waited, as at the period's end",
    "not recorded": "a blank measure means the source does not record that step; "
    "it is never shown as zero",
}


@dataclasses.dataclass(frozen=True)
class IncidentSelection:
    """The incident page's filters and drill path, as its query string holds them."""

    period: str = INCIDENT_DEFAULT_PERIOD
    start: str | None = None  # YYYY-MM-DD, custom period only
    end: str | None = None
    source: str | None = None
    grades: tuple[str, ...] = ()
    level: str = "force"
    area: str | None = None
    measure: str = "share"
    margin: int = INCIDENT_DEFAULT_MARGIN
    cell: str | None = None  # "<dow>-<hour>", Monday = 0
    incident: str | None = None  # "<source>:<incident id>"

    def query_string(self) -> str:
        pairs = []
        if self.period != INCIDENT_DEFAULT_PERIOD:
            pairs.append(("period", self.period))
        if self.period == "custom":
            pairs += [("from", d) for d in [self.start] if d]
            pairs += [("to", d) for d in [self.end] if d]
        if self.source:
            pairs.append(("source", self.source))
        pairs += [("grade", g) for g in self.grades]
        if self.area:
            pairs += [("level", self.level), ("area", self.area)]
        if self.measure != "share":
            pairs.append(("measure", self.measure))
        if self.margin != INCIDENT_DEFAULT_MARGIN:
            pairs.append(("margin", str(self.margin)))
        if self.cell:
            pairs.append(("cell", self.cell))
        if self.incident:
            pairs.append(("incident", self.incident))
        return "?" + urlencode(pairs) if pairs else ""

    def replace(self, **changes) -> IncidentSelection:
        return dataclasses.replace(self, **changes)

    @property
    def map_level(self) -> str:
        if self.area is None:
            return "force"
        return crime.CHILD_LEVEL[self.level] or self.level

    @property
    def dow_hour(self) -> tuple[int, int] | None:
        if not self.cell:
            return None
        dow, hour = self.cell.split("-")
        return int(dow), int(hour)

    @property
    def incident_key(self) -> tuple[str, str] | None:
        if not self.incident:
            return None
        source, _sep, incident_id = self.incident.partition(":")
        return source, incident_id


def parse_incident_selection(args: Mapping) -> tuple[IncidentSelection, list[str]]:
    """An IncidentSelection from query arguments, and a message per value ignored."""
    problems = []
    args = _checked_args(
        args,
        ("period", "from", "to", "source", "level", "area", "measure", "margin")
        + ("cell", "incident"),
        ("grade",),
        problems,
    )
    period = _one(args.get("period")) or INCIDENT_DEFAULT_PERIOD
    if period not in INCIDENT_PERIODS:
        problems.append(f"Unknown period {_shown(period)}: showing the last 28 days.")
        period = INCIDENT_DEFAULT_PERIOD
    dates = {}
    for key in ("from", "to"):
        value = _one(args.get(key))
        if value is not None and not _is_date(value):
            problems.append(f"{_shown(value)} is not a date (YYYY-MM-DD): ignored.")
            value = None
        dates[key] = value if period == "custom" else None
    grades = _many(args.get("grade"))
    bad = [g for g in grades if not GRADE_RE.match(g)]
    if bad:
        problems.append(f"Not a grade, ignored: {', '.join(map(_shown, bad[:5]))}.")
        grades = tuple(g for g in grades if GRADE_RE.match(g))
    level, area = _checked_level_area(args, problems)
    measure = _one(args.get("measure")) or "share"
    if measure not in INCIDENT_MEASURES:
        problems.append(
            f"Unknown measure {_shown(measure)}: showing share within target."
        )
        measure = "share"
    margin = _one(args.get("margin"))
    if margin is None:
        margin = INCIDENT_DEFAULT_MARGIN
    elif MARGIN_RE.match(margin) and int(margin) <= 24 * 60:
        margin = int(margin)
    else:
        problems.append(
            f"Margin {_shown(margin)} is not a whole number of minutes (0 to 1440): "
            f"using {INCIDENT_DEFAULT_MARGIN}."
        )
        margin = INCIDENT_DEFAULT_MARGIN
    cell = _one(args.get("cell"))
    if cell is not None and not CELL_RE.match(cell):
        problems.append(
            f"Hour-of-week cell {_shown(cell)} is not <day 0-6>-<hour 0-23>: ignored."
        )
        cell = None
    incident = _one(args.get("incident"))
    if incident is not None and ":" not in incident:
        problems.append(f"Incident {_shown(incident)} is not <source>:<id>: ignored.")
        incident = None
    selection = IncidentSelection(
        period=period,
        start=dates["from"],
        end=dates["to"],
        source=_one(args.get("source")),
        grades=grades,
        level=level,
        area=area,
        measure=measure,
        margin=margin,
        cell=cell,
        incident=incident,
    )
    return selection, problems


def _is_date(value: str) -> bool:
    if not DATE_RE.match(value):
        return False
    try:
        dt.date.fromisoformat(value)
    except ValueError:
        return False
    return True


def incident_period(
    preset: str, first: dt.date, latest: dt.date, start=None, end=None
) -> tuple[dt.date, dt.date, str]:
    """(start, end, sentence) for a preset, as dates, ending at the latest date held."""
    if preset in incidents.PRESETS:
        lo, hi = incidents.preset_period(preset, latest)
    else:
        lo = dt.date.fromisoformat(start) if start else first
        hi = dt.date.fromisoformat(end) if end else latest
        if lo > hi:
            lo, hi = hi, lo
        # Cut to the dates held (resolve_incidents says so): a range of 300 years
        # asks for nothing more than the data.
        lo, hi = min(max(lo, first), latest), min(max(hi, first), latest)
    days = (hi - lo).days + 1
    sentence = (
        f"{INCIDENT_PERIODS[preset]}: {lo:%d %b %Y} to {hi:%d %b %Y} "
        f"({days:,} day{'s' if days != 1 else ''}; the latest date with incidents "
        f"is {latest:%d %b %Y})."
    )
    return lo, hi, sentence


@dataclasses.dataclass(frozen=True)
class IncidentResolved:
    """An IncidentSelection checked against the warehouse, as query filters."""

    selection: IncidentSelection
    filters: object  # queries.incidents.IncidentFilters
    sentence: str
    path: tuple[dict, ...]
    problems: tuple[str, ...]
    sources: pd.DataFrame
    as_at: dt.datetime  # "now" for the open queue: the period's end, or now if sooner
    invalid: tuple[str, ...] = ()  # as Resolved.invalid

    @property
    def map_level(self) -> str:
        return self.selection.map_level

    @property
    def force_code(self) -> str:
        return self.path[0]["area_code"] if self.path else boundaries.ALL_FORCES


def resolve_incidents(
    selection: IncidentSelection, problems=(), query=None
) -> IncidentResolved:
    """Check the source, dates, area, cell and incident against the data; drop what
    is unknown, with a message, rather than fail."""
    query = query or components.cached_query
    problems = list(problems)
    sources = query(incidents.incident_sources)
    if selection.source is not None and selection.source not in set(sources["source"]):
        problems.append(
            f"Unknown source {_shown(selection.source)}: showing every source."
        )
        selection = selection.replace(source=None)
    held = query(incidents.date_range, selection.source)
    if held is None:
        raise components.NoData("No incident data loaded: run python -m etl demo")
    start, end, sentence = incident_period(
        selection.period, held[0], held[1], selection.start, selection.end
    )
    if selection.period == "custom":
        problems += _range_problems(
            selection.start,
            selection.end,
            held[0].isoformat(),
            held[1].isoformat(),
            f"{start:%Y-%m-%d} to {end:%Y-%m-%d}",
            "dates",
        )
    before = len(problems)
    selection, path = _checked_area(selection, problems, query)
    scope_notes = problems[before:] if scope.restricted() else []
    filters = incidents.IncidentFilters(
        start=start,
        end=end,
        source=selection.source,
        grades=selection.grades,
        area_level=selection.level,
        area_code=selection.area,
    )
    if selection.incident_key is not None:
        if query(incidents.incident_detail, *selection.incident_key) is None:
            problems.append(f"No incident {_shown(selection.incident)}: ignored.")
            selection = selection.replace(incident=None)
    as_at = min(
        dt.datetime.combine(end + dt.timedelta(days=1), dt.time()),
        components.utcnow().replace(second=0, microsecond=0),
    )
    invalid = tuple(p for p in problems if p not in scope_notes)
    for problem in invalid:
        components.record_refusal(f"invalid filter: {problem}")
    return IncidentResolved(
        selection,
        filters,
        sentence,
        path,
        tuple(problems),
        sources,
        as_at,
        invalid=invalid,
    )


def resolve_incident_query_string(search: str | None, query=None) -> IncidentResolved:
    """`resolve_incidents` of a query string, once per request."""
    search = _text(search)
    return _once_per_request(
        ("incidents", search),
        query,
        lambda: resolve_incidents(*parse_incident_selection(query_args(search)), query),
    )


def incident_frame(chart: str, resolved: IncidentResolved, query=None) -> pd.DataFrame:
    """Exactly the rows an incident chart or list draws; the page calls this too."""
    query = query or components.cached_query
    f, selection = resolved.filters, resolved.selection
    if chart == "grades":
        return query(incidents.attendance_by_grade, f)
    if chart == "calls":
        return query(incidents.call_answering, f.start, f.end, f.source)
    if chart == "regrade":
        return pd.DataFrame([query(incidents.regrade_rate, f)])
    if chart == "queue":
        return query(incidents.open_queue, f, resolved.as_at)
    if chart == "areas":
        frame = query(incidents.by_area, f, resolved.map_level)
        rules = disclosure.INCIDENT_RULES["areas"]
        return disclosure.suppress(frame, rules, suppression_threshold())
    if chart == "trend":
        return query(incidents.weekly_within_target, f)
    if chart == "hours":
        return query(incidents.hour_of_week, f)
    if chart == "cell":
        if selection.dow_hour is None:
            return _empty(incidents.incidents_in_cell, "cell")
        return query(incidents.incidents_in_cell, f, *selection.dow_hour)
    if chart == "timeline":
        if selection.incident_key is None:
            return _empty(incidents.incident_timeline, "timeline")
        return query(incidents.incident_timeline, *selection.incident_key)
    if chart == "exceptions":
        return query(incidents.exceptions, f, selection.margin)
    if chart == "open":
        return query(incidents.open_past_target, f, resolved.as_at)
    raise KeyError(chart)


_EMPTY_COLUMNS = {
    "cell": [
        "source",
        "incident_id",
        "local_date",
        "final_grade",
        "opening_grade",
        "incident_type",
        "attend_min",
        "target_min",
        "within_target",
    ],
    "timeline": ["step", "at_utc", "at_local", "minutes_since_previous", "component"],
}


def _empty(_fn, chart: str) -> pd.DataFrame:
    return pd.DataFrame(columns=_EMPTY_COLUMNS[chart])


def describe_incidents(resolved: IncidentResolved, chart: str, run_id, now):
    """The header block's (name, value) pairs for one incident export."""
    f, selection = resolved.filters, resolved.selection
    area = _area_label(resolved.path)
    items = [
        ("Bluelamp incidents export", f"{chart}: {INCIDENT_CHARTS[chart]}"),
        ("Period", resolved.sentence),
        ("Dates", f"{f.start:%Y-%m-%d} to {f.end:%Y-%m-%d} (inclusive, local)"),
        ("Source", f.source or "every source"),
        ("Grades", ", ".join(f.grades) or "all final grades"),
        ("Area", area),
        ("Hour-of-week cell", selection.cell or "none chosen"),
        ("Incident", selection.incident or "none chosen"),
        ("Exception margin (min)", str(selection.margin)),
        ("Open queue as at (UTC)", resolved.as_at.strftime("%Y-%m-%dT%H:%M:%SZ")),
        ("Query", selection.query_string() or "(defaults)"),
    ]
    items += [(f"Definition of {c}", d) for c, d in INCIDENT_DEFINITIONS.items()]
    items += [
        ("Extracted at (UTC)", now.strftime("%Y-%m-%dT%H:%M:%SZ")),
        ("ETL run id", str(run_id)),
    ]
    items += [("Note", p) for p in resolved.problems]
    return items


@blueprint.route("/export/incidents/<chart>.csv")
def export_incidents_csv(chart: str):
    export = _export_gate("/incidents", chart, INCIDENT_CHARTS)
    try:
        resolved = resolve_incident_query_string(
            request.query_string.decode("utf-8", "replace")
        )
        frame = incident_frame(chart, resolved)
        run_id = components.query(warehouse.latest_run_id)
    except components.NoData as exc:
        return Response(str(exc), 503, mimetype="text/plain")
    now = components.utcnow()
    name = f"bluelamp-incidents-{chart}-{now:%Y%m%dT%H%M%SZ}.csv"
    header = describe_incidents(resolved, chart, run_id, now)
    return _csv_response(frame, header, export, name)


@blueprint.route("/export/audit.csv")
def export_audit_csv():
    """The audit events the admin page lists, for the same filters; itself audited."""
    export = audit.note_export("audit", page="/audit")
    role = components.current_role()
    if not accounts.may_see(role, "/audit"):
        components.record_refusal(f"role {role} may not see /audit")
        abort(Response("Forbidden: your role may not see the audit trail", 403))
    export.reason = _reason_code()
    filters, problems = audit.parse_filters(request.args)
    try:
        frame = audit.current().events(filters)
    except audit.AuditUnavailable as exc:
        return Response(str(exc), 503, mimetype="text/plain")
    if not frame.empty:
        frame["at"] = frame["at"].dt.strftime("%Y-%m-%dT%H:%M:%SZ")
    now = components.utcnow()
    header = [
        ("Bluelamp audit export", "audit events, newest first"),
        ("Filters", filters.sentence()),
        ("Query", filters.query_string() or "(none)"),
    ]
    header += [(f"Definition of {c}", d) for c, d in audit.DEFINITIONS.items()]
    header += [("Extracted at (UTC)", now.strftime("%Y-%m-%dT%H:%M:%SZ"))]
    header += [("Note", p) for p in problems]
    name = f"bluelamp-audit-{now:%Y%m%dT%H%M%SZ}.csv"
    return _csv_response(frame, header, export, name)


def incident_boundary(resolved: IncidentResolved) -> tuple[str, boundaries.Layer]:
    """The same static boundary files the crime page uses, at the map's level."""
    run_id = components.query(warehouse.latest_run_id)
    layer = components.query(
        boundaries.layer, run_id, resolved.map_level, resolved.force_code
    )
    url = f"/geo/crime/{run_id}/{resolved.force_code}/{resolved.map_level}.geojson"
    return url, layer
