"""The registry of sources: adding one is a module here and a line in SOURCES."""

from __future__ import annotations

import importlib
from types import ModuleType

# CLI name -> module under etl.sources. Order is the order `demo` loads them in:
# geography first, so later sources can place rows in it.
SOURCES: dict[str, str] = {
    "boundaries": "etl.sources.boundaries",
    "population": "etl.sources.population",
    "police-uk-street": "etl.sources.police_uk_street",
    "cad": "etl.sources.cad",
    "calls": "etl.sources.calls",
}


def get_source(name: str) -> ModuleType:
    try:
        module_name = SOURCES[name]
    except KeyError:
        raise KeyError(
            f"unknown source {name!r}; known sources: {', '.join(SOURCES)}"
        ) from None
    return importlib.import_module(module_name)
