"""The catalog over HTTP, served by a real `obslink collector http` process: datasets and
their WCMP2 records, observations in pages and streamed, paging while batches are committed,
provenance and the log's proofs, the errors users get, and the Swagger page in a real
headless Chromium. The last test goes end to end from a logger's files through a real
agent, Mosquitto and collector."""

from __future__ import annotations

import csv
import io
import json
import re
import secrets
import shutil
import socket
import subprocess
import threading

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from obslink.demo.broker import free_port
from obslink.demo.postgres import collector_file_options
from obslink.keys import load_private_key
from obslink.readings import MAX_TIME_US, MIN_TIME_US, Reading, format_utc
from obslink.server.catalog import merkle, open_catalog
from tests.conftest import (BACKENDS, ObslinkProcess, admin_http, admit_tests, make_account,
                            wait_until)
from tests.signed_catalog import batch, signed


def serve(db, directory) -> tuple[str, ObslinkProcess]:
    """`collector http` on the catalog ``db``; ``api`` calls it as an administrator."""
    port = free_port()
    admit_tests(db, f"http://127.0.0.1:{port}")
    beside = collector_file_options(db, directory)
    process = ObslinkProcess(["collector", "http", "--db", str(db), "--listen",
                              f"127.0.0.1:{port}", "--broker-url", "mqtt://127.0.0.1:1883",
                              *beside], directory / "http.log").start()

    def accepting() -> bool:
        with socket.socket() as probe:
            return probe.connect_ex(("127.0.0.1", port)) == 0
    wait_until(lambda: accepting() or not process.alive(), timeout=20, message="the HTTP API")
    assert process.alive(), process.log()
    return f"http://127.0.0.1:{port}", process


@pytest.fixture
def api(signed_catalog):
    catalog, directory, _ = signed_catalog
    url, process = serve(catalog.location, directory)
    yield url, catalog, directory
    process.stop()


def every_page(url: str, **params) -> list[dict]:
    rows, link = [], f"{url}/v1/observations"
    while link:
        answer = admin_http.get(link, params=params if link.endswith("observations") else None,
                              timeout=30)
        assert answer.status_code == 200, answer.text
        rows += answer.json()["observations"]
        link = answer.json()["next"]
    return rows


def committed(catalog, station: str | None = None) -> list[tuple]:
    where = "WHERE station = ?" if station else ""
    return catalog.conn.execute(
        f"SELECT observed_at, element, value, qc FROM observations {where} "
        f"ORDER BY series, observed_us, id", (station,) if station else ()).fetchall()


def test_observations_page_and_stream_exactly_what_was_committed(api):
    url, catalog, _ = api
    expected = committed(catalog)
    rows = every_page(url, limit=4)
    assert [(r["observed_at"], r["element"], r["value"], r["qc"]) for r in rows] == expected
    assert len({row["id"] for row in rows}) == len(rows) == 18
    text = admin_http.get(f"{url}/v1/observations", params={"f": "csv"}, timeout=30).text
    streamed = list(csv.DictReader(io.StringIO(text)))
    assert [(r["observed_at"], r["element"], float(r["value"]) if r["value"] else None,
             int(r["qc"])) for r in streamed] == expected
    assert [r["id"] for r in streamed] == [r["id"] for r in rows]
    geo = admin_http.get(f"{url}/v1/observations", params={"f": "geojson"}, timeout=30).json()
    assert [feature["id"] for feature in geo["features"]] == [r["id"] for r in rows]
    # every identifier resolves to the row it came with
    chain = admin_http.get(f"{url}/v1/provenance/{rows[5]['id']}", timeout=30).json()
    assert chain["observation"]["value"] == rows[5]["value"]
    assert chain["observation"]["observed_at"] == rows[5]["observed_at"]


def test_coverage_json_reads_back_with_covjson_pydantic(api):
    from covjson_pydantic.coverage import CoverageCollection  # a public CoverageJSON reader

    url, catalog, _ = api
    catalog.update("S1", latitude=30.5, longitude=114.25)
    rows = every_page(url)
    text = admin_http.get(f"{url}/v1/observations", params={"f": "covjson"}, timeout=30).text
    collection = CoverageCollection.model_validate_json(text)
    assert [c.domain.domainType for c in collection.coverages] == ["PointSeries"] * 3
    values = []
    for coverage in collection.coverages:
        [element] = [name for name in coverage.ranges if not name.endswith(".qc")]
        assert coverage.domain.axes.x.values == [114.25]
        values += [(element, value) for value in coverage.ranges[element].values]
    assert values == [(r["element"], r["value"]) for r in rows]


def test_filters_narrow_the_answer(api):
    url, catalog, _ = api
    humidity = every_page(url, element="relative_humidity")
    assert {r["element"] for r in humidity} == {"relative_humidity"} and len(humidity) == 6
    present = every_page(url, element="relative_humidity", missing="false")
    assert len(present) == 5 and all(r["value"] is not None for r in present)
    start, end = format_utc(batch(2).created_at), format_utc(batch(3).created_at)
    window = every_page(url, datetime=f"{start}/{end}")
    assert {r["observed_at"] for r in window} == {
        format_utc(batch(n).readings[0].observed_at, fixed=True) for n in (2, 3)}
    assert every_page(url, station="nobody") == []
    assert every_page(url, qc="3") == []


def test_paging_while_batches_are_committed_returns_each_observation_once(api):
    url, catalog, directory = api
    before = {row[0] for row in catalog.conn.execute("SELECT id FROM observation_values")}
    station = load_private_key(directory / "station.key")
    writer = open_catalog(catalog.location)
    stop = threading.Event()

    def ingest() -> None:
        seq = 100
        while not stop.is_set() and seq < 400:
            writer.commit([signed(batch(seq), station)])
            seq += 1
    thread = threading.Thread(target=ingest)
    thread.start()
    try:
        rows = every_page(url, limit=5)
    finally:
        stop.set()
        thread.join()
        writer.close()
    ids = [row["id"] for row in rows]
    assert len(ids) == len(set(ids)), "an observation came twice"
    first = {row["id"] for row in rows if int(row["id"].rsplit("/", 2)[1]) < 100}
    assert len(first) == len(before) == 18, "an observation present at the start was missed"


def test_datasets_are_wcmp2_records_and_editable_by_operators(api):
    url, catalog, _ = api
    catalog.update_catalog_settings(centre_id="cn-cma")
    catalog.update_dataset("obslink:S1/surface", classification="internal", licence="CC-BY-4.0")
    found = admin_http.get(f"{url}/v1/datasets", timeout=30).json()["features"]
    assert [record["id"] for record in found] == ["urn:wmo:md:cn-cma:S1.surface"]
    record = admin_http.get(f"{url}/v1/datasets/obslink:S1/surface", timeout=30).json()
    assert record["properties"]["keywords"] == ["air_pressure", "air_temperature",
                                                "relative_humidity"]
    assert record["properties"]["wmo:dataPolicy"] == "recommended"
    assert record["properties"]["rights"] == "CC-BY-4.0"
    assert record["time"]["interval"] == [format_utc(batch(1).readings[0].observed_at),
                                          format_utc(batch(6).readings[0].observed_at)]
    for params, count in (({"element": "air_pressure"}, 1), ({"element": "snow"}, 0),
                          ({"q": "station one"}, 1), ({"datetime": "2030-01-01T00:00:00Z"}, 0)):
        answer = admin_http.get(f"{url}/v1/datasets", params=params, timeout=30).json()
        assert len(answer["features"]) == count, params


def test_operators_update_a_dataset_and_administrators_its_classification(api):
    url, catalog, _ = api
    changed = admin_http.patch(f"{url}/v1/datasets/obslink:S1/surface", timeout=30, json={
        "title": "Station one AWS", "classification": "restricted"})
    assert changed.status_code == 200, changed.text
    assert changed.json()["properties"]["title"] == "Station one AWS"
    assert catalog.dataset("obslink:S1/surface")["classification"] == "restricted"
    bad = admin_http.patch(f"{url}/v1/datasets/obslink:S1/surface", timeout=30,
                           json={"classification": "secret"})
    assert bad.status_code == 400 and "not one of public" in bad.text
    assert admin_http.patch(f"{url}/v1/datasets/obslink:S9/surface", json={"title": "x"},
                            timeout=30).status_code == 404
    operator = {"Authorization": "Bearer " + make_account(catalog.location, "op", "operator",
                                                          "restricted")}
    assert admin_http.patch(f"{url}/v1/datasets/obslink:S1/surface", headers=operator,
                            json={"title": "AWS one"}, timeout=30).status_code == 200
    refused = admin_http.patch(f"{url}/v1/datasets/obslink:S1/surface", headers=operator,
                               json={"classification": "public"}, timeout=30)
    assert refused.status_code == 403 and "admin" in refused.text
    assert catalog.dataset("obslink:S1/surface")["classification"] == "restricted"


def test_the_log_answers_with_proofs_that_verify(api):
    url, catalog, _ = api
    heads = admin_http.get(f"{url}/v1/log/tree-heads", timeout=30).json()
    head = heads["tree_heads"][0]
    assert heads["size"] == head["size"] == 6
    proof = admin_http.get(f"{url}/v1/log/inclusion", params={"index": 2, "size": 6},
                         timeout=30).json()
    assert merkle.verify_inclusion(bytes.fromhex(proof["leaf_hash"]), 2, 6,
                                   [bytes.fromhex(s) for s in proof["proof"]],
                                   bytes.fromhex(head["root"]))
    both = admin_http.get(f"{url}/v1/log/consistency", params={"old": 3, "new": 6},
                        timeout=30).json()
    assert merkle.verify_consistency(3, 6, bytes.fromhex(both["old_root"]),
                                     bytes.fromhex(head["root"]),
                                     [bytes.fromhex(s) for s in both["proof"]])


@pytest.mark.parametrize("path, params, status, says", [
    ("/v1/observations", {"datetime": "yesterday"}, 400, "RFC 3339"),
    ("/v1/observations", {"datetime": "2026-01-02T00:00:00"}, 400, "time zone"),
    ("/v1/observations", {"datetime": "2026-01-02T00:00:00Z/2026-01-01T00:00:00Z"}, 400,
     "start is after the end"),
    ("/v1/observations", {"bbox": "1,2,3"}, 400, "min longitude"),
    ("/v1/observations", {"qc": "good"}, 400, "QC flags as numbers"),
    ("/v1/observations", {"cursor": "x"}, 400, "`next` link"),
    ("/v1/observations", {"cursor": f"1.{10**30}.0"}, 400, "`next` link"),
    ("/v1/observations", {"cursor": f"1.0.{2**63}"}, 400, "`next` link"),
    ("/v1/observations", {"limit": "0"}, 422, ""),
    ("/v1/provenance/S1/e1/1", {}, 400, "not an obslink identifier"),
    ("/v1/provenance/obslink:S1/e1/99", {}, 404, "no batch"),
    ("/v1/provenance/obslink:S1/e1/1/7", {}, 404, "no observation 7"),
    ("/v1/datasets/obslink:S9/surface", {}, 404, "no dataset"),
    ("/v1/log/inclusion", {"index": 6, "size": 6}, 400, "not in a tree of 6"),
    ("/v1/log/consistency", {"old": 1, "new": 60}, 400, "holds 6 leaves"),
])
def test_bad_requests_say_what_was_wrong(api, path, params, status, says):
    url, _, _ = api
    answer = admin_http.get(f"{url}{path}", params=params, timeout=30)
    assert answer.status_code == status, answer.text
    assert says in answer.text


def test_openapi_lists_each_status_a_route_answers(api):
    url, _, _ = api
    paths = admin_http.get(f"{url}/openapi.json", timeout=30).json()["paths"]
    assert {"400", "422"} <= set(paths["/v1/observations"]["get"]["responses"])
    assert {"400", "404"} <= set(paths["/v1/provenance/{identifier}"]["get"]["responses"])
    assert "404" in paths["/v1/datasets/{identifier}"]["get"]["responses"]


def test_the_swagger_page_renders_from_the_collector_alone(api):
    """It works without internet access: a real headless Chromium, which may resolve no
    host but the loopback address, renders every route from /docs."""
    url, _, directory = api
    page = admin_http.get(f"{url}/docs", timeout=30).text
    assert not re.search(r"(src|href)=['\"]https?://", page), "the page loads from elsewhere"
    chromium = shutil.which("chromium")
    assert chromium, "Chromium is missing: run ./scripts/bootstrap.sh, which installs it"
    dom = subprocess.run(
        [chromium, "--headless=new", "--no-sandbox", "--disable-gpu", "--no-first-run",
         f"--user-data-dir={directory / 'chromium'}",
         "--host-resolver-rules=MAP * ~NOTFOUND , EXCLUDE 127.0.0.1",
         "--virtual-time-budget=15000", "--dump-dom", f"{url}/docs"],
        capture_output=True, text=True, timeout=120).stdout
    assert 'class="swagger-ui"' in dom, dom[:2000]
    for route in ("/v1/observations", "/v1/datasets", "/v1/provenance/{identifier}",
                  "/v1/log/consistency", "/v1/enrol"):
        assert f'data-path="{route}"' in dom, route


def test_from_logger_files_the_api_returns_what_the_catalog_committed(deployment):
    station = deployment.add_station("0-20000-0-54511")
    deployment.start_collector()
    deployment.start_agent(station)
    for _ in range(5):
        station.logger.write_next()
    expected = station.logger.values_per_record * 5
    wait_until(lambda: deployment.catalog.count("observations") >= expected, timeout=60,
               message="the logger's records in the catalog")
    url, process = serve(deployment.catalog_path, deployment.base)
    try:
        rows = every_page(url, station="0-20000-0-54511", limit=7)
        catalog = open_catalog(deployment.catalog_path)
        try:
            assert [(r["observed_at"], r["element"], r["value"], r["qc"]) for r in rows] == \
                committed(catalog, "0-20000-0-54511")
        finally:
            catalog.close()
        assert len(rows) == expected
    finally:
        process.stop()


def one_batch_catalog(directory, readings, epoch: str, location=None):
    """A catalog holding station S1 and one batch of ``readings`` from outbox ``epoch``
    (at ``location``; by default catalog.db in ``directory``)."""
    from obslink import wire
    from obslink.server.catalog import AcceptedBatch, Station

    catalog = open_catalog(location or directory / "catalog.db")
    catalog.add_station(Station("S1", "net"), None, None)
    body = wire.encode_batch(wire.Batch("S1", epoch, 1, 0, readings))
    catalog.commit([AcceptedBatch(wire.decode_batch_columns(body), "obslink/v1/net/S1/data",
                                  "kid", bytes(64), body, 0)])
    return catalog


text = st.text(st.characters(blacklist_categories=("Cs",)), max_size=6)
readings = st.lists(st.builds(
    Reading, st.integers(MIN_TIME_US, MAX_TIME_US), text, st.none() | st.floats(
        allow_nan=False, allow_infinity=False), text, text, st.none() | text,
    st.integers(0, 255), st.none() | st.integers(1, 2**62)), min_size=1, max_size=12)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(readings, st.sampled_from(["e1", "0123abcdef", 'a,"b', "x\ny", "é", "%s", "a\x00,b"]))
@example([Reading(-1, "a,b", 0.1 + 0.2, 'u"', "f\n", 'x,"y"', 3, 60)], "e1")
@example([Reading(0, "e", None, "u", "f", "\x00\r", 0, None)], "e1")  # SQLite's GLOB
@example([Reading(0, "e", 1.0, "u", "f", None, 0, None)], "a\x00,b")  # stops at a NUL
@example([Reading(t, "e", 1.5, "u", "f", None, 0, None) for t in (  # days and their edges
    -86_400_000_001, -1, 0, 86_399_999_999, 86_400_000_000, 3 * 86_400_000_000 + 7)], "e1")
@example([Reading(MIN_TIME_US, "e%", 1e-300, "u", "f", "\r", 0, None),
          Reading(MAX_TIME_US, "é", -0.0, "μ", "f", None, 9, None)], "e1")
@pytest.mark.parametrize("backend", BACKENDS)
def test_the_catalog_writes_observation_text_as_the_reference_does(tmp_path_factory, request,
                                                                    backend, batch, epoch):
    """SQLite builds the CSV and JSON of an observation in SQL, PostgreSQL with its own
    code (postgres_text.py); either must be exactly what queries.csv_line and json_object
    make of the same row, whatever the values."""
    from obslink.server.catalog.interface import Catalog
    from obslink.server.catalog.queries import ObservationQuery

    location = None
    if backend == "postgresql":
        texts = [epoch] + [part or "" for reading in batch for part in (
            reading.element, reading.unit, reading.source_field, reading.source_flag,
            reading.source_unit)]
        if any("\x00" in part for part in texts):
            return  # PostgreSQL's text holds no NUL: such a batch is refused as unstorable
        location = request.getfixturevalue("postgres").schema_url(
            f"text_{secrets.token_hex(6)}")
    catalog = one_batch_catalog(tmp_path_factory.mktemp("text"), batch, epoch, location)
    try:
        query = ObservationQuery()
        for fmt in ("csv", "json"):
            ours = "".join(t for t, _, _ in catalog.observation_text(query, fmt=fmt))
            reference = "".join(t for t, _, _ in Catalog.observation_text(catalog, query,
                                                                          fmt=fmt))
            if fmt == "csv":
                assert ours == reference
                assert list(csv.reader(io.StringIO(ours))) == list(csv.reader(
                    io.StringIO(reference)))
            else:
                assert json.loads(f"[{ours[:-1]}]") == json.loads(f"[{reference[:-1]}]")
    finally:
        catalog.close()


DAY_US = 86_400_000_000
# times that fall on and around day edges, far apart and on the same microsecond
clustered = st.lists(st.builds(
    Reading, st.sampled_from([-DAY_US - 1, -1, 0, 1, DAY_US - 1, DAY_US, 5 * DAY_US + 7,
                              400 * DAY_US]), st.sampled_from(["a", "b"]),
    st.none() | st.sampled_from([1.5, 0.0, 0.1 + 0.2, 1e20, 2e-5]) | st.floats(
        allow_nan=False, allow_infinity=False), st.just("u"), st.just("f"),
    st.none() | st.sampled_from(["x", "\x00"]), st.integers(0, 3), st.none()),
    min_size=1, max_size=24)
QUERIES = [{}, {"qc": (0, 2)}, {"missing": False}, {"start_us": 0, "end_us": DAY_US},
           {"start_us": -1, "end_us": 5 * DAY_US + 7, "missing": False, "qc": (1,)}]


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(clustered, st.integers(1, 5), st.sampled_from(QUERIES))
@example([Reading(t, "a", v, "u", "f", None, 0, None) for t, v in (  # a page ends in a tie
    (0, 1.5), (0, 2.5), (0, 1e20), (DAY_US, 0.5))], 2, {})
def test_pages_of_observation_text_are_the_references_pages(tmp_path_factory, batch, limit,
                                                           query):
    """Page by page, from each page's cursor, the SQL-built text and its cursors are the
    Python reference's: across days, gaps, rows on one microsecond, filters and values
    only Python writes."""
    from obslink.server.catalog.interface import Catalog
    from obslink.server.catalog.queries import ObservationQuery

    def pages(write):
        found, after = [], None
        while True:
            chunks = list(write(ObservationQuery(**query), after, fmt, limit))
            found.append(("".join(text for text, _, _ in chunks),
                          chunks[-1][1] if chunks else None))
            if sum(count for _, _, count in chunks) < limit:
                return found
            after = chunks[-1][1]

    catalog = one_batch_catalog(tmp_path_factory.mktemp("pages"), batch, "e1")
    try:
        for fmt in ("csv", "json"):
            assert pages(catalog.observation_text) == pages(
                lambda *args: Catalog.observation_text(catalog, *args))
    finally:
        catalog.close()


many_series = st.lists(st.builds(
    Reading, st.sampled_from([-1, 0, 1, DAY_US, 5 * DAY_US + 7]),
    st.sampled_from(["a", "b", "c", "d", "e", "f"]),
    st.none() | st.sampled_from([1.5, 0.0, 1e20]), st.just("u"), st.just("f"),
    st.none() | st.just("x"), st.integers(0, 3), st.none(), st.just(0), st.just(0),
    st.none()), min_size=1, max_size=30)  # (no NUL, which PostgreSQL's text cannot hold)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(many_series, st.integers(1, 6), st.integers(1, 4), st.integers(1, 3),
       st.sampled_from(QUERIES))
@example([Reading(t, e, 1.5, "u", "f", None, 0, None) for e in "abc" for t in (0, 1, 2)],
         2, 2, 2, {})  # a statement's chunk ends inside a series, and the next starts there
def test_postgresql_reads_several_series_a_statement_as_sqlite_reads_each(
        tmp_path_factory, postgres, batch, chunk, first_group, limit, query):
    """PostgreSQL reads the next series together (postgres_series.py), SQLite a series a
    statement: rows, text and every page's cursor are the same on both, with chunks small
    enough here that statements end inside a series and pages inside a statement."""
    from unittest import mock

    from obslink.server.catalog import postgres_series
    from obslink.server.catalog.queries import ObservationQuery

    def pages(catalog, fmt):
        found, after = [], None
        while True:
            chunks = list(catalog.observation_text(ObservationQuery(**query), after, fmt,
                                                   limit))
            found.append(("".join(text for text, _, _ in chunks),
                          str(chunks[-1][1]) if chunks else None))
            if sum(count for _, _, count in chunks) < limit:
                return found
            after = chunks[-1][1]

    directory = tmp_path_factory.mktemp("series")
    on_sqlite = one_batch_catalog(directory, batch, "e1")
    on_postgres = one_batch_catalog(directory, batch, "e1", postgres.schema_url(
        f"series_{secrets.token_hex(6)}"))
    try:
        with mock.patch.object(postgres_series, "CHUNK", chunk), \
                mock.patch.object(postgres_series, "FIRST_GROUP", first_group):
            for fmt in ("csv", "json"):
                assert pages(on_postgres, fmt) == pages(on_sqlite, fmt)
            rows = [(row.station, row.element, row.observed_us, row.value, str(row.cursor))
                    for row in on_postgres.observations(ObservationQuery(**query))]
        assert rows == [(row.station, row.element, row.observed_us, row.value,
                         str(row.cursor))
                        for row in on_sqlite.observations(ObservationQuery(**query))]
    finally:
        on_sqlite.close()
        on_postgres.close()
