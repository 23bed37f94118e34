"""Post-load checks (dbt's unique and not-null tests): a failed check fails the run."""

from __future__ import annotations

from sqlalchemy import Connection, text

from etl.schema import FACT_KEYS


class CheckFailed(Exception):
    pass


def duplicate_keys(conn: Connection, table: str) -> int:
    """Rows beyond the first for any key of the table's grain."""
    keys = ", ".join(f'"{k}"' for k in FACT_KEYS[table])
    return int(
        conn.execute(
            text(
                f'SELECT count(*) - count(DISTINCT ({keys})) FROM "{table}"'
                if len(FACT_KEYS[table]) > 1
                else f'SELECT count(*) - count(DISTINCT {keys}) FROM "{table}"'
            )
        ).scalar()
    )


def null_keys(conn: Connection, table: str) -> int:
    condition = " OR ".join(f'"{k}" IS NULL' for k in FACT_KEYS[table])
    return int(
        conn.execute(text(f'SELECT count(*) FROM "{table}" WHERE {condition}')).scalar()
    )


def check_facts(conn: Connection, tables: tuple[str, ...]) -> None:
    """Raise CheckFailed if a fact table holds a duplicated or missing key."""
    problems = []
    for table in tables:
        if duplicates := duplicate_keys(conn, table):
            problems.append(f"{table}: {duplicates:,} rows duplicate a key")
        if missing := null_keys(conn, table):
            problems.append(f"{table}: {missing:,} rows have no key")
    if problems:
        raise CheckFailed("post-load checks failed: " + "; ".join(problems))
