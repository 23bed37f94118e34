"""The crime page's query string, its CSV and heat-map exports, and its boundary files.

The page and its exports read one query string (`Selection`), so a CSV downloaded
from a chart holds exactly the rows the chart drew, for exactly the same filters.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import re
from collections.abc import Iterable, Iterator, Mapping
from urllib.parse import parse_qs, urlencode

import pandas as pd
from flask import Blueprint, Response, abort, request, stream_with_context

import accounts
import settings
from dashboards import components
from etl import warehouse
from geo import boundaries, heatmap
from queries import crime

blueprint = Blueprint("crime_exports", __name__)

DEFAULT_PERIOD = "rolling-12"
MONTH_RE = re.compile(r"^\d{4}-(0[1-9]|1[0-2])$")
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


def parse_selection(args: Mapping) -> tuple[Selection, list[str]]:
    """A Selection from query arguments, and a message for each value ignored."""
    problems = []
    period = _one(args.get("period")) or DEFAULT_PERIOD
    if period not in crime.PRESETS:
        problems.append(f"Unknown period {period!r}: showing rolling 12 months.")
        period = DEFAULT_PERIOD
    months = {}
    for key in ("from", "to"):
        value = _one(args.get(key))
        if value is not None and not MONTH_RE.match(value):
            problems.append(f"{value!r} is not a month (YYYY-MM): ignored.")
            value = None
        months[key] = value if period == "custom" else None
    measure = _one(args.get("measure")) or "count"
    if measure not in crime.MEASURES:
        problems.append(f"Unknown measure {measure!r}: showing counts.")
        measure = "count"
    level, area = _one(args.get("level")) or "force", _one(args.get("area"))
    if level not in crime.LEVELS:
        problems.append(f"Unknown area level {level!r}: showing all forces.")
        level, area = "force", None
    if area is None:
        level = "force"
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

    @property
    def map_level(self) -> str:
        return self.selection.map_level

    @property
    def force_code(self) -> str:
        return self.path[0]["area_code"] if self.path else boundaries.ALL_FORCES


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
    known = set(query(crime.crime_type_tree)["crime_type"])
    unknown = [t for t in selection.types if t not in known]
    if unknown:
        problems.append(f"Unknown crime type(s) ignored: {', '.join(unknown)}.")
        selection = selection.replace(
            types=tuple(t for t in selection.types if t in known)
        )
    path = ()
    if selection.area is not None:
        path = tuple(query(crime.area_path, selection.level, selection.area))
        if not path:
            problems.append(
                f"No {selection.level} area with code {selection.area!r}: "
                "showing all forces."
            )
            selection = selection.replace(level="force", area=None)
    filters = crime.CrimeFilters(
        start_month=start,
        end_month=end,
        crime_types=selection.types,
        area_level=selection.level,
        area_code=selection.area,
    )
    return Resolved(selection, filters, sentence, path, tuple(problems))


def query_args(search: str | None) -> dict:
    """`?a=1&t=x&t=y` as Dash Pages passes it to a layout: {"a": "1", "t": [...]}."""
    parsed = parse_qs((search or "").lstrip("?"))
    return {k: v[0] if len(v) == 1 else v for k, v in parsed.items()}


def resolve_query_string(search: str | None, query=None) -> Resolved:
    selection, problems = parse_selection(query_args(search))
    return resolve(selection, problems, query)


# ---------------------------------------------------------------------------
# The rows behind each chart


def chart_frame(chart: str, resolved: Resolved, query=None) -> pd.DataFrame:
    """Exactly the rows a chart draws; the page calls this too."""
    query = query or components.cached_query
    f = resolved.filters
    if chart == "kpis":
        return pd.DataFrame([query(crime.kpis, f)])
    if chart == "areas":
        frame = query(crime.by_area, f, resolved.map_level)
        return frame.sort_values(
            ["rate_per_1000", "crimes"], ascending=False, na_position="last"
        ).reset_index(drop=True)
    if chart == "trend":
        return query(crime.monthly, f)
    if chart == "types":
        return query(crime.by_type, f)
    if chart == "outcomes":
        return query(crime.outcome_groups, f)
    if chart == "points":
        # Not cached: hundreds of thousands of rows, asked for rarely.
        return components.query(crime.crime_points, f)
    raise KeyError(chart)


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
    yield "".join(header_lines(header))
    safe = _neutralised(frame)
    yield safe.iloc[:0].to_csv(index=False, lineterminator="\n")
    for start in range(0, len(safe), chunk_rows):
        yield safe.iloc[start : start + chunk_rows].to_csv(
            index=False, header=False, lineterminator="\n"
        )


def describe(resolved: Resolved, chart: str, run_id, now: dt.datetime):
    """The header block's (name, value) pairs for one export."""
    f, selection = resolved.filters, resolved.selection
    area = (
        " > ".join(
            f"{p['area_name']} ({p['level']} {p['area_code']})" for p in resolved.path
        )
        or "all forces"
    )
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


@blueprint.route("/export/crime/<chart>.csv")
def export_csv(chart: str):
    _role_may(export=True)
    if chart not in CHARTS:
        abort(404)
    try:
        resolved = _resolved_from_request()
        frame = chart_frame(chart, resolved)
        run_id = components.query(warehouse.latest_run_id)
    except components.NoData as exc:
        return Response(str(exc), 503, mimetype="text/plain")
    now = components.utcnow()
    name = f"bluelamp-crime-{chart}-{now:%Y%m%dT%H%M%SZ}.csv"
    return Response(
        stream_with_context(csv_chunks(frame, describe(resolved, chart, run_id, now))),
        mimetype="text/csv",
        headers={"Content-Disposition": f'attachment; filename="{name}"'},
    )


@blueprint.route("/export/crime/hotspots.html")
def export_hotspots():
    _role_may(export=True)
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
