"""The users file: demo users, salted hashes, verification and role rules."""

from __future__ import annotations

import os

import pytest

import accounts


def test_demo_users_one_per_role_and_they_can_log_in(tmp_path):
    path = tmp_path / "users.toml"
    logins = accounts.write_demo_users(path)
    users = accounts.load_users(path)
    assert set(logins) == set(accounts.ROLES) == set(users)
    assert {u.role for u in users.values()} == set(accounts.ROLES)
    for name, password in logins.items():
        assert accounts.verify(users, name, password)
        assert not accounts.verify(users, name, password + "x")
    assert os.stat(path).st_mode & 0o077 == 0  # not readable by other users


def test_demo_users_never_overwrite_an_existing_file(tmp_path):
    path = tmp_path / "users.toml"
    path.write_text(accounts.user_entry("alice", "s3cret-pass", "analyst"))
    assert accounts.write_demo_users(path) == {}
    users = accounts.load_users(path)
    assert list(users) == ["alice"]
    assert not accounts.verify(users, "admin", accounts.DEMO_PASSWORD)


def test_passwords_are_salted_and_never_stored(tmp_path):
    path = tmp_path / "users.toml"
    logins = accounts.write_demo_users(path)
    text = path.read_text()
    hashes = [u.password_hash for u in accounts.load_users(path).values()]
    assert len(set(hashes)) == len(logins)  # same password, different salts
    assert accounts.DEMO_PASSWORD not in text


def test_areas_and_unknown_users(tmp_path):
    path = tmp_path / "users.toml"
    path.write_text(
        accounts.user_entry("cmdr", "pw-123456", "commander", areas=["E05011118"])
    )
    users = accounts.load_users(path)
    assert users["cmdr"].areas == ("E05011118",)
    assert not accounts.verify(users, "nobody", "pw-123456")


def test_unknown_role_is_refused_with_the_file_named(tmp_path):
    path = tmp_path / "users.toml"
    path.write_text(accounts.user_entry("eve", "pw-123456", "superuser"))
    with pytest.raises(ValueError, match="unknown role 'superuser'"):
        accounts.load_users(path)


def test_missing_users_file_means_no_users(tmp_path):
    assert accounts.load_users(tmp_path / "absent.toml") == {}


@pytest.mark.parametrize(
    ("role", "path", "allowed"),
    [
        ("analyst", "/data-status", True),
        ("leader", "/data-status", True),
        ("admin", "/data-status", True),
        ("admin", "/a-page-added-later", True),
        ("commander", "/data-status", False),
        ("display", "/data-status", False),
        ("display", "/", True),
        ("analyst", "/a-page-added-later", False),
        (None, "/", False),
        ("root", "/", False),
    ],
)
def test_which_roles_may_see_which_pages(role, path, allowed):
    assert accounts.may_see(role, path) is allowed


def test_verifier_rereads_a_changed_users_file(tmp_path):
    path = tmp_path / "users.toml"
    path.write_text(accounts.user_entry("alice", "first-password", "analyst"))
    verifier = accounts.Verifier(path)
    assert verifier("alice", "first-password")
    assert verifier("alice", "first-password")  # the remembered success
    path.write_text(
        accounts.user_entry("alice", "second-password", "display")
        + "# a longer file, so the change shows even within one mtime tick\n"
    )
    assert not verifier("alice", "first-password")
    assert verifier("alice", "second-password")
    assert verifier.role("alice") == "display"
    path.unlink()
    assert not verifier("alice", "second-password")
    assert verifier.role("alice") is None
