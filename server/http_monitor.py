"""Monitoring over HTTP (docs/monitoring.md): the network's and a station's measures,
alarms (listed, and acknowledged from the collector's host), their deliveries, the
dashboard and Prometheus ``/metrics``; routes of the collector's HTTP API, registered as
any plugin's are."""

from __future__ import annotations

from fastapi import APIRouter, HTTPException, Path, Query, Request
from fastapi.responses import HTMLResponse, Response
from pydantic import BaseModel, Field

from obslink.errors import ConfigError
from obslink.plugins import hookimpl
from obslink.readings import now_us
from obslink.server.catalog.errors import NoSuchRecordError
from obslink.server.http_api import context_of
from obslink.server.http_catalog import BAD, UNKNOWN, operator_on_this_host
from obslink.server.monitoring import dashboard
from obslink.server.monitoring.delivery import alarm_json
from obslink.server.monitoring.report import (HOUR_US, period_bounds, period_report,
                                              station_history)

router = APIRouter(tags=["monitoring"])
ALARM_ID = Path(ge=1, le=2**63 - 1, description="the alarm's number")
PERIOD = Query("1h", description="the last 90m, 6h, 24h, 7d … (whole hours, the current "
               "one included)")
DAY = Query(None, description="a whole UTC day (YYYY-MM-DD) instead of period")


def _period(period: str, day: str | None) -> tuple[int, int, int]:
    now = now_us()
    try:
        return (*period_bounds(period, day, now), now)
    except ConfigError as exc:
        raise HTTPException(400, str(exc)) from None


@router.get("/v1/monitor/network", responses=BAD)
def network(request: Request, period: str = PERIOD, day: str | None = DAY) -> dict:
    """Every station's completeness, availability, QC coverage and timeliness over the
    period, its status (complete, below, not-reporting) and the network's roll-up."""
    start, end, now = _period(period, day)
    return period_report(context_of(request).reader(), start, end, now)


@router.get("/v1/monitor/stations/{station}", responses={**BAD, **UNKNOWN})
def station(station: str, request: Request, period: str = PERIOD, day: str | None = DAY,
            history: bool = Query(False, description="add the last 24 hours and 30 days "
                                  "hour by hour and day by day")) -> dict:
    """One station's measures per element over the period."""
    start, end, now = _period(period, day)
    catalog = context_of(request).reader()
    if not catalog.station_exists(station):
        raise HTTPException(404, f"no station {station!r} in the catalog")
    found = period_report(catalog, start, end, now, station, elements=True)["stations"][0]
    if history:
        found["history"] = station_history(catalog, station, now)
    return found


@router.get("/v1/alarms", responses=BAD)
def alarms(request: Request, state: str = Query("open", pattern="^(open|all)$"),
           station: str | None = None, limit: int = Query(200, ge=1, le=10_000)) -> list:
    """Alarms, newest first: open ones, or all with ``state=all``."""
    return [alarm_json(alarm) for alarm in
            context_of(request).reader().alarms(station, state == "open", limit)]


class Acknowledgement(BaseModel):
    by: str = Field(min_length=1, max_length=200, description="who acknowledges")


@router.post("/v1/alarms/{alarm_id}/acknowledge", responses={
    **UNKNOWN, 403: {"description": "the client is not on the collector's host"}})
def acknowledge(acknowledgement: Acknowledgement, request: Request,
                alarm_id: int = ALARM_ID) -> dict:
    """Acknowledge an alarm (operators; from the collector's own host until accounts
    exist)."""
    operator_on_this_host(request)
    from obslink.server.catalog import open_catalog

    catalog = open_catalog(context_of(request).catalog)
    try:
        return alarm_json(catalog.acknowledge_alarm(alarm_id, acknowledgement.by))
    except NoSuchRecordError as exc:
        raise HTTPException(404, str(exc)) from None
    finally:
        catalog.close()


@router.get("/v1/alarms/{alarm_id}/deliveries", responses=UNKNOWN)
def deliveries(request: Request, alarm_id: int = ALARM_ID) -> list:
    """Each delivery of the alarm's events: channel, status, attempts, last error."""
    catalog = context_of(request).reader()
    try:
        catalog.alarm(alarm_id)
    except NoSuchRecordError as exc:
        raise HTTPException(404, str(exc)) from None
    return catalog.deliveries(alarm_id)


@router.get("/dashboard", response_class=HTMLResponse, include_in_schema=False)
def network_dashboard(request: Request) -> str:
    catalog = context_of(request).reader()
    now = now_us()
    return dashboard.network_page(period_report(catalog, now - HOUR_US, now, now),
                                  catalog.open_alarms())


@router.get("/dashboard/stations/{station}", response_class=HTMLResponse,
            include_in_schema=False)
def station_dashboard(station: str, request: Request) -> str:
    catalog = context_of(request).reader()
    if not catalog.station_exists(station):
        raise HTTPException(404, f"no station {station!r} in the catalog")
    now = now_us()
    report = period_report(catalog, now - HOUR_US, now, now, station, elements=True)
    return dashboard.station_page(report, station_history(catalog, station, now),
                                  catalog.alarms(station))


@router.get("/metrics", include_in_schema=False)
def metrics(request: Request) -> Response:
    """Prometheus text: the network's state read from the catalog (the ingest counters
    are on `collector serve --metrics-listen`)."""
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
