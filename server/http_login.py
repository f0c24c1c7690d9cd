"""Logging in from a browser, and who a request acts for (docs/access.md).

/login takes an API token once and gives the browser a session cookie (HttpOnly,
SameSite=Strict, Secure over HTTPS) that lasts 12 hours or until the token expires or is
revoked, whichever comes first; the token itself is not kept in the browser. /logout ends
the session. A login whose Origin is another site is refused (login CSRF)."""

from __future__ import annotations

from html import escape
from urllib.parse import parse_qs, urlsplit

from fastapi import APIRouter, HTTPException, Request
from fastapi.responses import HTMLResponse, RedirectResponse

from obslink.plugins import hookimpl
from obslink.readings import format_utc, now_us
from obslink.server.access.tokens import new_session, secret_hash
from obslink.server.http_access import (ACCESS_RESPONSES, SESSION_COOKIE, Principal, Refusal,
                                        audit_note, authenticate, on_reader,
                                        principal_of)
from obslink.server.http_api import context_of

router = APIRouter(tags=["accounts"])
SESSION_US = 12 * 3600 * 1_000_000
_PAGE = """<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><link rel="icon" href="data:,">
<title>obslink: log in</title><style>body {{ font: 14px/1.4 system-ui, sans-serif;
margin: 2em; }} input {{ width: 40em; max-width: 90%; }} .error {{ color: #b00020; }}
</style></head><body><h1>obslink collector</h1>{message}
<form method="post" action="/login"><input type="hidden" name="next" value="{next}">
<p><label>API token<br><input type="password" name="token" autocomplete="off"
autofocus required placeholder="obl_…"></label></p>
<p><button type="submit">Log in</button></p></form>
<p>An administrator issues tokens with <code>obslink account token NAME</code>.</p>
</body></html>
"""


def _local(target: str) -> str:
    """A redirect target on this site only (never //elsewhere or a scheme)."""
    return target if target.startswith("/") and not target.startswith("//") else "/dashboard"


def _page(message: str = "", next_page: str = "/dashboard", status: int = 200) -> HTMLResponse:
    shown = f'<p class="error">{escape(message)}</p>' if message else ""
    return HTMLResponse(_PAGE.format(message=shown, next=escape(_local(next_page))), status)


def _same_site(request: Request) -> bool:
    origin = request.headers.get("origin")
    return origin is None or urlsplit(origin).netloc == request.headers.get("host")


@router.get("/login", response_class=HTMLResponse, include_in_schema=False)
def login_page(next: str = "/dashboard") -> HTMLResponse:
    return _page(next_page=next)


@router.post("/login", include_in_schema=False)
async def login(request: Request):
    form = parse_qs((await request.body()).decode("utf-8", "replace"))
    token, next_page = form.get("token", [""])[0], _local(form.get("next", ["/dashboard"])[0])
    if not _same_site(request):
        raise HTTPException(403, "a login from another site's page is refused")
    context = context_of(request)
    address = request.client.host if request.client else "unknown"
    try:
        principal = await on_reader(context, authenticate,
                                    {"authorization": f"Bearer {token}"}, {}, "POST", address,
                                    False)
    except Refusal as refusal:
        audit_note(request).detail["refused"] = str(refusal)
        return _page(str(refusal), next_page, refusal.status)
    holder = await on_reader(context, lambda catalog: catalog.token_holder(principal.token))
    expires = now_us() + SESSION_US
    if holder["expires_us"] is not None:
        expires = min(expires, holder["expires_us"])
    session, hashed, csrf = new_session()
    await on_reader(context, lambda catalog: catalog.add_session(hashed, principal.token, csrf,
                                                                 expires))
    audit_note(request).detail.update(login=principal.account, token=principal.token,
                                      session_until=format_utc(expires, fixed=True))
    response = RedirectResponse(next_page, 303)
    response.set_cookie(SESSION_COOKIE, session, max_age=(expires - now_us()) // 1_000_000,
                        path="/", httponly=True, samesite="strict",
                        secure=request.url.scheme == "https")
    return response


@router.post("/logout", include_in_schema=False)
def logout(request: Request):
    if not _same_site(request):
        raise HTTPException(403, "a logout from another site's page is refused")
    cookie = request.cookies.get(SESSION_COOKIE)
    if cookie:
        context_of(request).reader().end_session(secret_hash(cookie))
    response = RedirectResponse("/login", 303)
    response.delete_cookie(SESSION_COOKIE, path="/")
    return response


@router.get("/v1/me", responses=ACCESS_RESPONSES)
def me(request: Request) -> dict:
    """The account this request acts for: its role, clearance and this token's scopes;
    for a browser session, the `csrf_token` its changes must send as `X-CSRF-Token`."""
    principal: Principal = principal_of(request)  # /v1/me is not public: never None
    found = {"account": principal.account, "role": principal.role,
             "clearance": principal.clearance, "scopes": sorted(principal.scopes),
             "token": principal.token, "via": principal.via}
    if principal.csrf:
        found["csrf_token"] = principal.csrf
    return found


@hookimpl
def obslink_register_http_routes(registry):
    registry.add_http_routes(router)
