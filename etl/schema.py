"""The warehouse star schema, defined once, created alike on DuckDB and PostgreSQL.

Times in fact tables are UTC without a zone (`*_at` columns); each incident also
keeps its local date and hour for hour-of-week views. A lifecycle time a source does
not record is NULL, never 0, and `fct_incident.lifecycle_recorded` says which steps
the source records at all.
"""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    Boolean,
    Column,
    Date,
    DateTime,
    Double,
    Integer,
    MetaData,
    Sequence,
    String,
    Table,
    Text,
)

metadata = MetaData()

run_id_seq = Sequence("etl_run_id_seq", metadata=metadata)

etl_run = Table(
    "etl_run",
    metadata,
    Column("run_id", BigInteger, primary_key=True, autoincrement=False),
    Column("source", String, nullable=False),
    Column("path", Text),
    Column("mapping", Text),
    Column("started_at", DateTime, nullable=False),
    Column("finished_at", DateTime),
    Column("status", String, nullable=False),  # running | succeeded | failed
    Column("rows_read", BigInteger, nullable=False, default=0),
    Column("rows_loaded", BigInteger, nullable=False, default=0),
    Column("rows_rejected", BigInteger, nullable=False, default=0),
    Column("rows_duplicate", BigInteger, nullable=False, default=0),
    Column("rows_set_aside", BigInteger, nullable=False, default=0),
    Column("files", Integer, nullable=False, default=0),
    Column("message", Text),
)

etl_quarantine = Table(
    "etl_quarantine",
    metadata,
    Column("run_id", BigInteger, nullable=False),
    Column("source", String, nullable=False),
    Column("file", Text, nullable=False),
    Column("line", BigInteger, nullable=False),
    Column("raw", Text, nullable=False),
    Column("reason", Text, nullable=False),
)

# One row per area at every level (force, local authority, ward/neighbourhood,
# LSOA), so maps and pickers at any level read one table.
dim_area = Table(
    "dim_area",
    metadata,
    Column("area_code", String, primary_key=True),
    Column("area_name", String, nullable=False),
    Column("level", String, nullable=False),  # force | lad | ward | lsoa
    Column("parent_code", String),
    Column("force_name", String),
    Column("geometry_wkt", Text),  # WGS84, repaired; NULL when no polygon is held
    Column("area_km2", Double),
    Column("centroid_lon", Double),
    Column("centroid_lat", Double),
    Column("geometry_repaired", Boolean, nullable=False, default=False),
    Column("source_file", Text),
)

# The LSOA grain with its whole chain of parents: what fact rows join to.
dim_geography = Table(
    "dim_geography",
    metadata,
    Column("lsoa_code", String, primary_key=True),
    Column("lsoa_name", String, nullable=False),
    Column("ward_code", String),
    Column("ward_name", String),
    Column("lad_code", String),
    Column("lad_name", String),
    Column("force_name", String),
    Column("population", BigInteger),
    Column("population_year", Integer),
    Column("urban_rural", String),  # urban | rural
    # ruc: an ONS rural-urban class in the boundary layer; density: population per km2
    Column("urban_rural_source", String),
    Column("centroid_lon", Double),
    Column("centroid_lat", Double),
)

dim_date = Table(
    "dim_date",
    metadata,
    Column("date_key", Integer, primary_key=True, autoincrement=False),  # yyyymmdd
    Column("date", Date, nullable=False),
    Column("year", Integer, nullable=False),
    Column("month", Integer, nullable=False),
    Column("month_start", Date, nullable=False),
    Column("financial_year", Integer, nullable=False),  # April start year
    Column("financial_year_label", String, nullable=False),  # 2024/25
    Column("iso_week_start", Date, nullable=False),
    Column("day_of_week", Integer, nullable=False),  # 0 = Monday
)

dim_crime_type = Table(
    "dim_crime_type",
    metadata,
    Column("crime_type", String, primary_key=True),
    Column("category_group", String, nullable=False),
    Column("harm_weight_days", Double, nullable=False),
    Column("is_legacy", Boolean, nullable=False, default=False),
)

dim_outcome = Table(
    "dim_outcome",
    metadata,
    Column("outcome_category", String, primary_key=True),
    Column("outcome_group", String, nullable=False),
    Column("home_office_types", String),
    Column("is_final", Boolean, nullable=False),
)

dim_incident_grade = Table(
    "dim_incident_grade",
    metadata,
    Column("grade_key", Integer, primary_key=True, autoincrement=False),
    Column("grade", String, nullable=False),
    Column("label", String, nullable=False),
    Column("target_urban_minutes", Double),
    Column("target_rural_minutes", Double),
    Column("valid_from", Date, nullable=False),
    Column("valid_to", Date),  # exclusive; NULL: still in force
)

stg_police_uk__crimes = Table(
    "stg_police_uk__crimes",
    metadata,
    Column("crime_id", String),
    Column("month", Date, nullable=False),
    Column("reported_by", String),
    Column("falls_within", String, nullable=False),
    Column("longitude", Double),
    Column("latitude", Double),
    Column("location", String),
    Column("lsoa_code_source", String),
    Column("crime_type", String, nullable=False),
    Column("last_outcome_category", String),
    Column("context", Text),
    Column("source_file", Text, nullable=False),
    Column("source_line", BigInteger, nullable=False),
)

fct_crime = Table(
    "fct_crime",
    metadata,
    # police.uk's Crime ID, or for ASB rows (which have none) a key derived from the
    # file and line, so a re-load of the same file does not duplicate them.
    Column("crime_key", String, nullable=False),
    Column("crime_id", String),
    Column("is_asb", Boolean, nullable=False),
    Column("month", Date, nullable=False),
    Column("force_name", String, nullable=False),
    Column("reported_by", String),
    Column("longitude", Double),
    Column("latitude", Double),
    Column("location", String),
    Column("lsoa_code_source", String),
    Column("lsoa_code", String),  # the geography LSOA it was placed in, or NULL
    Column("placement", String, nullable=False),  # lsoa_code | coordinates | unplaced
    Column("crime_type", String, nullable=False),
    Column("last_outcome_category", String),
    Column("context", Text),
    Column("first_run_id", BigInteger, nullable=False),
    Column("last_run_id", BigInteger, nullable=False),
)

fct_incident = Table(
    "fct_incident",
    metadata,
    Column("source", String, nullable=False),
    Column("incident_id", String, nullable=False),
    Column("force_name", String),
    Column("call_received_at", DateTime),
    Column("call_answered_at", DateTime),
    # NULL when the source does not record creation (e.g. only an arrival time).
    Column("incident_created_at", DateTime),
    Column("graded_at", DateTime),
    Column("dispatched_at", DateTime),
    Column("arrived_at", DateTime),
    Column("closed_at", DateTime),
    # The earliest recorded time; local_date/hour/dow are taken from it.
    Column("reference_at", DateTime, nullable=False),
    Column("local_date", Date, nullable=False),
    Column("local_hour", Integer, nullable=False),
    Column("local_dow", Integer, nullable=False),  # 0 = Monday
    Column("time_zone", String, nullable=False),
    Column("opening_grade", String),
    Column("final_grade", String),
    Column("incident_type", String),
    Column("location", String),
    Column("lsoa_code", String),
    Column("longitude", Double),
    Column("latitude", Double),
    Column("channel", String),  # 999 | 101 | other
    Column("attending_unit", String),
    # Seconds; NULL where a step is not recorded.
    Column("answer_seconds", Double),
    Column("dispatch_seconds", Double),
    Column("travel_seconds", Double),
    Column("attend_seconds", Double),
    # Comma-separated lifecycle steps this source records at all.
    Column("lifecycle_recorded", String, nullable=False),
    Column("last_run_id", BigInteger, nullable=False),
)

# One row per incident source, rebuilt by the cad load in its own transaction, so the
# incidents page learns which sources and dates exist without scanning fct_incident.
agg_incident_source = Table(
    "agg_incident_source",
    metadata,
    Column("source", String, primary_key=True),
    Column("force_name", String),
    Column("incidents", BigInteger, nullable=False),
    Column("first_date", Date, nullable=False),
    Column("last_date", Date, nullable=False),
    Column("lifecycle_recorded", String, nullable=False),
)

# Pre-aggregates of fct_incident for the incidents page, rebuilt by the cad load in
# its own transaction (etl/sources/cad.py). Each incident is scored as the page
# scores it (its final grade's target on its local date, urban or rural by its
# LSOA), so they hold exact counts. Percentiles do not add up: those of the page's
# preset periods are stored whole (agg_incident_percentile), others are read from
# fct_incident. agg_incident_state records what they were built from; queries use
# them only while that still matches (queries/incidents.py).
_INCIDENT_COUNTS = (
    "incidents",  # every incident
    "attended",  # with an arrival time
    "with_target",  # time to attend known and the grade had a target
    "within_target",  # attend_seconds <= target minutes * 60
)
# Volumes by local date and hour: the grades table, hour of week, weekly trend,
# re-grades, the force on the map.
agg_incident_hour = Table(
    "agg_incident_hour",
    metadata,
    Column("source", String, nullable=False),
    Column("force_name", String),
    Column("lifecycle_recorded", String, nullable=False),
    Column("local_date", Date, nullable=False),
    Column("local_dow", Integer, nullable=False),
    Column("local_hour", Integer, nullable=False),
    Column("final_grade", String),
    *(Column(name, BigInteger, nullable=False) for name in _INCIDENT_COUNTS),
    # Re-grades, of incidents with both an opening and a final grade.
    Column("with_both_grades", BigInteger, nullable=False),
    Column("regraded", BigInteger, nullable=False),
    Column("upgraded", BigInteger, nullable=False),
    Column("downgraded", BigInteger, nullable=False),
)
# Volumes by local date and ward (incidents placed in an LSOA of dim_geography).
agg_incident_ward = Table(
    "agg_incident_ward",
    metadata,
    Column("source", String, nullable=False),
    Column("force_name", String),
    Column("local_date", Date, nullable=False),
    Column("final_grade", String),
    Column("lad_code", String),
    Column("ward_code", String),
    *(Column(name, BigInteger, nullable=False) for name in _INCIDENT_COUNTS),
)
# Medians and 90th percentiles per final grade for the page's preset periods (those
# ending at the latest date held, and the same dates a year earlier), for every
# source together (source NULL) and each alone: percentiles do not add up, so these
# are computed whole, from fct_incident, for the periods the page opens on.
agg_incident_percentile = Table(
    "agg_incident_percentile",
    metadata,
    Column("source", String),  # NULL: every source
    Column("start_date", Date, nullable=False),
    Column("end_date", Date, nullable=False),
    Column("final_grade", String),
    Column("median_attend_min", Double),
    Column("p90_attend_min", Double),
    Column("median_answer_s", Double),
    Column("median_dispatch_s", Double),
    Column("median_travel_s", Double),
)
# One row: the fct_incident row count and fingerprints of the targets and the
# geography the aggregates above were built from (AGGREGATE_INPUTS_SQL).
agg_incident_state = Table(
    "agg_incident_state",
    metadata,
    Column("fact_rows", BigInteger, nullable=False),
    Column("grades_hash", String, nullable=False),
    Column("geography_hash", String, nullable=False),
    Column("run_id", BigInteger, nullable=False),
)
# What the incident aggregates depend on, the same SQL at build and at read time.
AGGREGATE_INPUTS_SQL = """
    SELECT
        (SELECT count(*) FROM fct_incident) AS fact_rows,
        (SELECT md5(coalesce(string_agg(
            concat_ws('|', grade, coalesce(CAST(target_urban_minutes AS VARCHAR), '~'),
                      coalesce(CAST(target_rural_minutes AS VARCHAR), '~'),
                      CAST(valid_from AS VARCHAR),
                      coalesce(CAST(valid_to AS VARCHAR), '~')),
            ';' ORDER BY grade_key), ''))
         FROM dim_incident_grade) AS grades_hash,
        (SELECT md5(coalesce(string_agg(
            concat_ws('|', lsoa_code, coalesce(ward_code, '~'),
                      coalesce(lad_code, '~'), coalesce(urban_rural, '~')),
            ';' ORDER BY lsoa_code), ''))
         FROM dim_geography) AS geography_hash
"""

fct_call = Table(
    "fct_call",
    metadata,
    Column("source", String, nullable=False),
    Column("call_id", String, nullable=False),
    Column("line", String, nullable=False),  # 999 | 101 | other
    # Presented to the force: for 999, BT's hand-over.
    Column("queued_at", DateTime, nullable=False),
    Column("bt_connected_at", DateTime),  # 999 only: BT operator took the call
    Column("answered_at", DateTime),
    Column("abandoned_at", DateTime),
    Column("bt_seconds", Double),
    Column("answer_seconds", Double),  # queue entry to answer; NULL if abandoned
    Column("wait_seconds", Double),  # queue entry to answer or abandonment
    Column("local_date", Date, nullable=False),
    Column("local_hour", Integer, nullable=False),
    Column("last_run_id", BigInteger, nullable=False),
)

# The interval shape: per period and line, calls answered by band and abandoned.
# Call-level logs are aggregated into the same bands by the query layer.
fct_call_interval = Table(
    "fct_call_interval",
    metadata,
    Column("source", String, nullable=False),
    Column("interval_start", DateTime, nullable=False),  # local time
    Column("line", String, nullable=False),
    Column("interval_minutes", Integer, nullable=False),
    Column("answered_10", BigInteger, nullable=False),
    Column("answered_15", BigInteger, nullable=False),
    Column("answered_20", BigInteger, nullable=False),
    Column("answered_40", BigInteger, nullable=False),
    Column("answered_60", BigInteger, nullable=False),
    Column("answered_120", BigInteger, nullable=False),
    Column("answered_over_120", BigInteger, nullable=False),
    Column("abandoned", BigInteger, nullable=False),
    Column("offered", BigInteger, nullable=False),
    Column("last_run_id", BigInteger, nullable=False),
)

# The answer bands, non-cumulative, upper bounds exclusive, on the seconds from queue
# entry to answer: fct_call_interval's columns, and how call-level rows are put in
# them (queries/calls.py, queries/incidents.py, agg_call_day).
CALL_BANDS = (
    ("answered_10", "answer_seconds < 10"),
    ("answered_15", "answer_seconds >= 10 AND answer_seconds < 15"),
    ("answered_20", "answer_seconds >= 15 AND answer_seconds < 20"),
    ("answered_40", "answer_seconds >= 20 AND answer_seconds < 40"),
    ("answered_60", "answer_seconds >= 40 AND answer_seconds < 60"),
    ("answered_120", "answer_seconds >= 60 AND answer_seconds < 120"),
    ("answered_over_120", "answer_seconds >= 120"),
)

# Call answering per source, line and local date (a call's queued local date, an
# interval report's row by its local start), from both fct_call and
# fct_call_interval, rebuilt by the calls load in its own transaction
# (etl/sources/calls.py). Seconds are summed as whole microseconds, exact in any
# order, so a period summed from days equals the same sum taken over the calls.
agg_call_day = Table(
    "agg_call_day",
    metadata,
    Column("source", String, nullable=False),
    Column("line", String, nullable=False),
    Column("local_date", Date, nullable=False),
    Column("call_rows", BigInteger, nullable=False),  # fct_call rows counted
    Column("interval_rows", BigInteger, nullable=False),  # fct_call_interval rows
    *(Column(name, BigInteger, nullable=False) for name, _ in CALL_BANDS),
    Column("abandoned", BigInteger, nullable=False),
    Column("offered", BigInteger, nullable=False),
    Column("answer_seconds_n", BigInteger, nullable=False),  # call-level answers
    Column("answer_microseconds", BigInteger),  # their sum; NULL when none
    Column("bt_seconds_n", BigInteger, nullable=False),
    Column("bt_microseconds", BigInteger),
)
# One row: what agg_call_day was built from (CALL_AGGREGATE_INPUTS_SQL). Rows added,
# removed or rewritten by a later run outside the calls load change it.
agg_call_state = Table(
    "agg_call_state",
    metadata,
    Column("call_rows", BigInteger, nullable=False),
    Column("interval_rows", BigInteger, nullable=False),
    Column("latest_run_id", BigInteger, nullable=False),  # newest last_run_id held
    Column("run_id", BigInteger, nullable=False),
)
CALL_AGGREGATE_INPUTS_SQL = """
    SELECT c.n AS call_rows, i.n AS interval_rows,
           coalesce(greatest(c.latest, i.latest), 0) AS latest_run_id
    FROM (SELECT count(*) AS n, max(last_run_id) AS latest FROM fct_call) c
    CROSS JOIN (SELECT count(*) AS n, max(last_run_id) AS latest
                FROM fct_call_interval) i
"""
# One row, true exactly when agg_call_day may be read (no row when never built).
CALL_AGGREGATE_CURRENT_SQL = f"""
    SELECT s.call_rows = n.call_rows AND s.interval_rows = n.interval_rows
           AND s.latest_run_id = n.latest_run_id AS current
    FROM agg_call_state s CROSS JOIN ({CALL_AGGREGATE_INPUTS_SQL}) n
"""

FACT_TABLES = ("fct_crime", "fct_incident", "fct_call", "fct_call_interval")

# Each fact's grain. Declared as checks, not PRIMARY KEYs: DuckDB builds an ART index
# for a key, which made a 3.8M-crime load 5x slower and its file 4.5x larger; the
# loads keep these unique and etl/checks.py proves it after every load.
FACT_KEYS = {
    "fct_crime": ("crime_key",),
    "fct_incident": ("source", "incident_id"),
    "fct_call": ("source", "call_id"),
    "fct_call_interval": ("source", "interval_start", "line"),
}
