"""Products over HTTP (docs/products.md, docs/api.md): radar volumes and other large
products listed with their metadata, and downloaded from the product store (byte ranges
supported, so an interrupted download of a 200 MB volume resumes where it stopped)."""

from __future__ import annotations

from urllib.parse import urlencode

from fastapi import APIRouter, HTTPException, Query, Request
from fastapi.responses import FileResponse

from obslink.plugins import hookimpl
from obslink.server.catalog.errors import NoSuchRecordError, no_product
from obslink.server.catalog.identifiers import RADAR, IdentifierError, dataset_id
from obslink.server.http_access import ACCESS_RESPONSES, Principal, audit_note, require
from obslink.server.http_api import context_of
from obslink.server.http_catalog import BAD, UNKNOWN, _interval
from obslink.server.product_store import ProductStore, default_product_store

router = APIRouter(tags=["products"], responses=ACCESS_RESPONSES)
READ = require("catalog:read")
MAX_PAGE = 1000


def _store(request: Request) -> ProductStore:
    context = context_of(request)
    return ProductStore(context.product_store or default_product_store(str(context.catalog)))


def _public(record: dict, base: str) -> dict:
    shown = {key: value for key, value in record.items()
             if key not in ("manifest", "signature", "id", "leaf_hash")}
    shown["links"] = [
        {"rel": "self", "href": f"{base}/v1/products/{record['identifier']}"},
        {"rel": "enclosure", "type": "application/octet-stream", "length": record["size"],
         "href": f"{base}/v1/products/{record['identifier']}/data"},
        {"rel": "provenance", "href": f"{base}/v1/provenance/{record['identifier']}"}]
    return shown


@router.get("/v1/products", responses=BAD)
def products(request: Request,
             station: str | None = Query(None, description="one station's products"),
             datetime: str | None = Query(None, description="scan start: an instant or "
                                          "START/END (RFC 3339, '..' for an open end)"),
             limit: int = Query(100, ge=1, le=MAX_PAGE),
             cursor: int = Query(0, ge=0, le=2**63 - 1, description="from a `next` link"),
             principal: Principal = READ) -> dict:
    """Products in the order they were registered, a page at a time, with their metadata
    and download links; `next` continues. Products of datasets the account is not cleared
    for are left out (a page may then hold fewer than `limit`)."""
    start, end = _interval(datetime)
    catalog = context_of(request).reader()
    found = catalog.products(station, start, end, cursor, limit)
    levels = catalog.dataset_levels() if not principal.sees_everything else {}
    base = str(request.base_url).rstrip("/")
    page = {"products": [_public(record, base) for record in found
                         if principal.sees_everything or principal.may_see(levels.get(
                             dataset_id(record["station"], RADAR), ("", ""))[1])]}
    if len(found) == limit:
        kept = [(key, value) for key, value in request.query_params.multi_items()
                if key != "cursor"]
        page["next"] = f"{base}/v1/products?{urlencode(kept + [('cursor', found[-1]['id'])])}"
    return page


def _record(request: Request, identifier: str, principal: Principal) -> dict:
    """The product's record; 404 alike when unknown and when not cleared."""
    catalog = context_of(request).reader()
    try:
        record = catalog.product(identifier)
    except (NoSuchRecordError, IdentifierError) as exc:
        raise HTTPException(404, str(exc)) from None
    dataset = dataset_id(record["station"], RADAR)
    if not principal.may_see(catalog.classification_of(dataset) or ""):
        raise HTTPException(404, str(no_product(identifier)))
    return record


@router.get("/v1/products/{identifier:path}/data", responses={
        **UNKNOWN, 206: {"description": "the byte range asked for (Range: bytes=…)"},
        416: {"description": "the range asked for is outside the product"},
        200: {"content": {"application/octet-stream": {}},
              "description": "the product's bytes as the station's hardware wrote them"}})
def product_data(request: Request, identifier: str, principal: Principal = READ
                 ) -> FileResponse:
    """The product's bytes, as the radar wrote them; `Range` requests are answered with
    206. The `Digest`-like header `X-Obslink-SHA256` carries the SHA-256 the station
    signed."""
    record = _record(request, identifier, principal)
    audit_note(request).read(dataset_id(record["station"], RADAR))
    path = _store(request).path_of(record["sha256"])
    if not path.is_file():
        raise HTTPException(404, f"product {identifier} is in the catalog but its file "
                                 f"{path} is missing from the product store; `obslink catalog "
                                 "verify` lists what is missing")
    return FileResponse(path, media_type="application/octet-stream", filename=record["name"],
                        headers={"X-Obslink-SHA256": record["sha256"]})


@router.get("/v1/products/{identifier:path}", responses=UNKNOWN)
def product(request: Request, identifier: str, principal: Principal = READ) -> dict:
    """One product's record: station, scan time, format and metadata (site, elevations,
    moments), size and SHA-256, who signed it and when it was received and registered."""
    return _public(_record(request, identifier, principal), str(request.base_url).rstrip("/"))


@hookimpl
def obslink_register_http_routes(registry):
    registry.add_http_routes(router)
