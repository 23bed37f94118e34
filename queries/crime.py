"""Recorded crime by period, crime type and area: SQL in, DataFrame or dict out.

A force's figures count every crime police.uk says falls within it (`force_name`),
placed in an LSOA or not; local authority, ward and LSOA figures count crimes by
the LSOA they were placed in. Anti-social behaviour is not a recorded crime: it is
left out of every crime figure and reported on its own by `kpis`. Rates are per
1,000 Census 2021 usual residents of the area's LSOAs; harm is the sum of the crime
types' harm weights in days. Comparisons are with the same months a year earlier.
"""

from __future__ import annotations

import calendar
import dataclasses
import datetime as dt

import pandas as pd
from sqlalchemy import Connection

from queries import areas, scope, stats
from queries.frames import read_frame

LEVELS = areas.LEVELS
CHILD_LEVEL = areas.CHILD_LEVEL
MEASURES = ("count", "rate", "harm")
ASB = "Anti-social behaviour"
AWAITING = "Awaiting outcome"
# dim_outcome's group for "Under investigation" and "Status update unavailable".
OPEN_OUTCOME_GROUP = "Under investigation or awaiting outcome"
PRESETS = ("last-28-days", "last-month", "rolling-12", "fytd", "custom")

BY_AREA_COLUMNS = [
    "area_code",
    "area_name",
    "crimes",
    "crimes_last_year",
    "population",
    "rate_per_1000",
    "harm_days",
    "z",
    "significance",
]
MONTHLY_COLUMNS = [
    "month",
    "crimes",
    "crimes_last_year",
    "population",
    "rate_per_1000",
    "harm_days",
    "centre",
    "lower",
    "upper",
    "outside",
]
BY_TYPE_COLUMNS = [
    "category_group",
    "crime_type",
    "crimes",
    "crimes_last_year",
    "harm_days",
    "z",
    "significance",
]

# The dim_geography column that places an LSOA in an area of each lower level.
_GEOGRAPHY_COLUMN = areas.GEOGRAPHY_COLUMN
_FORCE_NAME = areas.FORCE_NAME
_CURRENT = "c.month BETWEEN :start_month AND :end_month"
_PREVIOUS = "c.month BETWEEN :previous_start AND :previous_end"


@dataclasses.dataclass(frozen=True)
class CrimeFilters:
    start_month: dt.date
    end_month: dt.date
    crime_types: tuple[str, ...] = ()
    area_level: str = "force"
    area_code: str | None = None

    def __post_init__(self):
        if self.area_level not in LEVELS:
            raise ValueError(f"area_level {self.area_level!r} is not one of {LEVELS}")

    def previous_year(self) -> CrimeFilters:
        """The same months one year earlier (months are first days, so no leap day)."""
        return dataclasses.replace(
            self,
            start_month=_year_earlier(self.start_month),
            end_month=_year_earlier(self.end_month),
        )


def _year_earlier(month: dt.date) -> dt.date:
    return month.replace(year=month.year - 1, day=1)


# ---------------------------------------------------------------------------
# SQL building blocks: fixed fragments chosen by level; every value is bound.


def _run(conn: Connection, sql: str, params: dict) -> pd.DataFrame:
    return read_frame(conn, sql, params, expanding=("crime_types",))


def _params(f: CrimeFilters) -> dict:
    previous = f.previous_year()
    params = {
        "start_month": f.start_month,
        "end_month": f.end_month,
        "previous_start": previous.start_month,
        "previous_end": previous.end_month,
    }
    if f.area_code is not None:
        params["area_code"] = f.area_code
    if f.crime_types:
        params["crime_types"] = list(f.crime_types)
    return params


def _crime_scope(f: CrimeFilters) -> str:
    """A condition on fct_crime c: the crimes in f's area and the user's scope."""
    return f"{_area(f)} AND {scope.lsoa_condition('c.lsoa_code')}"


def _area(f: CrimeFilters) -> str:
    if f.area_code is None:
        return "TRUE"
    if f.area_level == "force":
        return f"c.force_name = {_FORCE_NAME}"
    if f.area_level == "lsoa":
        return "c.lsoa_code = :area_code"
    column = _GEOGRAPHY_COLUMN[f.area_level]
    return (
        "c.lsoa_code IN "
        f"(SELECT lsoa_code FROM dim_geography WHERE {column} = :area_code)"
    )


def _population_scope(f: CrimeFilters) -> str:
    """A condition on dim_geography g: the LSOAs of f's area and the user's scope."""
    if f.area_code is None:
        area = "TRUE"
    elif f.area_level == "force":
        area = f"g.force_name = {_FORCE_NAME}"
    else:
        area = f"g.{_GEOGRAPHY_COLUMN[f.area_level]} = :area_code"
    return f"{area} AND {scope.lsoa_condition('g.lsoa_code')}"


def _types(f: CrimeFilters) -> str:
    """Recorded crimes of f's types: ASB is never one of them."""
    if f.crime_types:
        return "NOT c.is_asb AND c.crime_type IN :crime_types"
    return "NOT c.is_asb"


def _crimes_where(f: CrimeFilters) -> str:
    return f"({_CURRENT} OR {_PREVIOUS}) AND {_types(f)} AND {_crime_scope(f)}"


# ---------------------------------------------------------------------------
# Pickers


def months_available(conn: Connection) -> pd.DataFrame:
    frame = _run(conn, "SELECT DISTINCT month FROM fct_crime ORDER BY month", {})
    return pd.DataFrame({"month": _dates(frame["month"]) if len(frame) else []})


def _dates(values: pd.Series) -> pd.Series:
    """Python dates from whichever date type the driver returned."""
    return pd.to_datetime(values).dt.date.astype(object)


def crime_type_tree(conn: Connection) -> pd.DataFrame:
    sql = """
        SELECT t.category_group, t.crime_type, t.harm_weight_days
        FROM dim_crime_type t
        WHERE t.crime_type IN (
            SELECT DISTINCT crime_type FROM fct_crime WHERE NOT is_asb
        )
        ORDER BY t.category_group, t.crime_type
    """
    frame = _run(conn, sql, {})
    return pd.DataFrame(
        {
            "category_group": frame["category_group"].astype("str"),
            "crime_type": frame["crime_type"].astype("str"),
            "harm_weight_days": frame["harm_weight_days"].astype("float64"),
        }
    )


def area_options(
    conn: Connection, level: str, parent_code: str | None = None
) -> pd.DataFrame:
    _check_level(level)
    params = {"level": level}
    sql = (
        "SELECT area_code, area_name, parent_code FROM dim_area a "
        f"WHERE level = :level AND {scope.area_condition('a', level)}"
    )
    if parent_code is not None:
        sql += " AND parent_code = :parent_code"
        params["parent_code"] = parent_code
    frame = _run(conn, sql + " ORDER BY area_name, area_code", params)
    return frame.reindex(columns=["area_code", "area_name", "parent_code"]).astype(
        {"area_code": "str", "area_name": "str", "parent_code": "str"}
    )


def area_level(conn: Connection, area_code: str) -> str | None:
    """The level of an area code in dim_area (the lowest, if a code is reused)."""
    # Not scoped: a level says nothing of the data; area_path is scoped.
    sql = "SELECT level FROM dim_area WHERE area_code = :area_code"
    frame = _run(conn, sql, {"area_code": area_code})
    found = [lv for lv in reversed(LEVELS) if lv in set(frame.get("level", []))]
    return found[0] if found else None


def area_path(conn: Connection, level: str, area_code: str) -> list[dict]:
    """Breadcrumb from the force down to the area: [{level, area_code, area_name}]."""
    _check_level(level)
    # An area is at most three parents below its force.
    sql = f"""
        SELECT a0.level AS level0, a0.area_code AS code0, a0.area_name AS name0,
               a1.level AS level1, a1.area_code AS code1, a1.area_name AS name1,
               a2.level AS level2, a2.area_code AS code2, a2.area_name AS name2,
               a3.level AS level3, a3.area_code AS code3, a3.area_name AS name3
        FROM dim_area a0
        LEFT JOIN dim_area a1 ON a1.area_code = a0.parent_code
        LEFT JOIN dim_area a2 ON a2.area_code = a1.parent_code
        LEFT JOIN dim_area a3 ON a3.area_code = a2.parent_code
        WHERE a0.area_code = :area_code AND a0.level = :level
          AND {scope.area_condition('a0', level)}
    """
    frame = _run(conn, sql, {"area_code": area_code, "level": level})
    if frame.empty:
        return []
    found = {k: (None if pd.isna(v) else v) for k, v in frame.iloc[0].items()}
    path = [
        {
            "level": found[f"level{i}"],
            "area_code": found[f"code{i}"],
            "area_name": found[f"name{i}"],
        }
        for i in range(4)
        if found[f"code{i}"] is not None
    ]
    return path[::-1]


def _check_level(level: str) -> None:
    if level not in LEVELS:
        raise ValueError(f"level {level!r} is not one of {LEVELS}")


# ---------------------------------------------------------------------------
# Figures


def kpis(conn: Connection, f: CrimeFilters) -> dict:
    """Headline figures for the filters; ASB counts ignore the crime-type filter."""
    types = "AND (c.is_asb OR c.crime_type IN :crime_types)" if f.crime_types else ""
    sql = f"""
        SELECT
            count(*) FILTER (WHERE NOT c.is_asb AND {_CURRENT}) AS crimes,
            count(*) FILTER (WHERE NOT c.is_asb AND {_PREVIOUS}) AS crimes_last_year,
            sum(t.harm_weight_days) FILTER (WHERE NOT c.is_asb AND {_CURRENT})
                AS harm_days,
            count(*) FILTER (WHERE c.is_asb AND {_CURRENT}) AS asb,
            count(*) FILTER (WHERE c.is_asb AND {_PREVIOUS}) AS asb_last_year,
            count(*) FILTER (
                WHERE NOT c.is_asb AND {_CURRENT} AND c.lsoa_code IS NULL
            ) AS unplaced,
            (SELECT CAST(sum(g.population) AS BIGINT) FROM dim_geography g
             WHERE {_population_scope(f)}) AS population
        FROM fct_crime c
        LEFT JOIN dim_crime_type t ON t.crime_type = c.crime_type
        WHERE ({_CURRENT} OR {_PREVIOUS}) AND {_crime_scope(f)}
          {types}
    """
    row = _run(conn, sql, _params(f)).iloc[0]
    crimes, last_year = int(row["crimes"]), int(row["crimes_last_year"])
    population = None if pd.isna(row["population"]) else int(row["population"])
    z = stats.poisson_z(crimes, last_year)
    return {
        "crimes": crimes,
        "crimes_last_year": last_year,
        "z": z,
        "significance": stats.significance(z),
        "population": population,
        "rate_per_1000": stats.rate_per_1000(crimes, population),
        "harm_days": 0.0 if pd.isna(row["harm_days"]) else float(row["harm_days"]),
        "asb": int(row["asb"]),
        "asb_last_year": int(row["asb_last_year"]),
        "unplaced": int(row["unplaced"]),
    }


def outcome_groups(conn: Connection, f: CrimeFilters) -> pd.DataFrame:
    """Crimes recorded in the period by the group of their latest outcome (cohort)."""
    sql = f"""
        SELECT
            CASE WHEN c.last_outcome_category IS NULL
                      OR o.outcome_group = :open_group THEN :awaiting
                 ELSE coalesce(o.outcome_group, c.last_outcome_category)
            END AS outcome_group,
            count(*) AS crimes
        FROM fct_crime c
        LEFT JOIN dim_outcome o ON o.outcome_category = c.last_outcome_category
        WHERE {_CURRENT} AND {_types(f)} AND {_crime_scope(f)}
        GROUP BY 1
        ORDER BY crimes DESC, outcome_group
    """
    params = _params(f) | {"open_group": OPEN_OUTCOME_GROUP, "awaiting": AWAITING}
    frame = _run(conn, sql, params)
    out = pd.DataFrame(
        {
            "outcome_group": frame.get("outcome_group", pd.Series(dtype="str")).astype(
                "str"
            ),
            "crimes": frame.get("crimes", pd.Series(dtype="int64")).astype("int64"),
        }
    )
    out["share"] = (out["crimes"] / out["crimes"].sum()).astype("float64")
    return out


def by_area(conn: Connection, f: CrimeFilters, level: str) -> pd.DataFrame:
    """Every area at `level` inside f's area, with zero rows for areas with no crime."""
    _check_level(level)
    if LEVELS.index(level) < LEVELS.index(f.area_level):
        raise ValueError(f"level {level!r} is above the filter's {f.area_level!r}")
    if level == "force":
        area_key, crime_key = "a.force_name", "c.force_name"
        population_key = "g.force_name"
        geography_join = ""
    else:
        column = _GEOGRAPHY_COLUMN[level]
        area_key, crime_key = "a.area_code", f"g.{column}"
        population_key = crime_key
        geography_join = "JOIN dim_geography g ON g.lsoa_code = c.lsoa_code"
    sql = f"""
        WITH areas AS (
            SELECT a.area_code, a.area_name, {area_key} AS area_key
            FROM dim_area a
            WHERE a.level = :level AND {_membership(f, level)}
        ),
        counts AS (
            SELECT {crime_key} AS area_key,
                   count(*) FILTER (WHERE {_CURRENT}) AS crimes,
                   count(*) FILTER (WHERE {_PREVIOUS}) AS crimes_last_year,
                   sum(t.harm_weight_days) FILTER (WHERE {_CURRENT}) AS harm_days
            FROM fct_crime c
            {geography_join}
            LEFT JOIN dim_crime_type t ON t.crime_type = c.crime_type
            WHERE {_crimes_where(f)}
            GROUP BY {crime_key}
        ),
        residents AS (
            SELECT {population_key} AS area_key,
                   CAST(sum(g.population) AS BIGINT) AS population
            FROM dim_geography g
            GROUP BY {population_key}
        )
        SELECT a.area_code, a.area_name, k.crimes, k.crimes_last_year, r.population,
               k.harm_days
        FROM areas a
        LEFT JOIN counts k ON k.area_key = a.area_key
        LEFT JOIN residents r ON r.area_key = a.area_key
        ORDER BY a.area_name, a.area_code
    """
    frame = _run(conn, sql, _params(f) | {"level": level})
    out = pd.DataFrame(
        {
            "area_code": _column(frame, "area_code", "str"),
            "area_name": _column(frame, "area_name", "str"),
            "crimes": _counts(frame, "crimes"),
            "crimes_last_year": _counts(frame, "crimes_last_year"),
            "population": _column(frame, "population", "Int64"),
            "harm_days": _column(frame, "harm_days", "float64").fillna(0.0),
        }
    )
    out["rate_per_1000"] = stats.rate_per_1000(out["crimes"], out["population"])
    out["z"] = stats.poisson_z(out["crimes"], out["crimes_last_year"])
    out["significance"] = stats.significance(out["z"])
    return out[BY_AREA_COLUMNS]


def _membership(f: CrimeFilters, level: str) -> str:
    return areas.membership(f.area_level, f.area_code, level)


def monthly(conn: Connection, f: CrimeFilters) -> pd.DataFrame:
    """Every month of the period (zero months included) with last year's count."""
    # The population subquery always returns a row, so an empty period still has it.
    sql = f"""
        SELECT m.month, m.crimes, m.harm_days, p.population
        FROM (
            SELECT CAST(sum(g.population) AS BIGINT) AS population
            FROM dim_geography g WHERE {_population_scope(f)}
        ) p
        LEFT JOIN (
            SELECT c.month, count(*) AS crimes, sum(t.harm_weight_days) AS harm_days
            FROM fct_crime c
            LEFT JOIN dim_crime_type t ON t.crime_type = c.crime_type
            WHERE {_crimes_where(f)}
            GROUP BY c.month
        ) m ON TRUE
    """
    raw = _run(conn, sql, _params(f))
    population = raw["population"].iloc[0]
    frame = raw[raw["month"].notna()]
    by_month = frame.set_index(_dates(frame["month"]))
    months = month_range(f.start_month, f.end_month)
    previous = [_year_earlier(m) for m in months]
    out = pd.DataFrame({"month": pd.Series(months, dtype=object)})
    out["crimes"] = _reindexed(by_month["crimes"], months, "int64")
    out["crimes_last_year"] = _reindexed(by_month["crimes"], previous, "int64")
    out["population"] = pd.array(
        [None if pd.isna(population) else int(population)] * len(months), dtype="Int64"
    )
    out["rate_per_1000"] = stats.rate_per_1000(out["crimes"], out["population"])
    out["harm_days"] = _reindexed(by_month["harm_days"], months, "float64")
    out = pd.concat([out, stats.c_chart(out["crimes"])], axis=1)
    return out[MONTHLY_COLUMNS]


def by_type(conn: Connection, f: CrimeFilters) -> pd.DataFrame:
    """Each crime type recorded in the period or a year earlier, largest first."""
    sql = f"""
        SELECT coalesce(t.category_group, 'Unclassified') AS category_group,
               c.crime_type,
               count(*) FILTER (WHERE {_CURRENT}) AS crimes,
               count(*) FILTER (WHERE {_PREVIOUS}) AS crimes_last_year,
               sum(t.harm_weight_days) FILTER (WHERE {_CURRENT}) AS harm_days
        FROM fct_crime c
        LEFT JOIN dim_crime_type t ON t.crime_type = c.crime_type
        WHERE {_crimes_where(f)}
        GROUP BY t.category_group, c.crime_type
        ORDER BY crimes DESC, c.crime_type
    """
    frame = _run(conn, sql, _params(f))
    out = pd.DataFrame(
        {
            "category_group": _column(frame, "category_group", "str"),
            "crime_type": _column(frame, "crime_type", "str"),
            "crimes": _counts(frame, "crimes"),
            "crimes_last_year": _counts(frame, "crimes_last_year"),
            "harm_days": _column(frame, "harm_days", "float64").fillna(0.0),
        }
    )
    out["z"] = stats.poisson_z(out["crimes"], out["crimes_last_year"])
    out["significance"] = stats.significance(out["z"])
    return out[BY_TYPE_COLUMNS]


def crime_points(conn: Connection, f: CrimeFilters) -> pd.DataFrame:
    """Placed crimes with coordinates in the period, for the hot-spot heat map."""
    sql = f"""
        SELECT c.latitude, c.longitude, c.crime_type, c.month
        FROM fct_crime c
        WHERE {_CURRENT} AND {_types(f)} AND {_crime_scope(f)}
          AND c.lsoa_code IS NOT NULL
          AND c.latitude IS NOT NULL AND c.longitude IS NOT NULL
    """
    frame = _run(conn, sql, _params(f))
    return pd.DataFrame(
        {
            "latitude": _column(frame, "latitude", "float64"),
            "longitude": _column(frame, "longitude", "float64"),
            "crime_type": _column(frame, "crime_type", "str"),
            "month": _dates(frame["month"]) if len(frame) else pd.Series(dtype=object),
        }
    )


# ---------------------------------------------------------------------------
# Frame helpers


def _column(frame: pd.DataFrame, name: str, dtype: str) -> pd.Series:
    if name not in frame.columns:
        return pd.Series(dtype=dtype)
    values = frame[name]
    if dtype in ("float64", "Int64", "int64"):
        values = pd.to_numeric(values)
    return values.astype(dtype).reset_index(drop=True)


def _counts(frame: pd.DataFrame, name: str) -> pd.Series:
    return _column(frame, name, "Int64").fillna(0).astype("int64")


def _reindexed(values: pd.Series, months: list[dt.date], dtype: str) -> pd.Series:
    numbers = pd.to_numeric(values).astype("float64").reindex(months).fillna(0)
    return pd.Series(numbers.to_numpy(), dtype=dtype)


def month_range(start_month: dt.date, end_month: dt.date) -> list[dt.date]:
    """First days of every month from start_month to end_month inclusive."""
    first = start_month.year * 12 + start_month.month - 1
    last = end_month.year * 12 + end_month.month - 1
    return [dt.date(n // 12, n % 12 + 1, 1) for n in range(first, last + 1)]


# ---------------------------------------------------------------------------
# Period presets


def resolve_period(
    preset: str,
    months: pd.Series,
    start: str | None = None,
    end: str | None = None,
) -> tuple[dt.date, dt.date, str]:
    """(start_month, end_month, a sentence naming the period and its monthly grain).

    police.uk publishes whole months, so every preset resolves to whole months held
    in `months` (months_available()["month"]); a custom range is clamped to them.
    """
    if preset not in PRESETS:
        raise ValueError(f"period preset {preset!r} is not one of {PRESETS}")
    held = sorted({pd.Timestamp(m).date().replace(day=1) for m in months})
    if not held:
        raise ValueError("no months of crime data are loaded")
    first, latest = held[0], held[-1]
    if preset in ("last-28-days", "last-month"):
        start_month = end_month = latest
    elif preset == "rolling-12":
        start_month, end_month = max(_months_before(latest, 11), first), latest
    elif preset == "fytd":
        april = dt.date(latest.year if latest.month >= 4 else latest.year - 1, 4, 1)
        start_month, end_month = max(april, first), latest
    else:
        start_month = _parse_month(start) if start else first
        end_month = _parse_month(end) if end else latest
        if start_month > end_month:
            start_month, end_month = end_month, start_month
        start_month = min(max(start_month, first), latest)
        end_month = min(max(end_month, first), latest)
    return start_month, end_month, _describe(preset, start_month, end_month, latest)


def _months_before(month: dt.date, count: int) -> dt.date:
    n = month.year * 12 + month.month - 1 - count
    return dt.date(n // 12, n % 12 + 1, 1)


def _parse_month(value: str) -> dt.date:
    try:
        return dt.datetime.strptime(value.strip(), "%Y-%m").date()
    except ValueError as exc:
        raise ValueError(f"month {value!r} is not YYYY-MM") from exc


def _month_name(month: dt.date) -> str:
    return f"{calendar.month_name[month.month]} {month.year}"


def _describe(preset: str, start: dt.date, end: dt.date, latest: dt.date) -> str:
    n = len(month_range(start, end))
    span = (
        _month_name(start)
        if start == end
        else f"{_month_name(start)} to {_month_name(end)}"
    )
    counted = f"{n} month{'s' if n != 1 else ''}"
    if preset == "last-28-days":
        return (
            f"Last 28 days: police.uk data is monthly, so this shows the latest "
            f"month with data, {span}."
        )
    if preset == "last-month":
        return f"Last month: {span}, the latest month with data (monthly grain)."
    if preset == "rolling-12":
        short = "" if n == 12 else f"; only {counted} of data are held"
        return f"Rolling 12 months: {span} ({counted} to the latest month{short})."
    if preset == "fytd":
        year = start.year if start.month >= 4 else start.year - 1
        return (
            f"Financial year {year}/{(year + 1) % 100:02d} to date: {span} "
            f"({counted}, monthly grain)."
        )
    return f"Custom range: {span} ({counted}, monthly grain; whole months only)."
