"""Fixtures shared by the suite: warehouses on both engines and the real data folder."""

from __future__ import annotations

import os
import uuid
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text

ROOT = Path(__file__).resolve().parent.parent
SHARED_DATA = Path(
    os.environ.get("BLUELAMP_SHARED_DATA", ROOT.parent / "shared" / "data")
).resolve()
POSTGRES_URL = os.environ.get(
    "BLUELAMP_TEST_POSTGRES_URL", "postgresql+psycopg://127.0.0.1/test"
)


def _postgres_available() -> bool:
    try:
        engine = create_engine(POSTGRES_URL, connect_args={"connect_timeout": 3})
        with engine.connect():
            pass
        engine.dispose()
        return True
    except Exception:  # noqa: BLE001 - any failure means "not here"
        return False


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """The real public files; skip without them, fail in CI where they are required."""
    if not SHARED_DATA.is_dir():
        message = f"real data folder {SHARED_DATA} is absent"
        if os.environ.get("BLUELAMP_REQUIRE_SHARED_DATA") == "1":
            pytest.fail(message + " and BLUELAMP_REQUIRE_SHARED_DATA=1")
        pytest.skip(message)
    return SHARED_DATA


@pytest.fixture
def duckdb_url(tmp_path) -> str:
    return f"duckdb:///{tmp_path / 'warehouse.duckdb'}"


@pytest.fixture
def postgres_url():
    """A URL whose tables live in a fresh PostgreSQL schema, dropped afterwards."""
    if not _postgres_available():
        if os.environ.get("CI") or os.environ.get("BLUELAMP_REQUIRE_SHARED_DATA"):
            pytest.fail(f"PostgreSQL is not reachable at {POSTGRES_URL}")
        pytest.skip(f"PostgreSQL is not reachable at {POSTGRES_URL}")
    name = f"bl_{uuid.uuid4().hex[:12]}"
    admin = create_engine(POSTGRES_URL)
    with admin.begin() as conn:
        conn.execute(text(f'CREATE SCHEMA "{name}"'))
    yield f"{POSTGRES_URL}?options=-csearch_path%3D{name}"
    with admin.begin() as conn:
        conn.execute(text(f'DROP SCHEMA "{name}" CASCADE'))
    admin.dispose()


@pytest.fixture(params=["duckdb", "postgres"])
def warehouse_url(request) -> str:
    """Each test that takes this runs once on DuckDB and once on PostgreSQL."""
    return request.getfixturevalue(f"{request.param}_url")
