"""The one table of Bluelamp's settings: name, default and help, read from the env."""

from __future__ import annotations

import os
from dataclasses import dataclass


@dataclass(frozen=True)
class Setting:
    name: str
    default: str
    help: str


SETTINGS: tuple[Setting, ...] = (
    Setting(
        "BLUELAMP_WAREHOUSE_URL",
        "duckdb:///bluelamp.duckdb",
        "SQLAlchemy URL of the warehouse: a DuckDB file (published as immutable "
        "snapshots) or postgresql+psycopg://host/db.",
    ),
    Setting(
        "BLUELAMP_SECRET_KEY",
        "",
        "Flask secret key for sessions. Required outside the demo; the demo makes a "
        "random one per start.",
    ),
    Setting(
        "BLUELAMP_USERS_FILE",
        "users.toml",
        "TOML file of users: name, salted password hash and role.",
    ),
    Setting(
        "BLUELAMP_ROLES_FILE",
        "",
        "TOML file of roles: pages, export, area scoping, person-level rows; empty "
        "for the shipped roles.toml.",
    ),
    Setting(
        "BLUELAMP_FRAME_ANCESTORS",
        "'self'",
        "Who may frame pages asked for with ?embed=1 (the wall's frames): 'self', "
        "'none' or space-separated origins (CSP frame-ancestors); other pages never.",
    ),
    Setting(
        "BLUELAMP_CACHE_URL",
        "",
        "Cache for query results: empty for a per-process memory cache, or "
        "redis://host:port/db shared by every worker.",
    ),
    Setting(
        "BLUELAMP_TILE_URL",
        "",
        "Map tile server URL template for exported maps; empty draws on a blank "
        "background (no network).",
    ),
    Setting(
        "BLUELAMP_AUDIT_URL",
        "",
        "SQLAlchemy URL of the audit trail; empty for the warehouse itself on "
        "PostgreSQL, or audit.sqlite beside the DuckDB file (which only the ETL "
        "writes).",
    ),
    Setting(
        "BLUELAMP_EXPORT_REASON",
        "optional",
        "Whether an export must give a reason code: optional or required.",
    ),
    Setting(
        "BLUELAMP_EXPORT_REASON_CODES",
        "investigation,briefing,performance-review,foi-request,audit",
        "Comma-separated reason codes an export may give.",
    ),
    Setting(
        "BLUELAMP_DEMO_DIR",
        "demo-data",
        "Folder where `python -m etl demo` writes the generated source files.",
    ),
    Setting(
        "BLUELAMP_INTERVAL_POLICE_UK_STREET",
        "360",
        "Minutes between scheduled refreshes of police.uk street crime.",
    ),
    Setting(
        "BLUELAMP_INTERVAL_CAD",
        "5",
        "Minutes between scheduled refreshes of the command-and-control export.",
    ),
    Setting(
        "BLUELAMP_INTERVAL_CALLS",
        "15",
        "Minutes between scheduled refreshes of call answering.",
    ),
    Setting(
        "BLUELAMP_INTERVAL_BOUNDARIES",
        "10080",
        "Minutes between scheduled refreshes of boundary layers.",
    ),
    Setting(
        "BLUELAMP_INTERVAL_POPULATION",
        "10080",
        "Minutes between scheduled refreshes of resident population.",
    ),
    Setting(
        "BLUELAMP_SCHEDULE_FILE",
        "schedule.toml",
        "TOML file naming, per source, the path (and mapping) the scheduler loads.",
    ),
    Setting(
        "BLUELAMP_LOGIN",
        "basic",
        "How people sign in: basic (HTTP Basic against the users file, the demo) or "
        "oidc (OpenID Connect, roles from a group claim).",
    ),
    Setting(
        "BLUELAMP_OIDC_METADATA_URL",
        "",
        "The provider's .well-known/openid-configuration URL (oidc login).",
    ),
    Setting(
        "BLUELAMP_OIDC_CLIENT_ID",
        "",
        "Client (application) id of Bluelamp's registration at the provider.",
    ),
    Setting(
        "BLUELAMP_OIDC_CLIENT_SECRET",
        "",
        "Client secret of that registration; never logged or shown.",
    ),
    Setting(
        "BLUELAMP_OIDC_GROUP_CLAIM",
        "groups",
        "ID-token claim listing the user's groups.",
    ),
    Setting(
        "BLUELAMP_OIDC_ROLE_GROUPS",
        "",
        "Which groups give which role: role=group[,group];role=group... "
        "(group ids or names as the claim lists them).",
    ),
    Setting(
        "BLUELAMP_OIDC_AREAS_CLAIM",
        "",
        "ID-token claim listing the area codes of a scoped role (e.g. commander); "
        "empty: scoped users see no area.",
    ),
    Setting(
        "BLUELAMP_OIDC_WIDEN_GROUPS",
        "",
        "Groups (comma-separated) whose members in a scoped role see beyond their "
        "areas; empty: nobody widens.",
    ),
    Setting(
        "BLUELAMP_OIDC_NAME_CLAIM",
        "preferred_username",
        "ID-token claim naming the user on pages and in the audit trail.",
    ),
    Setting(
        "BLUELAMP_SUPPRESS_BELOW",
        "0",
        "Disclosure control: counts from 1 to this minus 1 are blanked and marked "
        "suppressed in maps and exports for the roles below; 0 = off.",
    ),
    Setting(
        "BLUELAMP_SUPPRESS_ROLES",
        "display,commander",
        "Roles (comma-separated) that disclosure control applies to.",
    ),
)

_BY_NAME = {s.name: s for s in SETTINGS}


def get(name: str, environ: dict[str, str] | None = None) -> str:
    """Return a setting's value from the environment, or its default."""
    setting = _BY_NAME[name]
    env = os.environ if environ is None else environ
    value = env.get(name, "")
    return value if value != "" else setting.default


def interval_setting_name(source: str) -> str:
    return "BLUELAMP_INTERVAL_" + source.upper().replace("-", "_")
