"""Users, their salted password hashes and roles, and which pages each role may see."""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import os
import secrets
import threading
import tomllib
from dataclasses import dataclass
from pathlib import Path

from werkzeug.security import check_password_hash, generate_password_hash

log = logging.getLogger("bluelamp.accounts")

DEMO_PASSWORD = "bluelamp-demo"
# The demo commander is limited to one district of the demo force (Coventry).
DEMO_AREAS = {"commander": ("E08000026",)}

ROLES_FILE = Path(__file__).resolve().parent / "roles.toml"


@dataclass(frozen=True)
class Role:
    """One role from the roles file (see roles.toml for what each field means)."""

    name: str
    pages: frozenset[str]
    export: bool = False
    scoped: bool = False
    person_level: bool = True


def load_roles(path: str | Path = ROLES_FILE) -> dict[str, Role]:
    path = Path(path)
    data = tomllib.loads(path.read_text(encoding="utf-8"))
    roles = {}
    for name, entry in data.get("roles", {}).items():
        unknown = set(entry) - {"pages", "export", "scoped", "person_level"}
        if unknown:
            raise ValueError(
                f"{path}: role {name!r} has unknown keys {sorted(unknown)}"
            )
        roles[name] = Role(
            name=name,
            pages=frozenset(entry.get("pages", ())),
            export=bool(entry.get("export", False)),
            scoped=bool(entry.get("scoped", False)),
            person_level=bool(entry.get("person_level", True)),
        )
    if not roles:
        raise ValueError(f"{path}: no [roles.<name>] tables")
    return roles


# The roles in force in this process: the shipped file until `use_roles` is called
# (create_app calls it with BLUELAMP_ROLES_FILE).
ROLES: dict[str, Role] = load_roles()


def use_roles(roles: dict[str, Role]) -> None:
    global ROLES
    ROLES = roles


@dataclass(frozen=True)
class User:
    name: str
    password_hash: str
    role: str
    areas: tuple[str, ...] = ()
    widen: bool = False


@dataclass(frozen=True)
class Identity:
    """Who a request runs for, however they logged in (users file or OpenID Connect)."""

    name: str
    role: str
    areas: tuple[str, ...] = ()
    widen: bool = False

    def scope(self) -> frozenset[str] | None:
        """The area codes this user's queries are limited to; None = unrestricted.

        A scoped role without areas sees nothing: failing closed is the safe default
        for an account set up incompletely.
        """
        role = ROLES.get(self.role)
        if role is None:
            return frozenset()
        if role.scoped and not self.widen:
            return frozenset(self.areas)
        return None


def may_see(role: str | None, path: str) -> bool:
    """Whether a role may open the page at `path` (a registered page path)."""
    entry = ROLES.get(role or "")
    return entry is not None and ("*" in entry.pages or path in entry.pages)


def may_export(role: str | None) -> bool:
    """Whether a role may download the rows behind a page's charts."""
    entry = ROLES.get(role or "")
    return entry is not None and entry.export


def may_see_rows(role: str | None) -> bool:
    """Whether a role may see rows about single incidents (lists, timelines)."""
    entry = ROLES.get(role or "")
    return entry is not None and entry.person_level


def load_users(path: str | Path) -> dict[str, User]:
    """Read the users file; a missing file means no users (every login refused)."""
    path = Path(path)
    if not path.exists():
        log.warning("no users file at %s: every login will be refused", path)
        return {}
    data = tomllib.loads(path.read_text(encoding="utf-8"))
    users = {}
    for name, entry in data.get("users", {}).items():
        role = entry.get("role", "")
        if role not in ROLES:
            raise ValueError(
                f"{path}: user {name!r} has unknown role {role!r}; "
                f"roles are {', '.join(ROLES)}"
            )
        if not entry.get("password_hash"):
            raise ValueError(f"{path}: user {name!r} has no password_hash")
        users[name] = User(
            name=name,
            password_hash=entry["password_hash"],
            role=role,
            areas=tuple(str(a) for a in entry.get("areas", ())),
            widen=bool(entry.get("widen", False)),
        )
    return users


def verify(users: dict[str, User], name: str, password: str) -> bool:
    user = users.get(name)
    if user is None:
        return False
    return check_password_hash(user.password_hash, password)


def hash_password(password: str) -> str:
    return generate_password_hash(password)  # scrypt, salted


def user_entry(name: str, password: str, role: str, areas=()) -> str:
    """The TOML for one user, to append to a users file."""
    lines = [
        f"[users.{json.dumps(name)}]",
        f"password_hash = {json.dumps(hash_password(password))}",
        f"role = {json.dumps(role)}",
    ]
    if areas:
        lines.append(f"areas = {json.dumps(list(areas))}")
    return "\n".join(lines) + "\n"


def write_demo_users(path: str | Path) -> dict[str, str]:
    """Create a users file with one demo user per role; never overwrite one.

    Returns name -> password for the users written (empty when the file existed).
    """
    path = Path(path)
    if path.exists():
        return {}
    logins = {role: DEMO_PASSWORD for role in ROLES}
    text = "# Demo users: change these passwords before real use.\n\n" + "\n".join(
        user_entry(name, password, role=name, areas=DEMO_AREAS.get(name, ()))
        for name, password in logins.items()
    )
    path.parent.mkdir(parents=True, exist_ok=True)
    # Exclusive create: two processes racing to write demo users leave one file.
    try:
        with open(path, "x", encoding="utf-8") as handle:
            handle.write(text)
    except FileExistsError:
        return {}
    os.chmod(path, 0o600)
    return logins


class Verifier:
    """Checks logins against a users file, re-read when it changes.

    Basic auth sends the password with every request (each asset, each callback),
    and a salted scrypt hash takes tens of milliseconds by design, so a success is
    remembered under a keyed digest of the credentials, never the password itself.
    """

    MAX_REMEMBERED = 4096

    def __init__(self, path: str | Path):
        self.path = Path(path)
        self._lock = threading.Lock()
        self._key = secrets.token_bytes(32)
        self._stamp: tuple[int, int] | None = None
        self._users: dict[str, User] = {}
        self._remembered: set[bytes] = set()

    def _stat(self) -> tuple[int, int] | None:
        try:
            st = self.path.stat()
        except FileNotFoundError:
            return None
        return (st.st_mtime_ns, st.st_size)

    @property
    def users(self) -> dict[str, User]:
        stamp = self._stat()
        if stamp != self._stamp or (stamp is None and self._users):
            with self._lock:
                self._users = load_users(self.path) if stamp else {}
                self._remembered = set()
                self._stamp = stamp
        return self._users

    def role(self, name: str | None) -> str | None:
        user = self.users.get(name or "")
        return user.role if user else None

    def identity(self, name: str | None) -> Identity | None:
        user = self.users.get(name or "")
        if user is None:
            return None
        return Identity(user.name, user.role, user.areas, user.widen)

    def __call__(self, name: str, password: str) -> bool:
        users = self.users
        digest = hmac.new(
            self._key, f"{name}\0{password}".encode(), hashlib.sha256
        ).digest()
        if digest in self._remembered:
            return True
        if not verify(users, name, password):
            return False
        with self._lock:
            if len(self._remembered) >= self.MAX_REMEMBERED:
                self._remembered.clear()
            self._remembered.add(digest)
        return True
