"""Whose areas a query may read: the area scope of the user a request runs for.

Access is enforced here, in the query layer, rather than by each page: the web app
sets the scope for every request from the signed-in user (`restricted_to`), and
every query over crimes, incidents and areas adds `lsoa_condition` or
`area_condition`, so a figure, map, drill or CSV can only hold the user's areas
whatever the URL or callback payload asks for. Outside a request (the ETL, the CLI,
benchmarks) nothing is restricted.

A scope is a set of area codes at any level (force, local authority, ward, LSOA);
it admits every LSOA inside any of them. Facts with no LSOA (unplaced crimes,
incidents without a location) cannot be shown to lie in an area, so a restricted
user never sees them.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterable, Iterator
from contextvars import ContextVar

PARAM = "scope_areas"

# None: unrestricted. A frozenset (possibly empty: nothing) of area codes otherwise.
_allowed: ContextVar[frozenset[str] | None] = ContextVar("bluelamp_scope", default=None)


def allowed() -> frozenset[str] | None:
    """The current area codes, or None when unrestricted."""
    return _allowed.get()


def restricted() -> bool:
    return _allowed.get() is not None


def set_scope(codes: Iterable[str] | None):
    """Set the scope for the rest of this context; returns a token for `reset`."""
    return _allowed.set(None if codes is None else frozenset(codes))


def reset(token) -> None:
    _allowed.reset(token)


@contextlib.contextmanager
def restricted_to(codes: Iterable[str] | None) -> Iterator[None]:
    token = set_scope(codes)
    try:
        yield
    finally:
        reset(token)


def params() -> dict:
    """The bound parameter the conditions below use (nothing when they use none)."""
    codes = _allowed.get()
    return {PARAM: sorted(codes)} if codes else {}


def key() -> tuple[str, ...] | None:
    """The scope as a cache key part: results for one scope never serve another."""
    codes = _allowed.get()
    return None if codes is None else tuple(sorted(codes))


_SCOPED_LSOAS = f"""
    (SELECT sg.lsoa_code FROM dim_geography sg
     WHERE sg.lsoa_code IN :{PARAM} OR sg.ward_code IN :{PARAM}
        OR sg.lad_code IN :{PARAM}
        OR sg.force_name IN (SELECT sa.force_name FROM dim_area sa
                             WHERE sa.level = 'force' AND sa.area_code IN :{PARAM}))
"""
# The dim_geography column naming each LSOA's area at a level.
_LEVEL_COLUMN = {
    "force": "force_name",
    "lad": "lad_code",
    "ward": "ward_code",
    "lsoa": "lsoa_code",
}


def lsoa_condition(lsoa_column: str) -> str:
    """SQL: the LSOA in `lsoa_column` lies in the scope (TRUE when unrestricted)."""
    codes = _allowed.get()
    if codes is None:
        return "TRUE"
    if not codes:
        return "FALSE"
    return f"({lsoa_column} IN {_SCOPED_LSOAS})"


def area_condition(alias: str, level: str) -> str:
    """SQL on dim_area `alias` at `level`: the area holds some LSOA of the scope.

    A force or local authority a scoped user sees on a map is one of theirs or one
    containing theirs; its figures still count only the scoped LSOAs.
    """
    codes = _allowed.get()
    if codes is None:
        return "TRUE"
    if not codes:
        return "FALSE"
    column = _LEVEL_COLUMN[level]
    key_column = f"{alias}.force_name" if level == "force" else f"{alias}.area_code"
    return (
        f"({key_column} IN (SELECT vg.{column} FROM dim_geography vg "
        f"WHERE vg.lsoa_code IN {_SCOPED_LSOAS}))"
    )
