"""Accounts, tokens and the address blacklist over HTTP (administrators; docs/access.md).
The same catalog methods as ``obslink account …``; each change is an audit row (the
request's own). An administrator cannot suspend, revoke or demote the account the request
acts for, nor blacklist its own address: that would lock them out."""

from __future__ import annotations

from fastapi import APIRouter, HTTPException, Request
from pydantic import BaseModel, Field

from obslink.errors import ConfigError
from obslink.plugins import hookimpl
from obslink.server.access.blacklist import holding, network_of
from obslink.server.access.roles import KINDS, ROLES, SCOPES, STATUSES
from obslink.server.access.tokens import issue_token
from obslink.server.catalog.datasets import CLASSIFICATIONS
from obslink.server.catalog.errors import NoSuchRecordError
from obslink.server.http_access import ACCESS_RESPONSES, Principal, audit_note, require
from obslink.server.http_api import context_of

router = APIRouter(tags=["accounts"], responses={
    **ACCESS_RESPONSES, 400: {"description": "a value is not allowed; the answer says why"},
    404: {"description": "no such account, token or blacklist entry"}})
ADMIN = require("admin")
MAX_VALID_DAYS = 3650


class NewAccount(BaseModel):
    name: str = Field(min_length=1, max_length=64, description="lower-case letters, digits, "
                      ". _ -")
    role: str = Field(description=", ".join(ROLES))
    clearance: str = Field("public", description=", ".join(CLASSIFICATIONS))
    kind: str = Field("personal", description=", ".join(KINDS))
    real_name: str = Field("", max_length=200, description="the person (personal accounts)")


class AccountChanges(BaseModel):
    role: str | None = Field(None, description=", ".join(ROLES))
    clearance: str | None = Field(None, description=", ".join(CLASSIFICATIONS))
    status: str | None = Field(None, description=", ".join(STATUSES))
    real_name: str | None = Field(None, max_length=200)


class NewToken(BaseModel):
    scopes: list[str] = Field([], description="some of " + ", ".join(SCOPES) + " (default: "
                              "all the role has)")
    valid_days: int | None = Field(90, ge=1, le=MAX_VALID_DAYS,
                                   description="days until it expires (null: never)")
    note: str = Field("", max_length=200, description="what the token is for")


class BlacklistEntry(BaseModel):
    network: str = Field(max_length=64, description="an address or a network (CIDR)")
    reason: str = Field("", max_length=200)


def _run(work):
    try:
        return work()
    except NoSuchRecordError as exc:
        raise HTTPException(404, str(exc)) from None
    except ConfigError as exc:
        raise HTTPException(400, str(exc)) from None


@router.get("/v1/accounts")
def accounts(request: Request, _: Principal = ADMIN) -> list[dict]:
    """Every account with its role, clearance and status."""
    return context_of(request).reader().accounts()


@router.post("/v1/accounts", status_code=201)
def create_account(account: NewAccount, request: Request, _: Principal = ADMIN) -> dict:
    """Create an account (no token yet: POST /v1/accounts/{name}/tokens)."""
    audit_note(request).detail.update(account_created=account.model_dump())
    return _run(lambda: context_of(request).reader().create_account(
        account.name, account.role, account.clearance, account.kind, account.real_name))


@router.get("/v1/accounts/{name}")
def account(name: str, request: Request, _: Principal = ADMIN) -> dict:
    """An account with its tokens (ids, scopes, expiry; never the secrets)."""
    return _run(lambda: context_of(request).reader().account(name))


@router.patch("/v1/accounts/{name}")
def update_account(name: str, changes: AccountChanges, request: Request,
                   principal: Principal = ADMIN) -> dict:
    """Change an account's role, clearance or real name, or suspend (status suspended),
    reactivate (active) or revoke it for good (revoked)."""
    wanted = {key: value for key, value in changes.model_dump().items() if value is not None}
    if name == principal.account and (wanted.get("status", "active") != "active"
                                      or wanted.get("role", principal.role) != principal.role):
        raise HTTPException(400, "an administrator cannot suspend, revoke or demote their own "
                                 "account; another administrator can")
    audit_note(request).detail.update(account=name, changes=wanted)
    return _run(lambda: context_of(request).reader().update_account(name, **wanted))


@router.post("/v1/accounts/{name}/tokens", status_code=201)
def new_token(name: str, wanted: NewToken, request: Request, _: Principal = ADMIN) -> dict:
    """Issue a token; the answer's `token` is shown this once and kept nowhere."""
    valid_s = None if wanted.valid_days is None else wanted.valid_days * 86400
    record, token = _run(lambda: issue_token(context_of(request).reader(), name,
                                             tuple(wanted.scopes), valid_s, wanted.note))
    audit_note(request).detail.update(account=name, token_issued=record["id"],
                                      scopes=record["scopes"])
    return {**record, "token": token}


@router.post("/v1/tokens/{token_id}/revoke")
def revoke_token(token_id: str, request: Request, _: Principal = ADMIN) -> dict:
    """Revoke a token at once (its browser sessions end too)."""
    audit_note(request).detail.update(token_revoked=token_id)
    return _run(lambda: context_of(request).reader().revoke_token(token_id))


@router.get("/v1/blacklist")
def blacklist(request: Request, _: Principal = ADMIN) -> list[dict]:
    """Addresses and networks whose requests are refused."""
    return context_of(request).reader().blacklist()


@router.post("/v1/blacklist", status_code=201)
def add_to_blacklist(entry: BlacklistEntry, request: Request, _: Principal = ADMIN) -> dict:
    """Refuse every request from an address or network from now on."""
    network = _run(lambda: network_of(entry.network))
    own = request.client.host if request.client else None
    if own and holding(own, [{"network": network}]):
        raise HTTPException(400, f"{network} holds your own address {own}: you would lock "
                                 "yourself out")
    audit_note(request).detail.update(blacklisted=network, reason=entry.reason)
    context_of(request).reader().add_to_blacklist(network, entry.reason)
    return {"network": network, "reason": entry.reason}


@router.delete("/v1/blacklist/{network:path}")
def remove_from_blacklist(network: str, request: Request, _: Principal = ADMIN) -> dict:
    """Accept requests from the address or network again."""
    audit_note(request).detail.update(unblacklisted=network)
    _run(lambda: context_of(request).reader().remove_from_blacklist(network))
    return {"network": network, "removed": True}


@hookimpl
def obslink_register_http_routes(registry):
    registry.add_http_routes(router)
