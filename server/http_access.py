"""Who is asking, and the audit row of every request (docs/access.md).

:class:`AccessMiddleware` wraps the whole HTTP API. Before a request reaches a route it
refuses blacklisted addresses (403) and addresses with too many failed attempts (429), and
finds the account from an ``Authorization: Bearer`` token or the browser's session cookie;
a request to anything but the public paths (OpenAPI, login, enrolment) without valid
credentials gets 401 (a browser asking for the dashboard is sent to /login). Routes then
ask for a scope with :func:`require`. After the route it appends one audit row: account,
address, endpoint, status, datasets with their rows, bytes sent. The row is written before
the answer's last bytes leave: when the audit log cannot be written the answer is refused
(503) or, once streaming, cut off, so that nothing is read unrecorded.

A browser session is CSRF-safe: its cookie is HttpOnly and SameSite=Strict, and a request
that changes something on a session's cookie must carry the session's ``X-CSRF-Token``
(a token in an Authorization header cannot be sent by another site's page at all)."""

from __future__ import annotations

import json
import logging
import math
import re
import threading
import time
from collections import Counter
from dataclasses import dataclass, field

from fastapi import Depends, HTTPException, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse, RedirectResponse

from obslink.readings import format_utc, now_us
from obslink.server.access.blacklist import holding
from obslink.server.access.roles import ROLES, cleared_levels
from obslink.server.access.tokens import secret_hash, secret_matches, split_token
from obslink.server.catalog.datasets import CLASSIFICATIONS

log = logging.getLogger(__name__)

SESSION_COOKIE = "obslink_session"
CSRF_HEADER = "x-csrf-token"
MAX_FAILURES = 10  # failed attempts an address may make in FAILURE_WINDOW_US
FAILURE_WINDOW_US = 15 * 60 * 1_000_000
PUBLIC_PATHS = {"/openapi.json", "/docs", "/docs/oauth2-redirect", "/redoc", "/login",
                "/logout", "/v1/enrol"}
PUBLIC_PREFIXES = ("/static-offline-docs/",)
SAFE_METHODS = {"GET", "HEAD", "OPTIONS"}
MAX_TARGET = 2000  # characters of a request's path and query kept in its audit row
AUDIT_SYNC_S = 0.5  # audit rows reach the disk at most this long after their commit
# the statuses the access layer answers with itself, for every route's description
ACCESS_RESPONSES = {
    401: {"description": "no credentials, or a token or session that is not valid"},
    403: {"description": "the account lacks the scope, is suspended, or the address is "
                         "blacklisted"},
    429: {"description": "too many failed attempts from this address; retry after the "
                         "Retry-After seconds"},
}


@dataclass(frozen=True)
class Principal:
    """The account a request acts for."""

    account: str
    role: str
    clearance: str
    scopes: frozenset[str]
    token: str
    via: str  # "token" or "session"
    csrf: str | None = None  # a session's: what its changes must carry in X-CSRF-Token

    @property
    def levels(self) -> tuple[str, ...]:
        return cleared_levels(self.clearance)

    @property
    def sees_everything(self) -> bool:
        return self.clearance == CLASSIFICATIONS[-1]

    def may_see(self, classification: str) -> bool:
        return classification in self.levels


@dataclass
class AuditNote:
    """What a route tells the audit row: datasets read with their rows, and detail."""

    datasets: Counter = field(default_factory=Counter)
    rows: int = 0
    detail: dict = field(default_factory=dict)

    def read(self, dataset: str, rows: int = 1) -> None:
        self.datasets[dataset] += rows
        self.rows += rows


def principal_of(request: Request) -> Principal | None:
    return request.scope.get("state", {}).get("principal")


def audit_note(request: Request) -> AuditNote:
    return request.scope.setdefault("state", {}).setdefault("audit", AuditNote())


def require(scope: str):
    """A route's dependency: the request's account, which must hold ``scope``."""
    def check(request: Request) -> Principal:
        principal = principal_of(request)
        if principal is None:
            raise HTTPException(401, "log in first: send `Authorization: Bearer TOKEN` "
                                     "(`obslink account token NAME` issues one)")
        if scope not in principal.scopes:
            held = ", ".join(sorted(principal.scopes)) or "none"
            raise HTTPException(403, f"this needs the scope {scope}; account "
                                     f"{principal.account} ({principal.role}) has {held} "
                                     "on this token")
        return principal
    return Depends(check)


class Refusal(Exception):
    def __init__(self, status: int, message: str, headers: dict | None = None,
                 clear_cookie: bool = False, login: bool = False) -> None:
        super().__init__(message)
        self.status, self.headers = status, headers or {}
        self.clear_cookie, self.login = clear_cookie, login


def refuse_if_guessing(catalog, key: str, what: str, address: str, now: int) -> None:
    """A 429 Refusal once ``key`` (an address, or what an address tries) has failed
    MAX_FAILURES times in the window, saying when to come back."""
    count, oldest = catalog.failures_since(key, now - FAILURE_WINDOW_US)
    if count >= MAX_FAILURES:
        wait = max(1, math.ceil((oldest + FAILURE_WINDOW_US - now) / 1e6))
        raise Refusal(429, f"{count} {what} from {address} in the last "
                           f"{FAILURE_WINDOW_US // 60_000_000} minutes; try again in {wait} s",
                      headers={"Retry-After": str(wait)})


def count_failure(catalog, key: str, now: int) -> None:
    """One failed attempt of ``key``; those older than the window are forgotten."""
    catalog.record_failure(key, now, now - FAILURE_WINDOW_US)


def _holder_principal(holder: dict, via: str, now: int) -> Principal:
    """The principal of a valid credential's holder, or the refusal that says why not."""
    if holder["revoked_at"]:
        raise Refusal(401, f"token {holder['token']} was revoked at {holder['revoked_at']}; "
                           "ask an administrator for a new one")
    if holder["expires_us"] is not None and holder["expires_us"] <= now:
        raise Refusal(401, f"token {holder['token']} expired at "
                           f"{format_utc(holder['expires_us'], fixed=True)}; ask an "
                           "administrator for a new one")
    if holder["status"] != "active":
        raise Refusal(403, f"account {holder['account']} is {holder['status']}; ask an "
                           "administrator")
    scopes = frozenset(holder["scopes"].split()) & frozenset(ROLES[holder["role"]])
    return Principal(holder["account"], holder["role"], holder["clearance"], scopes,
                     holder["token"], via, holder.get("csrf"))


def authenticate(catalog, headers, cookies: dict, method: str, address: str,
                 public: bool) -> Principal | None:
    """The request's principal (None: no credentials on a public path); a Refusal when
    it may not go on."""
    now = now_us()
    listed = holding(address, catalog.blacklist())
    if listed:
        reason = listed["reason"] or "on the blacklist"
        raise Refusal(403, f"requests from {address} are refused ({reason}); ask the "
                           "centre's administrators")
    refuse_if_guessing(catalog, address, "failed attempts", address, now)
    bearer = headers.get("authorization", "")
    cookie = cookies.get(SESSION_COOKIE)
    if bearer:
        scheme, _, text = bearer.partition(" ")
        parts = split_token(text) if scheme.lower() == "bearer" else None
        holder = catalog.token_holder(parts[0]) if parts else None
        if holder is None or not secret_matches(parts[1], holder["secret_hash"]):
            count_failure(catalog, address, now)
            raise Refusal(401, "the Authorization header holds no valid token; send "
                               "`Authorization: Bearer obl_…` as `obslink account token` "
                               "printed it")
        return _holder_principal(holder, "token", now)
    if cookie and not public:
        holder = catalog.session_holder(secret_hash(cookie))
        if holder is None or holder["session_expires_us"] <= now:
            count_failure(catalog, address, now)
            raise Refusal(401, "the session has ended; log in again at /login",
                          clear_cookie=True, login=True)
        principal = _holder_principal(holder, "session", now)
        if method not in SAFE_METHODS and headers.get(CSRF_HEADER) != holder["csrf"]:
            raise Refusal(403, f"a change made with a browser session needs its "
                               f"{CSRF_HEADER} header; scripts should send a token instead")
        return principal
    if cookie:  # a public path: the session, if it still holds, else no one
        holder = catalog.session_holder(secret_hash(cookie))
        if holder is not None and holder["session_expires_us"] > now:
            try:
                return _holder_principal(holder, "session", now)
            except Refusal:
                return None
        return None
    if public:
        return None
    raise Refusal(401, "log in first: send `Authorization: Bearer TOKEN` (`obslink account "
                       "token NAME` issues one), or log in at /login in a browser",
                  headers={"WWW-Authenticate": 'Bearer realm="obslink"'}, login=True)


def _template(scope) -> str:
    """The path template of the route that answered (/v1/datasets/{identifier}), for
    grouping audit rows; a request refused before routing keeps its path."""
    route = scope.get("route")
    return re.sub(r"\{(\w+):\w+\}", r"{\1}", getattr(route, "path", None) or scope["path"])


class AuditSync:
    """Makes the audit rows this process commits durable within AUDIT_SYNC_S, off the
    answers' path: a thread that syncs when rows were appended since its last sync."""

    def __init__(self) -> None:
        self.pending = threading.Event()
        self.started = False
        self.lock = threading.Lock()

    def appended(self, context) -> None:
        self.pending.set()
        if not self.started:
            with self.lock:
                if not self.started:
                    self.started = True
                    threading.Thread(target=self._run, args=(context,), daemon=True,
                                     name="audit-sync").start()

    def _run(self, context) -> None:
        from obslink.server.catalog import open_catalog

        catalog = open_catalog(context.catalog)
        while True:
            self.pending.wait()
            time.sleep(AUDIT_SYNC_S)
            self.pending.clear()
            try:
                catalog.sync_audit()
            except Exception:  # the next append tries again; the rows are committed
                log.exception("cannot sync the audit log of %s to disk", context.catalog)


class AccessMiddleware:
    """Authentication before the routes, an audit row after them (module docstring)."""

    def __init__(self, app) -> None:
        self.app = app
        self.sync = AuditSync()

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        request = Request(scope)
        context = scope["app"].state.obslink
        address = request.client.host if request.client else "unknown"
        path, method = scope["path"], scope["method"]
        public = path in PUBLIC_PATHS or path.startswith(PUBLIC_PREFIXES)
        state = scope.setdefault("state", {})
        note = state["audit"] = AuditNote()
        try:
            principal = await on_reader(context, authenticate, request.headers,
                                        request.cookies, method, address, public)
        except Refusal as refusal:
            principal, app = None, self._refusal_app(refusal, request)
            note.detail["refused"] = str(refusal)
        else:
            app = self.app
        state["principal"] = principal
        row = {"account": principal.account if principal else None, "address": address,
               "method": method,
               "target": (path + ("?" + scope["query_string"].decode("latin-1")
                                  if scope.get("query_string") else ""))[:MAX_TARGET]}
        if principal:
            note.detail.update(via=principal.via, token=principal.token)
        await self._audited(app, scope, receive, send, context, row, note)

    @staticmethod
    def _refusal_app(refusal: Refusal, request: Request):
        browser = "text/html" in request.headers.get("accept", "")
        if refusal.login and browser and request.method == "GET":
            response = RedirectResponse(f"/login?next={request.url.path}", 303)
        else:
            response = JSONResponse({"detail": str(refusal)}, refusal.status,
                                    headers=refusal.headers)
        if refusal.clear_cookie:
            response.delete_cookie(SESSION_COOKIE, path="/")
        return response

    async def _audited(self, app, scope, receive, send, context, row, note) -> None:
        held: list = []  # the response's start, sent with its first body
        sent = {"status": None, "bytes": 0, "recorded": False, "started": False}

        async def record(incomplete: bool) -> None:
            sent["recorded"] = True
            entry = {**row, "action": f"{row['method']} {_template(scope)}",
                     "status": sent["status"], "datasets": dict(note.datasets),
                     "rows": note.rows, "bytes": sent["bytes"],
                     "detail": {**note.detail, **({"incomplete": True} if incomplete
                                                   else {})}}
            await on_reader(context, lambda catalog: catalog.append_audit(entry))
            self.sync.appended(context)

        async def audited_send(message) -> None:
            if message["type"] == "http.response.start":
                sent["status"] = message["status"]
                held.append(message)
                return
            if message["type"] == "http.response.body":
                sent["bytes"] += len(message.get("body", b""))
                if not message.get("more_body", False):
                    try:
                        await record(False)
                    except Exception:
                        log.exception("cannot write the audit row of %s; answered 503",
                                      row["target"])
                        if not sent["started"]:
                            await _unavailable(send)
                            return
                        raise  # streaming: cut the answer off
                if held:
                    sent["started"] = True
                    await send(held.pop())
            await send(message)

        try:
            await app(scope, receive, audited_send)
        finally:
            if not sent["recorded"]:  # an error, or the client went away mid-stream
                sent["status"] = sent["status"] or 500
                try:
                    await record(True)
                except Exception:
                    log.exception("cannot write the audit row of %s", row["target"])


async def on_reader(context, work, *args):
    """``work(catalog, *args)`` on a worker thread, with that thread's own catalog (a
    connection is never shared between threads)."""
    return await run_in_threadpool(lambda: work(context.reader(), *args))


async def _unavailable(send) -> None:
    body = json.dumps({"detail": "the audit log cannot be written, so nothing is served; "
                                 "see the collector's log"}).encode()
    await send({"type": "http.response.start", "status": 503,
                "headers": [(b"content-type", b"application/json"),
                            (b"content-length", str(len(body)).encode())]})
    await send({"type": "http.response.body", "body": body})
