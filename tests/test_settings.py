"""The README's settings table and the settings module must not drift apart."""

from __future__ import annotations

import re
from pathlib import Path

import settings

README = Path(__file__).resolve().parent.parent / "README.md"


def readme_settings() -> dict[str, str]:
    rows = re.findall(r"^\| `(BLUELAMP_[A-Z_]+)` \| ([^|]*) \|", README.read_text(),
                      flags=re.M)
    return {name: default.strip() for name, default in rows}


def test_every_setting_is_documented_and_nothing_else():
    assert set(readme_settings()) == {s.name for s in settings.SETTINGS}


def test_documented_defaults_match():
    documented = readme_settings()
    for setting in settings.SETTINGS:
        if setting.default:
            assert documented[setting.name] == f"`{setting.default}`", setting.name


def test_environment_overrides_default_and_blank_means_default():
    name = "BLUELAMP_INTERVAL_CAD"
    assert settings.get(name, {}) == "5"
    assert settings.get(name, {name: "2"}) == "2"
    assert settings.get(name, {name: ""}) == "5"


def test_interval_setting_names_follow_source_names():
    assert (settings.interval_setting_name("police-uk-street")
            == "BLUELAMP_INTERVAL_POLICE_UK_STREET")
