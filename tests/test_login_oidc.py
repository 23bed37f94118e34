"""OpenID Connect login end to end: the real app and dash-auth's real OIDCAuth against
a small identity provider served here (discovery, authorize, token, JWKS, userinfo).

Dash Pages allows one app per process and the basic-login app of test_app_auth lives
in this one, so the OIDC app runs in a child process; a browser is played by a
requests session that follows each redirect by hand.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import secrets
import subprocess
import sys
import textwrap
import threading
import time
import uuid
from pathlib import Path
from urllib.parse import parse_qs, unquote, urlencode, urlsplit

import pytest
import requests
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from flask import Flask, abort, jsonify, redirect, request
from werkzeug.serving import make_server

import accounts
import login

ROOT = Path(__file__).resolve().parent.parent
CLIENT_ID = "bluelamp-test-client"
# Distinctive, so a search of every response and log line cannot miss it.
CLIENT_SECRET = "cs-" + secrets.token_urlsafe(24)
AREAS_CLAIM = "bluelamp_areas"
GROUP = {
    "admin": "0a0d-admins",
    "analyst": "7f3c-analysts",
    "leader": "1b2b-leaders",
    "commander": "1a2b-commanders",
    "display": "9d9d-displays",
}
ROLE_GROUPS = ";".join(f"{role}={group}" for role, group in GROUP.items())
USERS = {
    "ana": {"groups": [GROUP["analyst"], "staff-canteen"]},
    "nobody": {"groups": ["staff-canteen", "cycle-to-work"]},
    "ungrouped": {},
    "cmdr": {"groups": [GROUP["commander"]], AREAS_CLAIM: "E08000026, E08000025"},
    "cmdr-unset": {"groups": [GROUP["commander"]]},
    "all-five": {"groups": list(reversed(GROUP.values()))},
    "lead-cmdr": {"groups": [GROUP["commander"], GROUP["leader"]]},
    "disp-cmdr": {"groups": [GROUP["display"], GROUP["commander"]]},
    "admin-disp": {"groups": [GROUP["display"], GROUP["admin"]]},
    # Far more groups than a 4 KB cookie could hold as a list.
    "busy": {"groups": [str(uuid.uuid4()) for _ in range(300)] + [GROUP["analyst"]]},
}


# -- the identity provider ---------------------------------------------------------


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _int_b64url(number: int) -> str:
    return _b64url(number.to_bytes((number.bit_length() + 7) // 8, "big"))


class FakeProvider:
    """An OpenID Connect provider for the code flow with PKCE, as Entra ID does it:
    client_secret_basic or _post, RS256 ID tokens carrying a groups claim."""

    KID = "test-key-1"

    def __init__(self):
        self.key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        self.forger = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        self.codes: dict[str, dict] = {}
        self.tokens: dict[str, str] = {}
        self.token_requests = 0
        self.flask = self._build()
        self.server = make_server("127.0.0.1", 0, self.flask, threaded=True)
        self.url = f"http://127.0.0.1:{self.server.port}"

    def sign(self, claims: dict, key=None) -> str:
        header = {"alg": "RS256", "typ": "JWT", "kid": self.KID}
        signing_input = ".".join(
            _b64url(json.dumps(part).encode()) for part in (header, claims)
        )
        signature = (key or self.key).sign(
            signing_input.encode(), padding.PKCS1v15(), hashes.SHA256()
        )
        return signing_input + "." + _b64url(signature)

    def _client_is_authenticated(self) -> bool:
        auth = request.authorization
        if auth is not None and auth.type == "basic":
            client_id, secret = unquote(auth.username), unquote(auth.password)
        else:
            client_id = request.form.get("client_id")
            secret = request.form.get("client_secret")
        return client_id == CLIENT_ID and secret == CLIENT_SECRET

    def _build(self) -> Flask:
        idp = Flask("fake_provider")

        @idp.get("/.well-known/openid-configuration")
        def discovery():
            return jsonify(
                issuer=self.url,
                authorization_endpoint=f"{self.url}/authorize",
                token_endpoint=f"{self.url}/token",
                userinfo_endpoint=f"{self.url}/userinfo",
                jwks_uri=f"{self.url}/keys",
                response_types_supported=["code"],
                subject_types_supported=["pairwise"],
                id_token_signing_alg_values_supported=["RS256"],
                token_endpoint_auth_methods_supported=[
                    "client_secret_basic",
                    "client_secret_post",
                ],
                code_challenge_methods_supported=["S256"],
                scopes_supported=["openid", "profile", "email"],
            )

        @idp.get("/keys")
        def keys():
            numbers = self.key.public_key().public_numbers()
            return jsonify(
                keys=[
                    {
                        "kty": "RSA",
                        "use": "sig",
                        "alg": "RS256",
                        "kid": self.KID,
                        "n": _int_b64url(numbers.n),
                        "e": _int_b64url(numbers.e),
                    }
                ]
            )

        @idp.get("/authorize")
        def authorize():
            # The sign-in form: the test names the user with ?user=, as a person
            # would type their name and password.
            args = request.args
            if (
                args.get("client_id") != CLIENT_ID
                or args.get("response_type") != "code"
            ):
                abort(400)
            if "openid" not in args.get("scope", "").split():
                abort(400)
            redirect_uri = args["redirect_uri"]
            if args.get("user") not in USERS:
                return redirect(
                    f"{redirect_uri}?"
                    + urlencode(
                        {
                            "error": "access_denied",
                            "error_description": args.get("error_description", ""),
                            "state": args.get("state", ""),
                        }
                    )
                )
            code = secrets.token_urlsafe(16)
            self.codes[code] = {
                "user": args["user"],
                "nonce": args.get("nonce"),
                "redirect_uri": redirect_uri,
                "challenge": args.get("code_challenge"),
                "forge": args.get("forge") == "1",
            }
            return redirect(
                f"{redirect_uri}?" + urlencode({"code": code, "state": args["state"]})
            )

        @idp.post("/token")
        def token():
            self.token_requests += 1
            if not self._client_is_authenticated():
                return jsonify(error="invalid_client"), 401
            form = request.form
            grant = self.codes.pop(form.get("code", ""), None)  # one use only
            if grant is None or form.get("grant_type") != "authorization_code":
                return jsonify(error="invalid_grant"), 400
            if form.get("redirect_uri") != grant["redirect_uri"]:
                return jsonify(error="invalid_grant"), 400
            verifier = form.get("code_verifier", "")
            if (
                _b64url(hashlib.sha256(verifier.encode()).digest())
                != grant["challenge"]
            ):
                return jsonify(error="invalid_grant", error_description="PKCE"), 400
            now = int(time.time())
            name = grant["user"]
            claims = {
                "iss": self.url,
                "aud": CLIENT_ID,
                "sub": hashlib.sha256(name.encode()).hexdigest()[:20],
                "iat": now,
                "nbf": now,
                "exp": now + 3600,
                "nonce": grant["nonce"],
                "preferred_username": f"{name}@force.example.police.uk",
                "name": name.title(),
                **USERS[name],
            }
            access_token = secrets.token_urlsafe(16)
            self.tokens[access_token] = name
            return jsonify(
                access_token=access_token,
                token_type="Bearer",
                expires_in=3600,
                id_token=self.sign(claims, self.forger if grant["forge"] else None),
            )

        @idp.get("/userinfo")
        def userinfo():
            auth = request.headers.get("Authorization", "")
            name = self.tokens.get(auth.removeprefix("Bearer "))
            if name is None:
                abort(401)
            return jsonify(sub=name, preferred_username=name, **USERS[name])

        return idp


@pytest.fixture(scope="module")
def provider():
    idp = FakeProvider()
    thread = threading.Thread(target=idp.server.serve_forever, daemon=True)
    thread.start()
    yield idp
    idp.server.shutdown()
    thread.join(timeout=10)


# -- the Bluelamp app, OIDC login, in a child process ------------------------------

# Serves the real app, plus one route reporting who the app thinks the request runs
# for, so the tests can see the identity and scope the login produced.
SERVE = textwrap.dedent(
    """
    import logging, sys
    from pathlib import Path
    logging.basicConfig(level=logging.DEBUG, stream=sys.stderr)
    from werkzeug.serving import make_server
    import app
    from dashboards import components

    @app.server.get("/test-whoami")
    def whoami():
        identity = components.current_identity()
        scope = identity.scope() if identity else None
        return {
            "name": identity.name if identity else None,
            "role": identity.role if identity else None,
            "scope": sorted(scope) if scope is not None else None,
        }

    server = make_server("127.0.0.1", 0, app.server, threaded=True)
    Path(sys.argv[1]).write_text(str(server.port))
    server.serve_forever()
    """
)


def oidc_env(provider_url: str, home: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("BLUELAMP_")}
    env.update(
        BLUELAMP_LOGIN="oidc",
        BLUELAMP_OIDC_METADATA_URL=f"{provider_url}/.well-known/openid-configuration",
        BLUELAMP_OIDC_CLIENT_ID=CLIENT_ID,
        BLUELAMP_OIDC_CLIENT_SECRET=CLIENT_SECRET,
        BLUELAMP_OIDC_ROLE_GROUPS=ROLE_GROUPS,
        BLUELAMP_OIDC_AREAS_CLAIM=AREAS_CLAIM,
        BLUELAMP_SECRET_KEY="oidc-test-session-key",
        BLUELAMP_WAREHOUSE_URL=f"duckdb:///{home / 'warehouse.duckdb'}",
        BLUELAMP_USERS_FILE=str(home / "no-users.toml"),
        BLUELAMP_CACHE_URL="",
        PYTHONPATH=str(ROOT),
    )
    return env


class Served:
    def __init__(self, url: str, log_path: Path):
        self.url = url
        self.log_path = log_path
        self.responses: list[requests.Response] = []

    def browser(self) -> requests.Session:
        """A fresh browser whose every response from the app is kept for checks."""
        session = requests.Session()

        def keep(response, *args, **kwargs):
            if response.url.startswith(self.url):
                self.responses.append(response)

        session.hooks["response"].append(keep)
        return session

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")


@pytest.fixture(scope="module")
def bluelamp(provider, tmp_path_factory):
    home = tmp_path_factory.mktemp("oidc-app")
    port_file, log_path = home / "port", home / "app.log"
    (home / "serve.py").write_text(SERVE)
    with open(log_path, "wb") as log_file:
        process = subprocess.Popen(
            [sys.executable, str(home / "serve.py"), str(port_file)],
            cwd=ROOT,
            env=oidc_env(provider.url, home),
            stdout=log_file,
            stderr=subprocess.STDOUT,
        )
    try:
        deadline = time.monotonic() + 120
        while not port_file.exists() or not port_file.read_text():
            if process.poll() is not None:
                pytest.fail("the OIDC app did not start:\n" + log_path.read_text())
            if time.monotonic() > deadline:
                pytest.fail("the OIDC app took over 2 minutes to start")
            time.sleep(0.2)
        yield Served(f"http://127.0.0.1:{port_file.read_text()}", log_path)
    finally:
        process.terminate()
        process.wait(timeout=30)


def sign_in(bluelamp: Served, browser: requests.Session, user: str, **extra):
    """Open /crime signed out, sign in at the provider, come back through the
    callback; returns the callback's answer."""
    start = browser.get(f"{bluelamp.url}/crime", allow_redirects=False)
    assert start.status_code == 302, start.text
    at_provider = browser.get(
        start.headers["Location"], params={"user": user, **extra}, allow_redirects=False
    )
    assert at_provider.status_code == 302
    callback = at_provider.headers["Location"]
    assert callback.startswith(f"{bluelamp.url}/oidc/idp/callback?")
    return browser.get(callback, allow_redirects=False)


def whoami(bluelamp: Served, browser: requests.Session) -> dict:
    response = browser.get(f"{bluelamp.url}/test-whoami")
    assert response.status_code == 200, response.text
    return response.json()


CALLBACK_BODY = {
    "output": "shell-data-as-at.children",
    "outputs": {"id": "shell-data-as-at", "property": "children"},
    "inputs": [{"id": "shell-refresh", "property": "n_intervals", "value": 1}],
    "changedPropIds": [],
    "state": [],
}


# -- end to end ----------------------------------------------------------------------


def test_signed_out_pages_redirect_to_the_provider_with_pkce(bluelamp, provider):
    browser = bluelamp.browser()
    response = browser.get(f"{bluelamp.url}/crime", allow_redirects=False)
    assert response.status_code == 302
    location = urlsplit(response.headers["Location"])
    query = parse_qs(location.query)
    assert f"{location.scheme}://{location.netloc}{location.path}" == (
        f"{provider.url}/authorize"
    )
    assert query["client_id"] == [CLIENT_ID]
    assert query["redirect_uri"] == [f"{bluelamp.url}/oidc/idp/callback"]
    assert set(query["scope"][0].split()) >= {"openid", "profile", "email"}
    assert query["code_challenge_method"] == ["S256"] and query["nonce"][0]
    assert CLIENT_SECRET not in response.headers["Location"]


def test_signed_out_callbacks_and_polling_get_401_not_a_redirect(bluelamp):
    browser = bluelamp.browser()
    callback = browser.post(
        f"{bluelamp.url}/_dash-update-component",
        json=CALLBACK_BODY,
        allow_redirects=False,
    )
    freshness = browser.get(f"{bluelamp.url}/api/freshness", allow_redirects=False)
    assert callback.status_code == 401 and freshness.status_code == 401
    assert "reload the page" in callback.text


def test_analyst_group_signs_in_and_opens_crime(bluelamp):
    browser = bluelamp.browser()
    back = sign_in(bluelamp, browser, "ana")
    assert back.status_code == 302 and back.headers["Location"].endswith("/")
    assert browser.get(f"{bluelamp.url}/crime").status_code == 200
    assert browser.get(f"{bluelamp.url}/data-status").status_code == 200
    callback = browser.post(
        f"{bluelamp.url}/_dash-update-component", json=CALLBACK_BODY
    )
    assert callback.status_code == 200
    assert whoami(bluelamp, browser) == {
        "name": "ana@force.example.police.uk",
        "role": "analyst",
        "scope": None,
    }


@pytest.mark.parametrize("user", ["nobody", "ungrouped"])
def test_user_in_no_mapped_group_gets_403_everywhere_and_no_data(bluelamp, user):
    browser = bluelamp.browser()
    assert sign_in(bluelamp, browser, user).status_code == 302
    for path in ["/", "/crime", "/overview", "/_dash-layout", "/api/freshness"]:
        response = browser.get(f"{bluelamp.url}{path}", allow_redirects=False)
        assert response.status_code == 403, path
        assert "none of your groups gives a Bluelamp role" in response.text
        assert f"{user}@force.example.police.uk" in response.text
        assert "Data as at" not in response.text and "No data" not in response.text
    callback = browser.post(
        f"{bluelamp.url}/_dash-update-component", json=CALLBACK_BODY
    )
    assert callback.status_code == 403
    assert browser.get(f"{bluelamp.url}/test-whoami").status_code == 403
    # They can still sign out, to sign in as someone else.
    assert browser.get(f"{bluelamp.url}/oidc/logout").status_code == 200


def test_commander_is_scoped_to_the_areas_in_its_claim(bluelamp):
    browser = bluelamp.browser()
    sign_in(bluelamp, browser, "cmdr")
    assert whoami(bluelamp, browser) == {
        "name": "cmdr@force.example.police.uk",
        "role": "commander",
        "scope": ["E08000025", "E08000026"],
    }
    assert browser.get(f"{bluelamp.url}/crime").status_code == 200
    assert browser.get(f"{bluelamp.url}/data-status").status_code == 403


def test_commander_without_an_areas_claim_sees_no_area(bluelamp):
    browser = bluelamp.browser()
    sign_in(bluelamp, browser, "cmdr-unset")
    assert whoami(bluelamp, browser)["scope"] == []


@pytest.mark.parametrize(
    "user, role",
    [
        ("all-five", "admin"),
        ("admin-disp", "admin"),
        ("lead-cmdr", "leader"),
        ("disp-cmdr", "commander"),
        ("busy", "analyst"),
    ],
)
def test_the_most_powerful_role_of_a_users_groups_wins(bluelamp, user, role):
    browser = bluelamp.browser()
    sign_in(bluelamp, browser, user)
    assert whoami(bluelamp, browser)["role"] == role


def test_session_cookie_stays_small_for_a_user_in_hundreds_of_groups(bluelamp):
    browser = bluelamp.browser()
    sign_in(bluelamp, browser, "busy")
    cookie = browser.cookies.get("session")
    assert cookie and len(cookie) < 1500  # browsers drop cookies over 4 KB
    assert browser.get(f"{bluelamp.url}/crime").status_code == 200


def test_logout_ends_the_session(bluelamp, provider):
    browser = bluelamp.browser()
    sign_in(bluelamp, browser, "ana")
    assert browser.get(f"{bluelamp.url}/crime").status_code == 200
    shell = browser.get(f"{bluelamp.url}/_dash-layout").text.replace("\\u002f", "/")
    assert "Sign out" in shell and "/oidc/logout" in shell  # in the navbar
    out = browser.get(f"{bluelamp.url}/oidc/logout")
    assert out.status_code == 200 and "signed out of Bluelamp" in out.text
    again = browser.get(f"{bluelamp.url}/crime", allow_redirects=False)
    assert again.status_code == 302
    assert again.headers["Location"].startswith(f"{provider.url}/authorize")


def test_a_replayed_callback_is_refused_with_401(bluelamp):
    browser = bluelamp.browser()
    start = browser.get(f"{bluelamp.url}/crime", allow_redirects=False)
    at_provider = browser.get(
        start.headers["Location"], params={"user": "ana"}, allow_redirects=False
    )
    callback = at_provider.headers["Location"]
    assert browser.get(callback, allow_redirects=False).status_code == 302
    browser.get(f"{bluelamp.url}/oidc/logout")
    replay = browser.get(callback, allow_redirects=False)
    assert replay.status_code == 401 and "Sign-in failed" in replay.text
    assert (
        browser.get(f"{bluelamp.url}/crime", allow_redirects=False).status_code == 302
    )


def test_a_token_signed_with_another_key_is_refused_with_401(bluelamp):
    browser = bluelamp.browser()
    refused = sign_in(bluelamp, browser, "ana", forge="1")
    assert refused.status_code == 401 and "Sign-in failed" in refused.text
    assert "Traceback" not in refused.text
    assert (
        browser.get(f"{bluelamp.url}/crime", allow_redirects=False).status_code == 302
    )


def test_a_provider_error_is_not_echoed_as_html(bluelamp):
    browser = bluelamp.browser()
    refused = sign_in(
        bluelamp, browser, "not-a-user", error_description="<script>alert(1)</script>"
    )
    assert refused.status_code == 401
    assert "<script>" not in refused.text and "Sign-in failed" in refused.text


def test_client_secret_never_in_a_response_or_the_log(bluelamp, provider):
    # Walk every kind of answer: sign-ins of each kind, refusals, failures, logout.
    for user in ["ana", "nobody", "cmdr", "admin-disp"]:
        browser = bluelamp.browser()
        sign_in(bluelamp, browser, user)
        for path in ["/", "/crime", "/data-status", "/_dash-layout", "/oidc/logout"]:
            browser.get(f"{bluelamp.url}{path}", allow_redirects=False)
    sign_in(bluelamp, bluelamp.browser(), "ana", forge="1")
    sign_in(bluelamp, bluelamp.browser(), "not-a-user")
    assert provider.token_requests > 0  # the secret was sent, and accepted
    assert len(bluelamp.responses) > 30
    for response in bluelamp.responses:
        assert CLIENT_SECRET not in response.text, response.url
        assert CLIENT_SECRET not in str(response.headers), response.url
    log = bluelamp.log()
    assert "sign-in: ana@force.example.police.uk as analyst" in log  # it did log
    assert CLIENT_SECRET not in log


# -- settings ------------------------------------------------------------------------


def test_oidc_login_refuses_to_start_without_its_settings(tmp_path):
    env = oidc_env("http://127.0.0.1:9", tmp_path)
    del env["BLUELAMP_OIDC_CLIENT_ID"]
    result = subprocess.run(
        [sys.executable, "-c", "import app"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode != 0
    assert "LoginSettingsError: BLUELAMP_LOGIN=oidc needs BLUELAMP_OIDC_CLIENT_ID" in (
        result.stderr
    )
    assert CLIENT_SECRET not in result.stdout + result.stderr


def full_settings(**changes) -> dict[str, str]:
    env = {
        "BLUELAMP_LOGIN": "oidc",
        "BLUELAMP_OIDC_METADATA_URL": "https://login.example/.well-known/x",
        "BLUELAMP_OIDC_CLIENT_ID": CLIENT_ID,
        "BLUELAMP_OIDC_CLIENT_SECRET": CLIENT_SECRET,
        "BLUELAMP_OIDC_ROLE_GROUPS": ROLE_GROUPS,
        "BLUELAMP_SECRET_KEY": "k",
    }
    env.update(changes)
    return env


@pytest.mark.parametrize("name", sorted(login.REQUIRED))
def test_each_missing_oidc_setting_is_named(name):
    with pytest.raises(login.LoginSettingsError, match=name) as error:
        login.oidc_config(full_settings(**{name: ""}))
    assert CLIENT_SECRET not in str(error.value)


@pytest.mark.parametrize(
    "role_groups, message",
    [
        ("analyst", "not role=group"),
        ("analyst=", "not role=group"),
        ("superuser=abc", "unknown role 'superuser'"),
        (" ; ", "maps no group"),
    ],
)
def test_malformed_role_groups_are_refused(role_groups, message):
    with pytest.raises(login.LoginSettingsError, match=message):
        login.oidc_config(full_settings(BLUELAMP_OIDC_ROLE_GROUPS=role_groups))


def test_unknown_login_method_is_refused():
    with pytest.raises(login.LoginSettingsError, match="'basic'.*'oidc'"):
        login.install(None, {"BLUELAMP_LOGIN": "saml"})


def test_the_secret_is_not_in_the_configs_repr():
    assert CLIENT_SECRET not in repr(login.oidc_config(full_settings()))


# -- claims to identity --------------------------------------------------------------


CONFIG = login.OidcConfig(
    metadata_url="https://login.example/.well-known/x",
    client_id=CLIENT_ID,
    client_secret=CLIENT_SECRET,
    role_groups=login.parse_role_groups(
        "display=d;commander=c,c2;leader=l;analyst=a;admin=x"
    ),
    areas_claim="areas",
)


@pytest.mark.parametrize(
    "groups, role",
    [
        (["x", "a", "l", "c", "d"], "admin"),
        (["d", "a"], "analyst"),
        (["c", "l"], "leader"),
        (["d", "c2"], "commander"),
        (["d"], "display"),
        ("a", "analyst"),  # one group as a string
        (["other"], None),
        ([], None),
    ],
)
def test_role_precedence_admin_analyst_leader_commander_display(groups, role):
    identity = login.identity_from_claims({"sub": "s", "groups": groups}, CONFIG)
    assert (identity.role if identity else None) == role


def test_areas_claim_as_list_or_string():
    for areas in (
        ["E08000026", "E08000025"],
        "E08000026,E08000025",
        "E08000026 E08000025",
    ):
        identity = login.identity_from_claims(
            {"sub": "s", "groups": ["c"], "areas": areas}, CONFIG
        )
        assert identity.areas == ("E08000026", "E08000025")
        assert identity.scope() == {"E08000026", "E08000025"}


def test_name_falls_back_to_email_then_subject():
    claims = {"sub": "s-1", "groups": ["a"]}
    assert login.identity_from_claims(claims, CONFIG).name == "s-1"
    claims["email"] = "e@example"
    assert login.identity_from_claims(claims, CONFIG).name == "e@example"


def test_custom_roles_rank_after_the_shipped_ones(monkeypatch):
    roles = dict(accounts.ROLES)
    roles["auditor"] = accounts.Role("auditor", frozenset({"/"}))
    monkeypatch.setattr(accounts, "ROLES", roles)
    order = [role for role, _ in login.parse_role_groups("auditor=q;display=d")]
    assert order == ["display", "auditor"]


def test_users_page_under_oidc_names_the_provider_not_a_users_file(bluelamp):
    browser = bluelamp.browser()
    sign_in(bluelamp, browser, "admin-disp")
    body = {
        "output": ".._pages_content.children..._pages_store.data..",
        "outputs": [
            {"id": "_pages_content", "property": "children"},
            {"id": "_pages_store", "property": "data"},
        ],
        "inputs": [
            {"id": "_pages_location", "property": "pathname", "value": "/users"},
            {"id": "_pages_location", "property": "search", "value": ""},
        ],
        "changedPropIds": ["_pages_location.pathname"],
        "state": [],
    }
    page = browser.post(f"{bluelamp.url}/_dash-update-component", json=body)
    assert page.status_code == 200, page.text[:500]
    assert "identity provider" in page.text and "users file (" not in page.text


def test_a_widen_group_lifts_a_commanders_scope_and_survives_the_cookie():
    import dataclasses

    config = dataclasses.replace(CONFIG, widen_groups=frozenset({"w"}))
    claims = {"sub": "s", "groups": ["c", "w"], "areas": "E08000026"}
    widened = login.identity_from_claims(claims, config)
    assert widened.role == "commander" and widened.widen and widened.scope() is None
    assert "w" in config.mapped_groups  # kept in the session cookie's groups
    narrow = login.identity_from_claims({**claims, "groups": ["c"]}, config)
    assert narrow.scope() == {"E08000026"}
