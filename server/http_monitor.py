"""Monitoring over HTTP (docs/monitoring.md): the network's and a station's measures,
alarms (listed, and acknowledged), their deliveries, the dashboard and Prometheus
``/metrics``; routes of the collector's HTTP API, registered as any plugin's are. They need
the monitor scopes (operators, administrators); a station whose observations the account
is not cleared for is left out, and answers 404 (docs/access.md)."""

from __future__ import annotations

from fastapi import APIRouter, HTTPException, Path, Query, Request
from fastapi.responses import HTMLResponse, Response
from pydantic import BaseModel, Field

from obslink.errors import ConfigError
from obslink.plugins import hookimpl
from obslink.readings import now_us
from obslink.server.catalog.errors import NoSuchRecordError, no_alarm
from obslink.server.http_api import context_of
from obslink.server.catalog.identifiers import dataset_id
from obslink.server.http_access import ACCESS_RESPONSES, Principal, require
from obslink.server.http_catalog import BAD, UNKNOWN
from obslink.server.monitoring import dashboard
from obslink.server.monitoring.delivery import alarm_json
from obslink.server.monitoring.report import (HOUR_US, period_bounds, period_report,
                                              station_history)

router = APIRouter(tags=["monitoring"], responses=ACCESS_RESPONSES)
READ = require("monitor:read")
ALARM_ID = Path(ge=1, le=2**63 - 1, description="the alarm's number")
PERIOD = Query("1h", description="the last 90m, 6h, 24h, 7d … (whole hours, the current "
               "one included)")
DAY = Query(None, description="a whole UTC day (YYYY-MM-DD) instead of period")


def _hidden(catalog, principal: Principal) -> set[str]:
    """The stations whose observations the account may not see."""
    if principal.sees_everything:
        return set()
    return {station for (dataset, (station, level)) in catalog.dataset_levels().items()
            if dataset == dataset_id(station) and not principal.may_see(level)}


def _known_station(catalog, principal: Principal, station: str) -> None:
    if not catalog.station_exists(station) or station in _hidden(catalog, principal):
        raise HTTPException(404, f"no station {station!r} in the catalog")


def _period(period: str, day: str | None) -> tuple[int, int, int]:
    now = now_us()
    try:
        return (*period_bounds(period, day, now), now)
    except ConfigError as exc:
        raise HTTPException(400, str(exc)) from None


@router.get("/v1/monitor/network", responses=BAD)
def network(request: Request, period: str = PERIOD, day: str | None = DAY,
            principal: Principal = READ) -> dict:
    """Every station's completeness, availability, QC coverage and timeliness over the
    period, its status (complete, below, not-reporting) and the network's roll-up."""
    start, end, now = _period(period, day)
    catalog = context_of(request).reader()
    return period_report(catalog, start, end, now, hidden=_hidden(catalog, principal))


@router.get("/v1/monitor/stations/{station}", responses={**BAD, **UNKNOWN})
def station(station: str, request: Request, period: str = PERIOD, day: str | None = DAY,
            history: bool = Query(False, description="add the last 24 hours and 30 days "
                                  "hour by hour and day by day"),
            principal: Principal = READ) -> dict:
    """One station's measures per element over the period."""
    start, end, now = _period(period, day)
    catalog = context_of(request).reader()
    _known_station(catalog, principal, station)
    found = period_report(catalog, start, end, now, station, elements=True)["stations"][0]
    if history:
        found["history"] = station_history(catalog, station, now)
    return found


@router.get("/v1/alarms", responses=BAD)
def alarms(request: Request, state: str = Query("open", pattern="^(open|all)$"),
           station: str | None = None, limit: int = Query(200, ge=1, le=10_000),
           principal: Principal = READ) -> list:
    """Alarms, newest first: open ones, or all with ``state=all``."""
    catalog = context_of(request).reader()
    hidden = _hidden(catalog, principal)
    return [alarm_json(alarm) for alarm in catalog.alarms(station, state == "open", limit)
            if alarm.get("station") not in hidden]


class Acknowledgement(BaseModel):
    by: str | None = Field(None, min_length=1, max_length=200,
                           description="who acknowledges (default: the account)")


@router.post("/v1/alarms/{alarm_id}/acknowledge", responses=UNKNOWN)
def acknowledge(acknowledgement: Acknowledgement, request: Request,
                alarm_id: int = ALARM_ID,
                principal: Principal = require("monitor:write")) -> dict:
    """Acknowledge an alarm (operators)."""
    from obslink.server.catalog import open_catalog

    catalog = open_catalog(context_of(request).catalog)
    try:
        alarm = catalog.alarm(alarm_id)
        if alarm.get("station") in _hidden(catalog, principal):
            raise no_alarm(alarm_id)
        return alarm_json(catalog.acknowledge_alarm(
            alarm_id, acknowledgement.by or principal.account))
    except NoSuchRecordError as exc:
        raise HTTPException(404, str(exc)) from None
    finally:
        catalog.close()


@router.get("/v1/alarms/{alarm_id}/deliveries", responses=UNKNOWN)
def deliveries(request: Request, alarm_id: int = ALARM_ID, principal: Principal = READ
               ) -> list:
    """Each delivery of the alarm's events: channel, status, attempts, last error."""
    catalog = context_of(request).reader()
    try:
        if catalog.alarm(alarm_id).get("station") in _hidden(catalog, principal):
            raise no_alarm(alarm_id)
    except NoSuchRecordError as exc:
        raise HTTPException(404, str(exc)) from None
    return catalog.deliveries(alarm_id)


@router.get("/dashboard", response_class=HTMLResponse, include_in_schema=False)
def network_dashboard(request: Request, principal: Principal = READ) -> str:
    catalog = context_of(request).reader()
    now = now_us()
    hidden = _hidden(catalog, principal)
    return dashboard.network_page(period_report(catalog, now - HOUR_US, now, now,
                                                hidden=hidden),
                                  [alarm for alarm in catalog.open_alarms()
                                   if alarm.get("station") not in hidden])


@router.get("/dashboard/stations/{station}", response_class=HTMLResponse,
            include_in_schema=False)
def station_dashboard(station: str, request: Request, principal: Principal = READ) -> str:
    catalog = context_of(request).reader()
    _known_station(catalog, principal, station)
    now = now_us()
    report = period_report(catalog, now - HOUR_US, now, now, station, elements=True)
    return dashboard.station_page(report, station_history(catalog, station, now),
                                  catalog.alarms(station))


@router.get("/metrics", include_in_schema=False)
def metrics(request: Request, principal: Principal = READ) -> Response:
    """Prometheus text: the network's state read from the catalog (the ingest counters
    are on `collector serve --metrics-listen`). It names every station, so it answers
    only accounts cleared for everything (a scraper's service account)."""
    if not principal.sees_everything:
        raise HTTPException(403, f"/metrics names every station: it needs the clearance "
                                 f"not-released (account {principal.account} has "
                                 f"{principal.clearance})")
    from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

    from obslink.server.catalog import open_catalog
    from obslink.server.monitoring.metrics import NetworkMetrics

    location = context_of(request).catalog
    registry = getattr(request.app.state, "metrics_registry", None)
    if registry is None:
        from prometheus_client import CollectorRegistry

        registry = request.app.state.metrics_registry = CollectorRegistry()
        registry.register(NetworkMetrics(lambda: open_catalog(location)))
    return Response(generate_latest(registry), media_type=CONTENT_TYPE_LATEST)


@hookimpl
def obslink_register_http_routes(registry):
    registry.add_http_routes(router)
