"""The audit log over HTTP for auditors (docs/access.md, "Audit"): its rows filtered,
its verification, and outflow reports per account and dataset."""

from __future__ import annotations

from fastapi import APIRouter, Query, Request

from obslink.plugins import hookimpl
from obslink.readings import format_utc
from obslink.server.access.audit_chain import check_chain, shown_row
from obslink.server.access.outflow import outflow
from obslink.server.http_access import ACCESS_RESPONSES, Principal, require
from obslink.server.http_api import context_of
from obslink.server.http_catalog import BAD, _interval

router = APIRouter(tags=["audit"], responses=ACCESS_RESPONSES)
AUDIT = require("audit:read")
MAX_PAGE = 10_000


@router.get("/v1/audit", responses=BAD)
def audit(request: Request, account: str | None = None,
          action: str | None = Query(None, description="e.g. 'GET /v1/observations'"),
          datetime: str | None = Query(None, description="instant or START/END ('..' open)"),
          after: int = Query(0, ge=0, le=2**63 - 1, description="rows after this seq"),
          limit: int = Query(1000, ge=1, le=MAX_PAGE), _: Principal = AUDIT) -> dict:
    """Audit rows in order, filtered; `next` continues after the last."""
    start, end = _interval(datetime)
    rows = [shown_row(row) for row in context_of(request).reader().audit_rows(
        after, account, start, end, action, limit)]
    following = None
    if len(rows) == limit:
        following = str(request.url.include_query_params(after=rows[-1]["seq"]))
    return {"rows": rows, "next": following}


@router.get("/v1/audit/verify")
def verify(request: Request, _: Principal = AUDIT) -> dict:
    """Re-check the whole hash chain: rows checked, the head (seq, hash) to keep, and
    every problem found (an edited or deleted row)."""
    found = check_chain(context_of(request).reader().audit_rows())
    return {"rows": found.rows, "head": {"seq": found.rows, "hash": found.head},
            "problems": [str(problem) for problem in found.problems],
            "intact": not found.problems}


@router.get("/v1/audit/outflow", responses=BAD)
def outflow_report(request: Request, account: str | None = None,
                   datetime: str | None = Query(None, description="the period: START/END"),
                   _: Principal = AUDIT) -> dict:
    """Per account and dataset over the period: requests, rows and bytes released."""
    start, end = _interval(datetime)
    rows = context_of(request).reader().audit_rows(0, account, start, end)
    return {"start": None if start is None else format_utc(start, fixed=True),
            "end": None if end is None else format_utc(end, fixed=True),
            "outflow": outflow(rows)}


@hookimpl
def obslink_register_http_routes(registry):
    registry.add_http_routes(router)
