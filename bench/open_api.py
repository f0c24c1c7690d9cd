"""The collector's HTTP API without its access layer: the baseline of the access layer's
cost in bench/catalog_queries.py, and nothing else. Every request acts as an administrator
cleared for everything and nothing is audited. Never serve a catalog this way.

`python bench/open_api.py CATALOG HOST:PORT`"""

from __future__ import annotations

import sys

import uvicorn
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey
from starlette.middleware import Middleware

from obslink.server.access.roles import ROLES
from obslink.server.http_access import AuditNote, Principal
from obslink.server.http_api import create_app

EVERYTHING = Principal("bench", "administrator", "not-released",
                       frozenset(ROLES["administrator"]), "none", "token")


class AsAdministrator:
    def __init__(self, app) -> None:
        self.app = app

    async def __call__(self, scope, receive, send):
        if scope["type"] == "http":
            scope.setdefault("state", {}).update(principal=EVERYTHING, audit=AuditNote())
        await self.app(scope, receive, send)


def main() -> None:
    catalog, listen = sys.argv[1], sys.argv[2]
    app = create_app(catalog, "mqtt://127.0.0.1:1883", Ed25519PrivateKey.generate().public_key(),
                     X25519PrivateKey.generate().public_key())
    app.user_middleware = [Middleware(AsAdministrator)]  # in place of the access layer
    host, _, port = listen.rpartition(":")
    uvicorn.run(app, host=host, port=int(port), log_level="warning")


if __name__ == "__main__":
    main()
