"""The catalog over HTTP for data users and operators (docs/api.md): stations, datasets
(WCMP2 records), observations (JSON pages with a cursor, or CSV and GeoJSON streamed whole),
provenance by identifier, and the transparency log's signed tree heads and proofs. Read-only;
routes of the collector's HTTP API, registered as any plugin's are."""

from __future__ import annotations

import json
from collections import Counter
from datetime import datetime
from itertools import chain, islice
from typing import Iterator

from dataclasses import replace

from fastapi import APIRouter, HTTPException, Query, Request
from fastapi.responses import JSONResponse, Response, StreamingResponse
from pydantic import BaseModel, Field

from obslink.errors import ConfigError
from obslink.plugins import hookimpl
from obslink.readings import format_utc, utc_us_from_datetime
from obslink.server.catalog import open_catalog
from obslink.server.catalog.datasets import CLASSIFICATIONS, wcmp2
from obslink.server.catalog.errors import NoSuchRecordError, no_dataset
from obslink.server.catalog.identifiers import IdentifierError, dataset_id, parse_identifier
from obslink.server.catalog.prov_json import to_prov_json
from obslink.server.catalog.provenance import (dataset_of, resolve, show_tree_head,
                                              unknown_record)
from obslink.server.catalog.queries import (CSV_COLUMNS, TEXT_FORMATS, Cursor,
                                            ObservationQuery, ObservationRow, QueryError,
                                            observation_fields)
from obslink.server.http_access import (ACCESS_RESPONSES, AuditNote, Principal, audit_note,
                                        require)
from obslink.server.http_api import context_of

router = APIRouter(tags=["catalog"], responses=ACCESS_RESPONSES)
READ = require("catalog:read")

BAD = {400: {"description": "a parameter is malformed; the answer says which and how"}}
UNKNOWN = {404: {"description": "no such identifier in the catalog"}}
MAX_PAGE = 10_000
CSV_HEADER = (",".join(CSV_COLUMNS) + "\n").encode()
MEDIA_TYPES = {"json": "application/json", "csv": "text/csv",
               "geojson": "application/geo+json", "covjson": "application/prs.coverage+json"}


def _list(text: str | None) -> tuple[str, ...]:
    return tuple(part.strip() for part in text.split(",") if part.strip()) if text else ()


def _instant(text: str, name: str) -> int:
    try:
        moment = datetime.fromisoformat(text.strip().replace("Z", "+00:00"))
    except ValueError:
        raise HTTPException(400, f"{name}: {text!r} is not an RFC 3339 time such as "
                                 "2026-11-22T06:00:00Z") from None
    if moment.tzinfo is None:
        raise HTTPException(400, f"{name}: {text!r} has no time zone; add Z for UTC")
    return utc_us_from_datetime(moment)


def _interval(text: str | None) -> tuple[int | None, int | None]:
    """OGC's datetime: an instant, or START/END with '..' for an open end."""
    if not text:
        return None, None
    if "/" not in text:
        moment = _instant(text, "datetime")
        return moment, moment
    start, _, end = text.partition("/")
    found = (None if start in ("", "..") else _instant(start, "datetime"),
             None if end in ("", "..") else _instant(end, "datetime"))
    if None not in found and found[0] > found[1]:
        raise HTTPException(400, f"datetime {text!r}: the start is after the end")
    return found


def _bbox(text: str | None) -> tuple[float, float, float, float] | None:
    if not text:
        return None
    try:
        box = tuple(float(part) for part in text.split(","))
    except ValueError:
        box = ()
    if len(box) != 4 or not (-180 <= box[0] <= box[2] <= 180 and -90 <= box[1] <= box[3] <= 90):
        raise HTTPException(400, f"bbox {text!r}: give min longitude, min latitude, max "
                                 "longitude, max latitude, e.g. 100,20,120,40")
    return box


def _query(station, element, datetime_, bbox, qc, missing) -> ObservationQuery:
    try:
        flags = tuple(int(flag) for flag in _list(qc))
    except ValueError:
        raise HTTPException(400, f"qc {qc!r}: give QC flags as numbers, e.g. 0,1 "
                                 "(docs/qc.md)") from None
    start, end = _interval(datetime_)
    return ObservationQuery(_list(station), _list(element), start, end, _bbox(bbox), flags,
                            missing)


def _feature(row: ObservationRow) -> dict:
    point = None if row.longitude is None or row.latitude is None else {
        "type": "Point", "coordinates": [row.longitude, row.latitude]}
    properties = observation_fields(row)
    return {"type": "Feature", "id": properties.pop("id"), "geometry": point,
            "properties": properties}


def _joined(parts: Iterator[bytes], size: int = 1 << 20) -> Iterator[bytes]:
    """The parts joined into pieces of about ``size`` bytes: each piece a streamed answer
    sends costs a hop to a worker thread and back (a GeoJSON feature alone is a part)."""
    pending, held = [], 0
    for part in parts:
        pending.append(part)
        held += len(part)
        if held >= size:
            yield b"".join(pending)
            pending, held = [], 0
    if pending:
        yield b"".join(pending)


def _read_series(catalog, note: AuditNote, counts: Counter) -> None:
    """The audit note's datasets from rows counted by series."""
    stations = catalog.series_stations(sorted(counts))
    for series, rows in counts.items():
        note.read(dataset_id(stations[series]), rows)


def _counted(rows: Iterator[ObservationRow], note: AuditNote) -> Iterator[ObservationRow]:
    for row in rows:
        note.read(dataset_id(row.station))
        yield row


def _stream(location, query: ObservationQuery, after: Cursor | None, fmt: str,
            note: AuditNote) -> Iterator[bytes]:
    """The whole answer, a chunk of rows at a time, on a catalog of its own (a streamed
    response moves between threads); what it sent is counted in the audit note."""
    catalog = open_catalog(location)
    counts: Counter = Counter()
    try:
        if fmt == "csv":
            yield CSV_HEADER
            for text, cursor, count in catalog.observation_text(query, after, "csv"):
                counts[cursor.series] += count
                yield text.encode()
            return
        rows = _counted(catalog.observations(query, after), note)
        if fmt == "covjson":
            yield b'{"type": "CoverageCollection", "coverages": ['
            for count, coverage in enumerate(_coverages(rows)):
                yield (b"," if count else b"") + json.dumps(coverage).encode()
            yield b"]}"
        else:
            yield b'{"type": "FeatureCollection", "features": ['
            for count, row in enumerate(rows):
                yield (b"," if count else b"") + json.dumps(_feature(row)).encode()
            yield b"]}"
    finally:
        if counts:
            _read_series(catalog, note, counts)
        catalog.close()


_CRS84 = {"coordinates": ["x", "y"], "system": {
    "type": "GeographicCRS", "id": "http://www.opengis.net/def/crs/OGC/1.3/CRS84"}}
_TIME = {"coordinates": ["t"], "system": {"type": "TemporalRS", "calendar": "Gregorian"}}


def _coverages(rows: Iterator[ObservationRow]) -> Iterator[dict]:
    """A CoverageJSON coverage per series (a station's element), one series in memory at
    a time: a PointSeries where the station's position is known, else a time series
    without a domain type. Its element's values and their QC flags are two ranges."""
    series, first, times, values, flags = None, None, [], [], []
    for row in chain(rows, [None]):
        if row is None or row.cursor.series != series:
            if first is not None:
                yield _coverage(first, times, values, flags)
            if row is None:
                return
            series, first, times, values, flags = row.cursor.series, row, [], [], []
        times.append(format_utc(row.observed_us))
        values.append(row.value)
        flags.append(row.qc)


def _coverage(row: ObservationRow, times: list, values: list, flags: list) -> dict:
    axes: dict = {"t": {"values": times}}
    domain: dict = {"type": "Domain", "axes": axes, "referencing": [_TIME]}
    if row.longitude is not None and row.latitude is not None:
        axes.update(x={"values": [row.longitude]}, y={"values": [row.latitude]})
        domain.update(domainType="PointSeries", referencing=[_CRS84, _TIME])
    qc = f"{row.element}.qc"
    return {
        "type": "Coverage", "domain": domain,
        "parameters": {
            row.element: {"type": "Parameter", "observedProperty": {
                "id": f"obslink:element/{row.element}", "label": {"en": row.element}},
                "unit": {"symbol": row.unit},
                "description": {"en": f"{row.station}, source field {row.source_field}"}},
            qc: {"type": "Parameter", "observedProperty": {
                "label": {"en": f"QC flag of {row.element} (docs/qc.md)"}}}},
        "ranges": {
            row.element: {"type": "NdArray", "dataType": "float", "axisNames": ["t"],
                          "shape": [len(values)], "values": values},
            qc: {"type": "NdArray", "dataType": "integer", "axisNames": ["t"],
                 "shape": [len(flags)], "values": flags}}}


def _visible_stations(catalog, principal: Principal) -> set[str] | None:
    """The stations with a dataset the account may see (None: all)."""
    if principal.sees_everything:
        return None
    return {station for station, level in catalog.dataset_levels().values()
            if principal.may_see(level)}


@router.get("/v1/stations", responses=BAD)
def stations(request: Request, principal: Principal = READ) -> list[dict]:
    """Every station (that has a dataset the account is cleared for) with its position,
    reporting interval and newest observation."""
    catalog = context_of(request).reader()
    visible = _visible_stations(catalog, principal)
    found = [station for station in catalog.station_summaries()
             if visible is None or station["id"] in visible]
    for station in found:
        newest = station.pop("last_observed_us")
        station["last_observed"] = None if newest is None else format_utc(newest, fixed=True)
    return found


@router.get("/v1/datasets", responses=BAD)
def datasets(request: Request, station: str | None = None,
             element: str | None = Query(None, description="comma-separated elements; "
                                         "datasets holding any of them"),
             q: str | None = Query(None, description="text in the title or description"),
             bbox: str | None = Query(None, description="min lon,min lat,max lon,max lat"),
             datetime: str | None = Query(None, description="instant or START/END ('..' "
                                          "open): datasets with data in it"),
             principal: Principal = READ) -> dict:
    """Datasets as WCMP2 records (a GeoJSON FeatureCollection), filtered; only those the
    account's clearance admits."""
    box, (start, end) = _bbox(bbox), _interval(datetime)
    elements = set(_list(element))
    catalog = context_of(request).reader()
    centre = catalog.catalog_settings()["centre_id"]
    found = []
    for dataset in catalog.datasets(station):
        if not principal.may_see(dataset["classification"]):
            continue
        if elements and not elements & set(dataset["elements"]):
            continue
        if q and q.lower() not in f"{dataset['title']} {dataset['description'] or ''}".lower():
            continue
        if box and not (dataset["longitude"] is not None and dataset["latitude"] is not None
                        and box[0] <= dataset["longitude"] <= box[2]
                        and box[1] <= dataset["latitude"] <= box[3]):
            continue
        if (start is not None or end is not None) and (
                dataset["time_start"] is None
                or (end is not None and dataset["time_start"] > end)
                or (start is not None and dataset["time_end"] < start)):
            continue
        found.append(wcmp2(dataset, centre, str(request.base_url).rstrip("/")))
    return {"type": "FeatureCollection", "features": found}


@router.get("/v1/datasets/{identifier:path}", responses=UNKNOWN)
def dataset(identifier: str, request: Request, principal: Principal = READ) -> dict:
    """One dataset's WCMP2 record."""
    catalog = context_of(request).reader()
    found = _visible_dataset(catalog, principal, identifier)
    return wcmp2(found, catalog.catalog_settings()["centre_id"],
                 str(request.base_url).rstrip("/"))


class DatasetChanges(BaseModel):
    title: str | None = Field(None, min_length=1, max_length=500)
    description: str | None = Field(None, max_length=10_000)
    classification: str | None = Field(None, description=", ".join(CLASSIFICATIONS))
    licence: str | None = Field(None, max_length=10_000)


def _visible_dataset(catalog, principal: Principal, identifier: str) -> dict:
    """The dataset, or 404 alike for an unknown one and one the account may not see."""
    try:
        found = catalog.dataset(identifier)
    except NoSuchRecordError as exc:
        raise HTTPException(404, str(exc)) from None
    if not principal.may_see(found["classification"]):
        raise HTTPException(404, str(no_dataset(identifier)))
    return found


@router.patch("/v1/datasets/{identifier:path}", responses={**BAD, **UNKNOWN})
def update_dataset(identifier: str, changes: DatasetChanges, request: Request,
                   principal: Principal = require("catalog:write")) -> dict:
    """Change a dataset's title, description or licence (operators), or its
    classification (administrators)."""
    wanted = {key: value for key, value in changes.model_dump().items() if value is not None}
    catalog = open_catalog(context_of(request).catalog)
    try:
        _visible_dataset(catalog, principal, identifier)
        if "classification" in wanted and "admin" not in principal.scopes:
            raise HTTPException(403, "changing a dataset's classification needs the admin "
                                     "scope (an administrator)")
        audit_note(request).detail.update(dataset=identifier, changes=wanted)
        found = catalog.update_dataset(identifier, **wanted)
        centre = catalog.catalog_settings()["centre_id"]
    except NoSuchRecordError as exc:
        raise HTTPException(404, str(exc)) from None
    except ConfigError as exc:
        raise HTTPException(400, str(exc)) from None
    finally:
        catalog.close()
    return wcmp2(found, centre, str(request.base_url).rstrip("/"))


@router.get("/v1/observations", responses={**BAD, 200: {
    "description": "observations: JSON (a page), CSV, GeoJSON or CoverageJSON (per `f`)",
    "content": {MEDIA_TYPES["json"]: {}, MEDIA_TYPES["csv"]: {"schema": {"type": "string"}},
                MEDIA_TYPES["geojson"]: {"schema": {"type": "object"}},
                MEDIA_TYPES["covjson"]: {"schema": {"type": "object"}}}}})
def observations(request: Request,
                 station: str | None = Query(None, description="comma-separated station ids"),
                 element: str | None = Query(None, description="comma-separated elements"),
                 datetime: str | None = Query(None, description="instant or START/END ('..' "
                                              "open), RFC 3339"),
                 bbox: str | None = Query(None, description="min lon,min lat,max lon,max lat"),
                 qc: str | None = Query(None, description="only these QC flags, e.g. 0,1"),
                 missing: bool = Query(True, description="include readings without a value"),
                 limit: int | None = Query(None, ge=1, le=MAX_PAGE, description="rows per "
                                           "page (JSON: default 1000); the other formats "
                                           "stream everything unless given"),
                 cursor: str | None = Query(None, description="the `next` of the previous "
                                            "page"),
                 f: str = Query("json", pattern="^(json|csv|geojson|covjson)$",
                                description="json (pages); csv, geojson or covjson "
                                            "(CoverageJSON, a coverage per series), "
                                            "streamed"),
                 principal: Principal = READ):
    """Observations, series by series (a station's element) in time order. JSON comes in
    pages with a `next` link; CSV, GeoJSON and CoverageJSON stream the whole answer
    unless `limit` is given."""
    query = _query(station, element, datetime, bbox, qc, missing)
    if not principal.sees_everything:
        query = replace(query, levels=principal.levels)
    note = audit_note(request)
    try:
        after = Cursor.parse(cursor) if cursor else None
    except QueryError as exc:
        raise HTTPException(400, str(exc)) from None
    context = context_of(request)
    if f != "json" and limit is None:
        return StreamingResponse(_joined(_stream(context.catalog, query, after, f, note)),
                                 media_type=MEDIA_TYPES[f])
    size = limit or 1000
    if f in TEXT_FORMATS:  # the page's text comes from the catalog as it is sent
        texts, last, count, counts = [], None, 0, Counter()
        for text, last, rows in context.reader().observation_text(query, after, f, size):
            texts.append(text)
            count += rows
            counts[last.series] += rows
        _read_series(context.reader(), note, counts)
        next_link = _next(request, last if count == size else None)
        if f == "csv":
            headers = {"Link": f'<{next_link}>; rel="next"'} if next_link else {}
            return Response(CSV_HEADER + "".join(texts).encode(),
                            media_type=MEDIA_TYPES["csv"], headers=headers)
        body = "".join(texts).removesuffix(",")
        return Response(f'{{"observations": [{body}], "next": {json.dumps(next_link)}, '
                        f'"cursor": {json.dumps(str(last) if next_link else None)}}}',
                        media_type=MEDIA_TYPES["json"])
    page = list(islice(_counted(context.reader().observations(query, after), note), size))
    next_link = _next(request, page[-1].cursor if len(page) == size else None)
    if f == "covjson":
        return JSONResponse({"type": "CoverageCollection",
                             "coverages": list(_coverages(iter(page))), "next": next_link},
                            media_type=MEDIA_TYPES["covjson"])
    if f == "geojson":
        return JSONResponse({"type": "FeatureCollection",
                             "features": [_feature(row) for row in page], "next": next_link},
                            media_type=MEDIA_TYPES["geojson"])
    raise AssertionError(f)  # the pattern of f admits no other


def _next(request: Request, last: Cursor | None) -> str | None:
    """The next page's URL, after a full page that ended at ``last``."""
    return None if last is None else str(request.url.include_query_params(cursor=str(last)))


@router.get("/v1/provenance/{identifier:path}", responses={**BAD, **UNKNOWN})
def provenance(identifier: str, request: Request,
               f: str = Query("json", pattern="^(json|prov)$",
                              description="json (obslink's chain) or prov (W3C PROV-JSON)"),
               principal: Principal = READ) -> dict:
    """A batch's or observation's provenance chain, with its inclusion proof against the
    newest signed tree head that holds it."""
    catalog = context_of(request).reader()
    try:
        ident = parse_identifier(identifier)
        if ident.kind != "dataset" and not principal.may_see(
                catalog.classification_of(dataset_of(ident)) or ""):
            raise unknown_record(ident, identifier)
        chain = resolve(catalog, identifier)
    except IdentifierError as exc:
        raise HTTPException(400, str(exc)) from None
    except NoSuchRecordError as exc:
        raise HTTPException(404, str(exc)) from None
    audit_note(request).read(chain["dataset"])
    return to_prov_json(chain) if f == "prov" else chain


@router.get("/v1/log/tree-heads")
def tree_heads(request: Request, limit: int = Query(10, ge=1, le=1000),
               _: Principal = READ) -> dict:
    """The log's size and its newest signed tree heads, newest first."""
    catalog = context_of(request).reader()
    return {"size": catalog.tree_size(),
            "tree_heads": [show_tree_head(head) for head in catalog.tree_heads(limit)]}


@router.get("/v1/log/inclusion", responses=BAD)
def inclusion(request: Request, index: int = Query(ge=0), size: int = Query(ge=1),
              _: Principal = READ) -> dict:
    """RFC 9162 inclusion proof of leaf ``index`` in the tree of ``size`` leaves."""
    try:
        leaf, root, proof = context_of(request).reader().inclusion(index, size)
    except QueryError as exc:
        raise HTTPException(400, str(exc)) from None
    return {"index": index, "size": size, "root": root.hex(), "leaf_hash": leaf.hex(),
            "proof": [step.hex() for step in proof]}


@router.get("/v1/log/consistency", responses=BAD)
def consistency(request: Request, old: int = Query(ge=0), new: int = Query(ge=0),
                _: Principal = READ) -> dict:
    """RFC 9162 consistency proof: the tree of ``old`` leaves is a prefix of ``new``'s."""
    try:
        old_root, new_root, proof = context_of(request).reader().consistency(old, new)
    except QueryError as exc:
        raise HTTPException(400, str(exc)) from None
    return {"old": old, "new": new, "old_root": old_root.hex(), "new_root": new_root.hex(),
            "proof": [step.hex() for step in proof]}


@hookimpl
def obslink_register_http_routes(registry):
    registry.add_http_routes(router)

