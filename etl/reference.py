"""Reference rows: crime types with harm weights, police.uk outcome groups."""

from __future__ import annotations

import pandas as pd
from sqlalchemy import Connection

from etl import pipeline

UNCLASSIFIED = "Unclassified"

# Harm weights are days of imprisonment in the style of the Cambridge Crime Harm
# Index: the sentencing-guideline starting point for a typical offence in each
# police.uk category, averaged by eye over the offences the category mixes. They are
# an approximation for ranking places and times by harm, not a published index; a
# force replaces them with weights from its own offence-level data.
# (crime_type, category_group, harm_weight_days, is_legacy)
CRIME_TYPES: list[tuple[str, str, float, bool]] = [
    ("Anti-social behaviour", "Public order and ASB", 0.0, False),  # not a crime
    ("Bicycle theft", "Acquisitive", 5.0, False),
    ("Burglary", "Acquisitive", 40.0, False),
    ("Criminal damage and arson", "Criminal damage", 20.0, False),
    ("Drugs", "Drugs and weapons", 20.0, False),
    ("Other crime", "Other", 15.0, False),
    ("Other theft", "Acquisitive", 5.0, False),
    ("Possession of weapons", "Drugs and weapons", 180.0, False),
    ("Public order", "Public order and ASB", 10.0, False),
    ("Robbery", "Violence", 365.0, False),
    ("Shoplifting", "Acquisitive", 2.0, False),
    ("Theft from the person", "Acquisitive", 30.0, False),
    ("Vehicle crime", "Acquisitive", 10.0, False),
    ("Violence and sexual offences", "Violence", 60.0, False),
    # Categories only published before May 2013.
    ("Violent crime", "Violence", 60.0, True),
    ("Public disorder and weapons", "Public order and ASB", 30.0, True),
]

# The six categories of the 2011 police.uk files. Five of them are still current
# names (one row each above); only "Violent crime" is legacy-only.
LEGACY_2011_CATEGORIES = (
    "Anti-social behaviour",
    "Burglary",
    "Other crime",
    "Robbery",
    "Vehicle crime",
    "Violent crime",
)

CHARGED = "Charged or summonsed"
OOC_FORMAL = "Out-of-court (formal)"
OOC_INFORMAL = "Out-of-court (informal)"
DIVERSIONARY = "Diversionary"
TIC = "Taken into consideration"
PREVENTED = "Prosecution prevented or not in the public interest"
EVIDENTIAL = "Evidential difficulties"
NO_SUSPECT = "Investigation complete, no suspect identified"
TRANSFERRED = "Transferred to other body"
OPEN = "Under investigation or awaiting outcome"

# police.uk "Last outcome category" -> (Home Office outcome group, outcome types,
# is_final). Court results all follow a charge or summons. police.uk publishes no
# text of its own for diversionary outcomes (type 22); DIVERSIONARY names the group
# for sources that do.
OUTCOMES: list[tuple[str, str, str | None, bool]] = [
    ("Investigation complete; no suspect identified", NO_SUSPECT, "18", True),
    ("Unable to prosecute suspect", EVIDENTIAL, "14,15,16", True),
    ("Local resolution", OOC_INFORMAL, "8", True),
    ("Offender given a caution", OOC_FORMAL, "3", True),
    ("Offender given a drugs possession warning", OOC_INFORMAL, "2", True),
    ("Offender given penalty notice", OOC_FORMAL, "6", True),
    ("Offender given a penalty notice", OOC_FORMAL, "6", True),
    ("Action to be taken by another organisation", TRANSFERRED, "20", True),
    ("Formal action is not in the public interest", PREVENTED, "21", True),
    ("Further action is not in the public interest", PREVENTED, "10,12", True),
    ("Further investigation is not in the public interest", PREVENTED, "21", True),
    ("Offender deprived of property", CHARGED, "1", True),
    ("Suspect charged as part of another case", TIC, "4", True),
    ("Court result unavailable", CHARGED, "1", True),
    ("Awaiting court outcome", CHARGED, "1", False),
    ("Under investigation", OPEN, None, False),
    ("Status update unavailable", OPEN, None, False),
    ("Offender sent to prison", CHARGED, "1", True),
    ("Offender given suspended prison sentence", CHARGED, "1", True),
    ("Offender given community sentence", CHARGED, "1", True),
    ("Offender fined", CHARGED, "1", True),
    ("Offender given conditional discharge", CHARGED, "1", True),
    ("Offender given absolute discharge", CHARGED, "1", True),
    ("Offender ordered to pay compensation", CHARGED, "1", True),
    ("Offender otherwise dealt with", CHARGED, "1", True),
    ("Defendant found not guilty", CHARGED, "1", True),
    ("Defendant sent to Crown Court", CHARGED, "1", False),
    ("Court case unable to proceed", CHARGED, "1", True),
]


def crime_type_frame() -> pd.DataFrame:
    return pd.DataFrame(
        CRIME_TYPES,
        columns=["crime_type", "category_group", "harm_weight_days", "is_legacy"],
    )


def outcome_frame() -> pd.DataFrame:
    return pd.DataFrame(
        OUTCOMES,
        columns=["outcome_category", "outcome_group", "home_office_types", "is_final"],
    )


def upsert_reference(conn: Connection) -> None:
    """Write the reference rows; crime types a source added as Unclassified stay."""
    crime_types = crime_type_frame()
    pipeline.upsert(
        conn, "dim_crime_type", crime_types, ["crime_type"], list(crime_types.columns)
    )
    outcomes = outcome_frame()
    pipeline.upsert(
        conn, "dim_outcome", outcomes, ["outcome_category"], list(outcomes.columns)
    )


def unclassified_crime_types(names: list[str]) -> pd.DataFrame:
    """Rows for crime types a source used that the reference list does not know."""
    return pd.DataFrame(
        {
            "crime_type": names,
            "category_group": UNCLASSIFIED,
            "harm_weight_days": 0.0,
            "is_legacy": False,
        }
    )
