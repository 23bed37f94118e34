"""How people sign in: HTTP Basic against the users file (the demo), or OpenID Connect
(Azure AD / Entra ID and the like) with the role taken from a group claim."""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

import dash_auth
import requests
from dash import Dash
from flask import Response, request, session
from markupsafe import escape
from werkzeug.routing import Map, Rule

import accounts
import settings

log = logging.getLogger("bluelamp.login")

# dash-auth's routes with the one provider registered as "idp": the redirect URI to
# register with the provider is https://<host>/oidc/idp/callback.
IDP = "idp"
LOGIN_ROUTE = "/oidc/<idp>/login"
CALLBACK_ROUTE = "/oidc/<idp>/callback"
LOGOUT_ROUTE = "/oidc/logout"
SCOPE = "openid profile email"
# A user in the groups of several roles gets the first of these; roles from a custom
# roles file rank after them, in the order BLUELAMP_OIDC_ROLE_GROUPS names them.
ROLE_PRECEDENCE = ("admin", "analyst", "leader", "commander", "display")
# Sign in again after a shift, so a change of groups at the provider takes effect.
SESSION_SECONDS = 12 * 3600
SIGNED_IN_AT = "bluelamp_signed_in_at"
REQUIRED = {
    "BLUELAMP_OIDC_METADATA_URL": "the provider's .well-known/openid-configuration",
    "BLUELAMP_OIDC_CLIENT_ID": "the application (client) id of the registration",
    "BLUELAMP_OIDC_CLIENT_SECRET": "a client secret of the registration",
    "BLUELAMP_OIDC_ROLE_GROUPS": "which group gives which role",
    "BLUELAMP_SECRET_KEY": "the key signing the session cookie that holds the login, "
    "the same in every worker",
}


class LoginSettingsError(ValueError):
    """The login settings are missing or malformed: the app must not start."""


@dataclass(frozen=True)
class OidcConfig:
    metadata_url: str
    client_id: str
    client_secret: str = field(repr=False)  # never in a log line or traceback
    # (role, its group ids or names), most powerful role first
    role_groups: tuple[tuple[str, frozenset[str]], ...] = ()
    group_claim: str = "groups"
    areas_claim: str = ""
    name_claim: str = "preferred_username"
    # Groups whose members see beyond their areas (a scoped role's `widen`).
    widen_groups: frozenset[str] = frozenset()

    @property
    def mapped_groups(self) -> frozenset[str]:
        roles = frozenset().union(*(groups for _, groups in self.role_groups))
        return roles | self.widen_groups


def install(
    app: Dash, env: Mapping[str, str]
) -> Callable[[], accounts.Identity | None]:
    """Put the login chosen by BLUELAMP_LOGIN in front of every route of `app`, and
    return the function naming the current request's user (None: nobody)."""
    method = settings.get("BLUELAMP_LOGIN", env).strip().lower()
    if method == "basic":
        verifier = accounts.Verifier(settings.get("BLUELAMP_USERS_FILE", env))
        _BasicAuth(app, auth_func=verifier)
        return lambda: verifier.identity(_basic_user())
    if method == "oidc":
        config = oidc_config(env)
        _OIDCAuth(app, config)
        log.info(
            "login: OpenID Connect via %s, client %s",
            config.metadata_url,
            config.client_id,
        )
        return lambda: identity_from_claims(session.get("user"), config)
    raise LoginSettingsError(
        f"BLUELAMP_LOGIN is {method!r}: it must be 'basic' (the users file) or 'oidc'"
    )


def oidc_config(env: Mapping[str, str]) -> OidcConfig:
    """The OpenID Connect settings, checked: a clear error naming what is missing."""
    missing = [name for name in REQUIRED if not settings.get(name, env).strip()]
    if missing:
        raise LoginSettingsError(
            "BLUELAMP_LOGIN=oidc needs "
            + "; ".join(f"{name} ({REQUIRED[name]})" for name in missing)
        )
    metadata_url = settings.get("BLUELAMP_OIDC_METADATA_URL", env).strip()
    if not re.match(r"https?://", metadata_url):
        raise LoginSettingsError(
            f"BLUELAMP_OIDC_METADATA_URL must be an http(s) URL, not {metadata_url!r}"
        )
    return OidcConfig(
        metadata_url=metadata_url,
        client_id=settings.get("BLUELAMP_OIDC_CLIENT_ID", env).strip(),
        client_secret=settings.get("BLUELAMP_OIDC_CLIENT_SECRET", env).strip(),
        role_groups=parse_role_groups(settings.get("BLUELAMP_OIDC_ROLE_GROUPS", env)),
        group_claim=settings.get("BLUELAMP_OIDC_GROUP_CLAIM", env).strip(),
        areas_claim=settings.get("BLUELAMP_OIDC_AREAS_CLAIM", env).strip(),
        widen_groups=frozenset(
            _strings(settings.get("BLUELAMP_OIDC_WIDEN_GROUPS", env))
        ),
        name_claim=settings.get("BLUELAMP_OIDC_NAME_CLAIM", env).strip(),
    )


def parse_role_groups(text: str) -> tuple[tuple[str, frozenset[str]], ...]:
    """`role=group[,group...];role=...` -> ((role, groups), ...) by precedence."""
    groups_of: dict[str, set[str]] = {}
    for entry in filter(None, (e.strip() for e in text.split(";"))):
        role, sep, groups = (part.strip() for part in entry.partition("="))
        named = {g.strip() for g in groups.split(",") if g.strip()}
        if not sep or not role or not named:
            raise LoginSettingsError(
                f"BLUELAMP_OIDC_ROLE_GROUPS: {entry!r} is not role=group[,group...]"
            )
        if role not in accounts.ROLES:
            raise LoginSettingsError(
                f"BLUELAMP_OIDC_ROLE_GROUPS: unknown role {role!r}; "
                f"roles are {', '.join(accounts.ROLES)}"
            )
        groups_of.setdefault(role, set()).update(named)
    if not groups_of:
        raise LoginSettingsError("BLUELAMP_OIDC_ROLE_GROUPS maps no group to a role")
    named_order = list(groups_of)

    def rank(role: str) -> tuple[int, int]:
        if role in ROLE_PRECEDENCE:
            return (0, ROLE_PRECEDENCE.index(role))
        return (1, named_order.index(role))

    return tuple(
        (role, frozenset(groups_of[role])) for role in sorted(groups_of, key=rank)
    )


def identity_from_claims(
    claims: Mapping | None, config: OidcConfig
) -> accounts.Identity | None:
    """The user the provider vouched for, with the most powerful role their groups
    give; None when no group of theirs maps to a role."""
    if not claims:
        return None
    groups = set(_strings(claims.get(config.group_claim)))
    role = next((r for r, mapped in config.role_groups if groups & mapped), None)
    if role is None:
        return None
    areas = _strings(claims.get(config.areas_claim)) if config.areas_claim else ()
    widen = bool(groups & config.widen_groups)
    return accounts.Identity(_name(claims, config), role, areas, widen)


def _name(claims: Mapping, config: OidcConfig) -> str:
    for claim in (config.name_claim, "preferred_username", "email", "sub"):
        if claims.get(claim):
            return str(claims[claim])
    return "unknown"


def _strings(value) -> tuple[str, ...]:
    """A claim holding a list, or one string of items split by commas, semicolons
    or spaces (directory extension attributes are often one string)."""
    if value is None:
        return ()
    items = (
        value if isinstance(value, list | tuple) else re.split(r"[,;\s]+", str(value))
    )
    return tuple(dict.fromkeys(s for s in (str(i).strip() for i in items) if s))


class _BasicAuth(dash_auth.BasicAuth):
    """dash-auth's BasicAuth, reading the header with werkzeug's parser, so a
    malformed Authorization header is a 401 rather than a server error."""

    def is_authorized(self):
        auth = request.authorization
        if auth is None or auth.type != "basic":
            return False
        return self._auth_func(auth.username or "", auth.password or "")


def _basic_user() -> str | None:
    auth = request.authorization
    return auth.username if auth is not None and auth.type == "basic" else None


class _OIDCAuth(dash_auth.OIDCAuth):
    """dash-auth's OpenID Connect login with one provider, plus what a police
    deployment needs: no role, no pages; failures as pages, not 500s; a session
    that ends after a shift and a cookie that holds only the claims used."""

    def __init__(self, app: Dash, config: OidcConfig):
        super().__init__(
            app,
            # dash-auth 2.3's default here is `Optional[None]`, not None, and would
            # replace the app's key with it: hand the key back explicitly.
            secret_key=app.server.secret_key,
            login_route=LOGIN_ROUTE,
            callback_route=CALLBACK_ROUTE,
            logout_route=LOGOUT_ROUTE,
        )
        self.config = config
        server = app.server
        # A real provider is reached over https, so Bluelamp is served over https
        # too; only a provider on plain http (a local test one) allows plain cookies.
        server.config["SESSION_COOKIE_SECURE"] = config.metadata_url.startswith(
            "https://"
        )
        server.config["SESSION_COOKIE_HTTPONLY"] = True
        server.config["SESSION_COOKIE_SAMESITE"] = "Lax"
        self.register_provider(
            IDP,
            client_id=config.client_id,
            client_secret=config.client_secret,
            server_metadata_url=config.metadata_url,
            client_kwargs={"scope": SCOPE, "code_challenge_method": "S256"},
        )
        self._own_routes = Map(
            [Rule(r) for r in (LOGIN_ROUTE, CALLBACK_ROUTE, LOGOUT_ROUTE)]
        ).bind("")
        # After dash-auth's check (registered in super().__init__), before the
        # app's page checks.
        server.before_request(self._refuse_without_role)

    def is_authorized(self):
        user = session.get("user")
        if user and time.time() - user.get(SIGNED_IN_AT, 0) > SESSION_SECONDS:
            session.pop("user", None)
        return super().is_authorized()

    def login_request(self, idp: str | None = None):
        # The page's own requests (callbacks, layout, polling) cannot follow a
        # redirect to the provider: tell them to reload instead.
        if request.method != "GET" or request.path.startswith(("/_dash-", "/api/")):
            return _page(
                "Not signed in", "Your session has ended: reload the page.", status=401
            )
        try:
            return super().login_request(idp)
        except (requests.RequestException, ValueError, RuntimeError) as exc:
            log.warning("sign-in: the identity provider did not answer: %s", exc)
            return _page(
                "Sign-in unavailable",
                "The identity provider did not answer. Try again in a minute.",
                status=502,
            )

    def logout(self):
        super().logout()  # clears the session
        return _page(
            "Signed out",
            "You are signed out of Bluelamp. You may still be signed in to your "
            "organisation's account.",
            link=("Sign in again", "/"),
        )

    def callback(self, idp: str):
        try:
            answer = super().callback(idp)
        except Exception:  # noqa: BLE001 - a sign-in that fails is a 401, never a 500
            log.exception("sign-in failed at the callback")
            return _sign_in_failed()
        if isinstance(answer, tuple):  # dash-auth's (message, status) for a refusal
            message, status = answer
            log.warning("sign-in refused: %r", message)
            # Its message echoes the callback's query string: never send it as HTML.
            return _sign_in_failed(status)
        user = session.get("user")
        if user:
            session["user"] = self._kept_claims(user)
            identity = identity_from_claims(session["user"], self.config)
            if identity is None:
                log.warning(
                    "sign-in: %s has no group mapped to a role%s",
                    _name(user, self.config),
                    " (the token lists too many groups: assign the groups to the "
                    "application)"
                    if _groups_overage(user, self.config)
                    else "",
                )
            else:
                log.info("sign-in: %s as %s", identity.name, identity.role)
        return answer

    def _kept_claims(self, claims: Mapping) -> dict:
        """Only the claims used, and only the mapped groups: a cookie holds 4 KB and
        a user can be in hundreds of groups."""
        keep = {"sub", "name", "email", "preferred_username", self.config.name_claim}
        if self.config.areas_claim:
            keep.add(self.config.areas_claim)
        kept = {k: claims[k] for k in keep if k in claims}
        groups = _strings(claims.get(self.config.group_claim))
        kept[self.config.group_claim] = [
            g for g in groups if g in self.config.mapped_groups
        ]
        kept[SIGNED_IN_AT] = int(time.time())
        return kept

    def _refuse_without_role(self):
        if "user" not in session or self._own_routes.test(request.path):
            return None
        if identity_from_claims(session["user"], self.config) is not None:
            return None
        return _page(
            "No Bluelamp role",
            f"You are signed in as {_name(session['user'], self.config)}, but none of "
            "your groups gives a Bluelamp role, so there is nothing here you may see. "
            "Ask your Bluelamp administrator to add you to one of its groups, then "
            "sign in again.",
            link=("Sign out", LOGOUT_ROUTE),
            status=403,
        )


def _groups_overage(claims: Mapping, config: OidcConfig) -> bool:
    # Entra ID replaces a list of over 200 groups with a pointer to Graph.
    return config.group_claim in (claims.get("_claim_names") or {})


def _sign_in_failed(status: int = 401) -> Response:
    return _page(
        "Sign-in failed",
        "The sign-in could not be completed (an expired or reused link, or the "
        "identity provider refused it).",
        link=("Try again", "/"),
        status=status,
    )


def _page(
    title: str, message: str, link: tuple[str, str] | None = None, status: int = 200
) -> Response:
    """A small HTML page of its own: these answers come before the app's layout."""
    anchor = f'<p><a href="{escape(link[1])}">{escape(link[0])}</a></p>' if link else ""
    body = (
        f"<!doctype html><html lang=en><head><meta charset=utf-8>"
        f"<title>{escape(title)} - Bluelamp</title></head>"
        f'<body style="font-family: sans-serif; margin: 3rem 5rem">'
        f"<h1>{escape(title)}</h1><p>{escape(message)}</p>{anchor}</body></html>"
    )
    return Response(body, status=status, mimetype="text/html")
