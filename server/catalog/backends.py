"""``open_catalog(url)``: the one way to get a catalog. Backends are plugins registered
through the ``obslink_register_catalog_backends`` hook (built-in: SQLite, PostgreSQL); a
URL's scheme picks one, and a bare path is a SQLite file."""

from __future__ import annotations

import functools
import re
from pathlib import Path

from obslink.plugins.registry import PluginRegistry, load_registry, make_plugin_manager
from obslink.server.catalog.interface import Catalog

# the centre's built-in plugins, beside the ones every install has
SERVER_PLUGINS = ("obslink.server.catalog.sqlite", "obslink.server.catalog.postgres_backend")

_SCHEME = re.compile(r"^([A-Za-z][A-Za-z0-9+.-]*)://")


@functools.cache
def server_registry() -> PluginRegistry:
    """Every plugin, the centre's included (loaded once per process)."""
    return load_registry(make_plugin_manager(extra_builtins=SERVER_PLUGINS))


def scheme_of(location: str) -> str:
    """``postgresql://…`` -> ``postgresql``; a path has none ("")."""
    found = _SCHEME.match(location)
    return found.group(1).lower() if found else ""


def open_catalog(location: str | Path, registry: PluginRegistry | None = None) -> Catalog:
    """The catalog at ``location``: a SQLite file's path, or a URL whose scheme names an
    installed backend (looked up in ``registry``, by default every installed plugin)."""
    text = str(location)
    registry = registry or server_registry()
    return registry.catalog_backend(scheme_of(text)).open(text)


def shown_url(location: str) -> str:
    """A catalog's location for messages: a URL without its password."""
    scheme, separator, rest = str(location).partition("://")
    if not separator:
        return str(location)
    credentials, at, place = rest.rpartition("@")
    if at and ":" in credentials:
        credentials = credentials.split(":", 1)[0] + ":***"
    return f"{scheme}://{credentials}{at}{place}"
