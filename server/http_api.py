"""``obslink collector http``: the collector's HTTP API (OpenAPI at /docs).

The app holds what its routes need (:class:`HttpContext`, found with :func:`context_of`);
the routes come from plugins through the ``obslink_register_http_routes`` hook, the
built-in enrolment route (obslink.server.http_enrol) among them. Every request passes the
access layer (obslink.server.http_access): who is asking, and an audit row.
"""

from __future__ import annotations

import threading
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PublicKey
from fastapi import FastAPI, Request
from fastapi_offline import FastAPIOffline

from obslink import __version__
from obslink.plugins.registry import (PluginConflictError, PluginRegistry, load_registry,
                                      make_plugin_manager)
from obslink.server.catalog.backends import SERVER_PLUGINS

# the built-in routes; loaded only where the API runs (they import FastAPI)
HTTP_PLUGINS = ("obslink.server.http_enrol", "obslink.server.http_catalog",
                "obslink.server.http_monitor", "obslink.server.http_products",
                "obslink.server.http_login", "obslink.server.http_accounts",
                "obslink.server.http_audit")


@dataclass(frozen=True)
class HttpContext:
    catalog: Path | str  # the catalog's location, for open_catalog
    broker_url: str  # where enrolled stations publish
    collector_key: Ed25519PublicKey
    encryption_key: X25519PublicKey  # what stations may seal their messages to
    product_store: Path | None = None  # where products are kept (None: beside the catalog)
    # one open catalog per worker thread (SQLite connections stay on their thread), for
    # the read-only routes; opened on a thread's first request and kept
    readers: threading.local = field(default_factory=threading.local, compare=False)

    def reader(self):
        catalog = getattr(self.readers, "catalog", None)
        if catalog is None:
            from obslink.server.catalog import open_catalog

            catalog = self.readers.catalog = open_catalog(self.catalog)
        return catalog


def context_of(request: Request) -> HttpContext:
    return request.app.state.obslink


def create_app(catalog: Path | str, broker_url: str, collector_key: Ed25519PublicKey,
               encryption_key: X25519PublicKey, registry: PluginRegistry | None = None,
               product_store: Path | None = None) -> FastAPI:
    registry = registry or load_registry(make_plugin_manager(
        extra_builtins=SERVER_PLUGINS + HTTP_PLUGINS))
    # /docs and /redoc from files installed with obslink, not a CDN: a collector's
    # operators often have no internet access
    app = FastAPIOffline(title="obslink collector", version=__version__)
    app.state.obslink = HttpContext(catalog, broker_url, collector_key, encryption_key,
                                    product_store)
    claimed = Counter((method, route.path) for router in registry.http_routes
                      for route in router.routes for method in getattr(route, "methods", ()))
    twice = sorted(f"{method} {path}" for (method, path), count in claimed.items() if count > 1)
    if twice:
        raise PluginConflictError(f"HTTP route {twice[0]} is registered by two plugins; "
                                  "uninstall or change one of them")
    for router in registry.http_routes:
        app.include_router(router)
    # not a plugin: no route is served without it (docs/access.md)
    from obslink.server.http_access import AccessMiddleware

    app.add_middleware(AccessMiddleware)
    return app
