"""Datasets, the catalog's resource records (docs/provenance.md, "Datasets"): one per station
and product, with a persistent identifier, a classification level and a licence; and their
WMO Core Metadata Profile 2 (WCMP2) form, so that publishing to WIS2 is a mapping."""

from __future__ import annotations

from obslink.errors import ConfigError
from obslink.readings import format_utc

# from open to closed; an account's clearance (a later issue) admits its level and below
CLASSIFICATIONS = ("public", "internal", "restricted", "not-released")
SETTINGS = ("centre_id", "default_classification", "default_licence", "default_interval_s")
EDITABLE = ("title", "description", "classification", "licence")


def check_classification(level: str) -> str:
    if level not in CLASSIFICATIONS:
        raise ConfigError(f"classification {level!r} is not one of {', '.join(CLASSIFICATIONS)}")
    return level


def _only(changes: dict, allowed: tuple[str, ...], what: str) -> None:
    unknown = sorted(set(changes) - set(allowed))
    if unknown:
        raise ConfigError(f"{what} {unknown[0]!r} cannot be set; these can: "
                          f"{', '.join(allowed)}")


def check_dataset_changes(changes: dict) -> dict:
    _only(changes, EDITABLE, "a dataset's")
    if "classification" in changes:
        check_classification(changes["classification"])
    return changes


def check_settings(changes: dict) -> dict:
    _only(changes, SETTINGS, "the catalog setting")
    if "default_classification" in changes:
        check_classification(changes["default_classification"])
    interval = changes.get("default_interval_s")
    if interval is not None and not (str(interval).isdigit() and 0 < int(interval) <= 86400):
        raise ConfigError(f"default_interval_s {interval!r}: a whole number of seconds from "
                          "1 to 86400 (how often a station reports unless told otherwise)")
    centre = changes.get("centre_id")
    if centre is not None and not (centre and all(c.isalnum() or c == "-" for c in centre)):
        raise ConfigError(f"centre_id {centre!r}: use letters, digits and '-' (WIS2 centre "
                          "ids look like cn-cma or de-dwd)")
    return changes


def wcmp2(dataset: dict, centre_id: str, base_url: str = "") -> dict:
    """A dataset as a WCMP2 record (a GeoJSON Feature). ``base_url`` makes its links
    absolute (the HTTP API's address)."""
    start, end = dataset["time_start"], dataset["time_end"]
    interval = dataset.get("interval_seconds")
    point = None
    if dataset["longitude"] is not None and dataset["latitude"] is not None:
        point = {"type": "Point", "coordinates": [dataset["longitude"], dataset["latitude"]]}
    local = f"{dataset['station']}.{dataset['product']}"
    return {
        "id": f"urn:wmo:md:{centre_id}:{local}",
        "conformsTo": ["http://wis.wmo.int/spec/wcmp/2/conf/core"],
        "type": "Feature",
        "time": None if start is None else {
            "interval": [format_utc(start), format_utc(end)],
            **({"resolution": f"PT{interval}S"} if interval else {})},
        "geometry": point,
        "properties": {
            "type": "dataset",
            "identifier": dataset["id"],
            "title": dataset["title"],
            "description": dataset["description"] or dataset["title"],
            "keywords": dataset["elements"],
            "themes": [{"concepts": [{"id": "weather"}], "scheme":
                        "https://codes.wmo.int/wis/topic-hierarchy/earth-system-discipline"}],
            "created": dataset["created_at"],
            "updated": dataset["updated_at"],
            "rights": dataset["licence"] or None,
            # WIS2's two policies; anything not public is at most "recommended"
            "wmo:dataPolicy": "core" if dataset["classification"] == "public"
            else "recommended",
            "obslink:classification": dataset["classification"],
        },
        "links": [
            {"href": f"{base_url}/v1/datasets/{dataset['id']}", "rel": "self",
             "type": "application/json", "title": "this record"},
            {"href": f"{base_url}/v1/observations?station={dataset['station']}", "rel": "data",
             "type": "application/json", "title": "the observations"},
        ],
    }
