"""``obslink collector http``: the collector's HTTP API (OpenAPI at /docs).

For now it does one thing: a gateway enrols with a one-time token, binding its public key to
the station the operator registered, and learns where to publish, its broker account and the
collector's keys. Every attempt, granted or refused, is logged and kept in the catalog.
"""

from __future__ import annotations

from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PublicKey
from fastapi import FastAPI, HTTPException, Request
from pydantic import BaseModel, Field

from obslink import __version__
from obslink.keys import key_id, public_bytes
from obslink.server.catalog import EnrolmentError, open_catalog

ENROLMENT_STATUS = {"invalid": 403, "used": 409, "revoked": 410, "expired": 410,
                    "key-revoked": 409, "key-in-use": 409}


class EnrolRequest(BaseModel):
    token: str = Field(description="the one-time token from `obslink collector station add "
                                   "--enrol`")
    public_key: str = Field(description="the station's Ed25519 public key, 32 bytes as hex")


class EnrolResponse(BaseModel):
    station: str
    network: str
    key_id: str = Field(description="the id under which the collector knows the station key")
    broker: str = Field(description="where the station publishes, e.g. mqtts://host:8883")
    collector_public_key: str = Field(description="the collector's Ed25519 public key, hex")
    collector_key_id: str
    broker_username: str = Field(description="the station's broker account")
    broker_password: str = Field(description="its password (a closed broker checks it; "
                                             "others ignore it); the same at every enrolment "
                                             "of the station")
    broker_account_ready: bool = Field(description="whether the broker's configuration "
                                                   "admits the account already")
    broker_note: str = Field(description="what the operator must do before the station can "
                                         "log in; empty when nothing")
    collector_encryption_key: str = Field(description="X25519 public key (hex) a station may "
                                                      "seal its messages to (encrypt_to)")


def create_app(catalog_path: Path, broker_url: str, collector_key: Ed25519PublicKey,
               encryption_key: X25519PublicKey) -> FastAPI:
    app = FastAPI(title="obslink collector", version=__version__)

    @app.post("/v1/enrol", response_model=EnrolResponse, responses={
        400: {"description": "the public key is not 32 bytes of hex"},
        403: {"description": "the token is not valid"},
        409: {"description": "the token was used already, or the key belongs to another "
                             "station, or was revoked (never enrolled again)"},
        410: {"description": "the token expired, or was withdrawn"}})
    def enrol(request: EnrolRequest, http: Request) -> EnrolResponse:
        try:
            public = Ed25519PublicKey.from_public_bytes(bytes.fromhex(request.public_key))
        except ValueError:
            raise HTTPException(400, "public_key must be the 32-byte Ed25519 public key as "
                                     "64 hex digits") from None
        catalog = open_catalog(catalog_path)
        try:
            station = catalog.enrol(request.token, public_bytes(public), key_id(public),
                                    http.client.host if http.client else None)
            account = catalog.broker_account(station.id)
        except EnrolmentError as exc:
            raise HTTPException(ENROLMENT_STATUS[exc.reason], str(exc)) from None
        finally:
            catalog.close()
        return EnrolResponse(station=station.id, network=station.network,
                             key_id=key_id(public), broker=broker_url,
                             broker_username=account.username, broker_password=account.password,
                             broker_account_ready=account.broker_knows_it,
                             broker_note=account.note(),
                             collector_public_key=public_bytes(collector_key).hex(),
                             collector_key_id=key_id(collector_key),
                             collector_encryption_key=public_bytes(encryption_key).hex())

    return app
