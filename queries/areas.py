"""The area hierarchy in SQL, shared by every subject: force -> LAD -> ward -> LSOA."""

from __future__ import annotations

from queries import scope

LEVELS = ("force", "lad", "ward", "lsoa")
CHILD_LEVEL = {"force": "lad", "lad": "ward", "ward": "lsoa", "lsoa": None}
# dim_geography's column holding an LSOA's parent at each level below the force.
GEOGRAPHY_COLUMN = {"lad": "lad_code", "ward": "ward_code", "lsoa": "lsoa_code"}
# A force is chosen by its dim_area code; facts name their force by force_name.
FORCE_NAME = (
    "(SELECT force_name FROM dim_area WHERE area_code = :area_code AND level = 'force')"
)


def membership(area_level: str, area_code: str | None, level: str) -> str:
    """A condition on dim_area `a`: the area at `level` lies inside the chosen area.

    The chosen code itself is bound as :area_code by the caller. Areas holding none
    of the user's scope (queries.scope) are left out.
    """
    inside = _inside(area_level, area_code, level)
    return f"{inside} AND {scope.area_condition('a', level)}"


def _inside(area_level: str, area_code: str | None, level: str) -> str:
    if area_code is None:
        return "TRUE"
    if level == area_level:
        return "a.area_code = :area_code"
    if area_level == "force":
        return f"a.force_name = {FORCE_NAME}"
    if level == "ward":  # inside a local authority: its parent
        return "a.parent_code = :area_code"
    column = GEOGRAPHY_COLUMN[area_level]
    return (
        "a.area_code IN "
        f"(SELECT lsoa_code FROM dim_geography WHERE {column} = :area_code)"
    )
