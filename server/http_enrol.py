"""``POST /v1/enrol``: a gateway enrols with a one-time token, binding its public key to the
station the operator registered, and learns where to publish, its broker account and the
collector's keys. Every attempt, granted or refused, is logged and kept in the catalog.
A route of the collector's HTTP API, registered as any plugin's route is."""

from __future__ import annotations

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from fastapi import APIRouter, HTTPException, Request
from pydantic import BaseModel, Field

from obslink.keys import key_id, public_bytes
from obslink.readings import now_us
from obslink.plugins import hookimpl
from obslink.server.catalog import EnrolmentError, open_catalog
from obslink.server.http_api import context_of
from obslink.server.http_access import (ACCESS_RESPONSES, Refusal, audit_note, count_failure,
                                        refuse_if_guessing)

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


router = APIRouter()


@router.post("/v1/enrol", response_model=EnrolResponse, responses={
    400: {"description": "the public key is not 32 bytes of hex"},
    403: {"description": "the token is not valid, or the address is blacklisted"},
    409: {"description": "the token was used already, or the key belongs to another "
                         "station, or was revoked (never enrolled again)"},
    410: {"description": "the token expired, or was withdrawn"},
    429: ACCESS_RESPONSES[429]})
def enrol(request: EnrolRequest, http: Request) -> EnrolResponse:
    context = context_of(http)
    try:
        public = Ed25519PublicKey.from_public_bytes(bytes.fromhex(request.public_key))
    except ValueError:
        raise HTTPException(400, "public_key must be the 32-byte Ed25519 public key as "
                                 "64 hex digits") from None
    catalog = open_catalog(context.catalog)
    note, address = audit_note(http), http.client.host if http.client else "unknown"
    note.detail.update(enrolment="key " + key_id(public))
    # guessed enrolment tokens are limited apart from API logins: a station that cannot
    # enrol does not lock its centre's operators on the same address out
    guesses, now = f"enrol {address}", now_us()
    try:
        refuse_if_guessing(catalog, guesses, "invalid enrolment tokens", address, now)
    except Refusal as refusal:
        catalog.close()
        raise HTTPException(refusal.status, str(refusal), refusal.headers) from None
    try:
        station = catalog.enrol(request.token, public_bytes(public), key_id(public), address)
        account = catalog.broker_account(station.id)
        note.detail.update(station=station.id)
    except EnrolmentError as exc:
        note.detail.update(station=exc.station, refused=exc.reason)
        if exc.reason == "invalid":  # a guessed token: a failed attempt
            count_failure(catalog, guesses, now)
        raise HTTPException(ENROLMENT_STATUS[exc.reason], str(exc)) from None
    finally:
        catalog.close()
    return EnrolResponse(station=station.id, network=station.network,
                         key_id=key_id(public), broker=context.broker_url,
                         broker_username=account.username, broker_password=account.password,
                         broker_account_ready=account.broker_knows_it,
                         broker_note=account.note(),
                         collector_public_key=public_bytes(context.collector_key).hex(),
                         collector_key_id=key_id(context.collector_key),
                         collector_encryption_key=public_bytes(
                             context.encryption_key).hex())


@hookimpl
def obslink_register_http_routes(registry):
    registry.add_http_routes(router)
