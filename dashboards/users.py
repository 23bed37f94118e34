"""Users and roles (admin only): who may sign in, with which role and areas.

Read-only: users are added with `python -m etl user ...`-style tooling or by editing
the users file (accounts.user_entry writes an entry); roles are roles.toml. Password
hashes are never shown.
"""

from __future__ import annotations

import dash
import dash_bootstrap_components as dbc
import pandas as pd
from dash import html
from flask import has_app_context

import accounts
from dashboards import components

dash.register_page(
    __name__,
    path="/users",
    name="Users",
    title="Users and roles",
    order=9,
    id_prefix="users-",
    description="Who may sign in, their roles and areas; what each role may do.",
)

USER_COLUMNS = ["name", "role", "areas", "widen", "limited_to_areas"]
ROLE_COLUMNS = ["role", "pages", "export", "scoped", "person_level"]


def users_frame(users: dict[str, accounts.User]) -> pd.DataFrame:
    rows = []
    for user in sorted(users.values(), key=lambda u: u.name):
        identity = accounts.Identity(user.name, user.role, user.areas, user.widen)
        limited = identity.scope()
        rows.append(
            {
                "name": user.name,
                "role": user.role,
                "areas": ", ".join(user.areas),
                "widen": "yes" if user.widen else "",
                "limited_to_areas": "all areas"
                if limited is None
                else (", ".join(sorted(limited)) or "none (no areas set)"),
            }
        )
    return pd.DataFrame(rows, columns=USER_COLUMNS)


def roles_frame(roles: dict[str, accounts.Role]) -> pd.DataFrame:
    rows = [
        {
            "role": role.name,
            "pages": ", ".join(sorted(role.pages)),
            "export": "yes" if role.export else "",
            "scoped": "yes" if role.scoped else "",
            "person_level": "yes" if role.person_level else "",
        }
        for role in roles.values()
    ]
    return pd.DataFrame(rows, columns=ROLE_COLUMNS)


def layout(**_):
    # Dash validates layouts once outside any request: no app, no users there.
    runtime = components.runtime() if has_app_context() else None
    oidc = runtime is not None and runtime.login_method == "oidc"
    path = runtime.users_file if runtime and not oidc else ""
    try:
        users = accounts.load_users(path) if path else {}
        problem = None
    except (ValueError, OSError) as exc:
        users, problem = {}, f"The users file could not be read: {exc}"
    if oidc:
        source = (
            "People sign in through the identity provider (OpenID Connect); each "
            "one's role comes from their groups (BLUELAMP_OIDC_ROLE_GROUPS) and "
            "their areas from BLUELAMP_OIDC_AREAS_CLAIM, so no users are listed here."
        )
    else:
        source = f"{len(users)} users in the users file ({path or 'not set'})."
    user_table = components.data_table("users-table", USER_COLUMNS, page_size=25)
    user_table.data = components.table_records(users_frame(users))
    role_table = components.data_table("users-roles-table", ROLE_COLUMNS)
    role_table.data = components.table_records(roles_frame(accounts.ROLES))
    return html.Div(
        [
            html.H1("Users and roles"),
            dbc.Alert(problem, color="danger") if problem else None,
            html.P(
                [
                    source,
                    " A scoped role sees only the user's areas unless widened.",
                ],
                className="text-muted",
            ),
            user_table,
            html.H2("Roles", className="h4 mt-4"),
            role_table,
        ]
    )
