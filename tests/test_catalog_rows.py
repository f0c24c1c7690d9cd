"""The catalog stores each batch's columns as observation rows, without the broker.

The collector builds rows straight from a batch's columns (no Reading per value), so this
checks every column of every row against the readings the batch carries, including the
cases that leave the fast path: masks over check names in another order than the
catalog's bits, and readings the sender could not check, which the centre checks.
"""

from __future__ import annotations

import re
import sqlite3
from datetime import datetime
from pathlib import Path

import msgpack
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from obslink import wire
from obslink.errors import WireError
from obslink.readings import (MAX_TIME_US, MIN_TIME_US, QC_NOT_CHECKED, Reading, format_utc,
                              utc_us_from_datetime)
from obslink.server.catalog import AcceptedBatch, Catalog, Station, open_catalog
from obslink.server.catalog.sqlite_schema import MIGRATIONS, _TEXT_TO_US, _US_TO_TEXT
from obslink.server.centre_qc import CentreQC, centre_qc_runner
from obslink.sqlite_store import apply_migrations

T0 = 1_795_000_000_000_000


def accepted(batch: wire.Batch) -> AcceptedBatch:
    body = wire.encode_batch(batch)
    return AcceptedBatch(wire.decode_batch_columns(body), f"obslink/v1/net/{batch.station}/data",
                         "kid", b"s" * 64, body, T0)


def stored(catalog: Catalog, station: str) -> list[tuple]:
    names = catalog.qc_check_names()

    def named(bits: int) -> set[str]:
        return {name for bit, name in names.items() if bits >> bit & 1}

    rows = catalog.conn.execute(
        "SELECT observed_at, element, value, unit, source_field, source_flag, qc, period_s, "
        "qc_ran, qc_failed FROM observations WHERE station = ? ORDER BY id", (station,))
    return [(*row[:8], named(row[8]), named(row[9])) for row in rows]


def test_rows_hold_every_column_of_the_readings_with_masks_by_check_name(catalog_location):
    catalog = open_catalog(catalog_location)
    catalog.add_station(Station("S1", "net"), None, None)
    # a first sender fixes the catalog's bits in its order ...
    catalog.commit([accepted(wire.Batch("S1", "ep", 1, T0, [
        Reading(T0, "air_temperature", 1.0, "degC", "T", None, 0, None, 0b11, 0)],
        qc_checks=["range", "step"]))])
    # ... so a second with another order needs its masks translated
    readings = [
        Reading(T0 + 1, "air_temperature", 21.5, "degC", "AirTC", None, 0, None, 0b011, 0b001),
        Reading(T0 + 1, "precipitation_amount", 0.2, "mm", "Rain", "A", 1, 600, 0b100, 0b100),
        Reading(T0 + 60_000_000, "air_temperature", 21.0, "degC", "AirTC", None, 0, None,
                0b111, 0),
    ]
    catalog.commit([accepted(wire.Batch("S1", "ep", 2, T0, readings,
                                        qc_checks=["step", "persistence", "range"]))])
    order = ["step", "persistence", "range"]
    expected = [(format_utc(r.observed_at, fixed=True), r.element, r.value, r.unit,
                 r.source_field, r.source_flag, r.qc, r.period_s,
                 {order[j] for j in range(3) if r.qc_ran >> j & 1},
                 {order[j] for j in range(3) if r.qc_failed >> j & 1}) for r in readings]
    assert stored(catalog, "S1")[1:] == expected


def test_readings_the_sender_could_not_check_are_checked_at_the_centre(catalog_location):
    catalog = open_catalog(catalog_location)
    catalog.add_station(Station("S2", "net"), None, None)
    qc = centre_qc_runner()
    readings = [
        Reading(T0, "air_temperature", 20.0, "degC", "T", None, 0, None, 1, 0),
        Reading(T0, "air_temperature", 99.0, "degC", "T2", None, QC_NOT_CHECKED),  # too hot
        Reading(T0, "wind_speed", None, "m/s", "WS", "NAN", QC_NOT_CHECKED),  # stays so
    ]
    catalog.commit([accepted(wire.Batch("S2", "ep", 1, T0, readings, qc_checks=["range"]))],
                   CentreQC(qc))
    rows = stored(catalog, "S2")
    assert [row[6] for row in rows[:1]] == [0] and rows[0][8] == {"range"}
    assert rows[1][6] not in (0, QC_NOT_CHECKED) and "range" in rows[1][9]
    assert "range" in rows[1][8] <= set(qc.names)  # the centre's checks, by their names
    assert rows[2][6] == QC_NOT_CHECKED and rows[2][5] == "NAN"
    origin = catalog.conn.execute("SELECT qc_origin FROM batches").fetchone()[0]
    assert origin == "edge+centre"


def test_integers_beyond_sqlites_range_never_fail_a_commit(catalog_location):
    """Such a batch failed its whole group's commit at every redelivery: a free-form
    integer SQLite cannot hold is dropped, and such a period is malformed."""
    catalog = open_catalog(catalog_location)
    catalog.add_station(Station("S3", "net"), None, None)
    reading = Reading(T0, "air_temperature", 1.0, "degC", "T")
    batch = wire.Batch("S3", "ep", 1, T0, [reading], source={"start": 2**64 - 1, "end": 2**63})
    assert catalog.commit([accepted(batch)]) == [True]
    assert catalog.conn.execute("SELECT source_start, source_end FROM batches").fetchone() == \
        (None, None)
    data = msgpack.unpackb(wire.encode_batch(wire.Batch("S3", "ep", 2, T0, [reading])))
    data["fields"][0][3] = 2**63
    with pytest.raises(WireError, match="fields"):
        wire.decode_batch_columns(msgpack.packb(data))


@settings(max_examples=300, deadline=None)
@given(st.integers(min_value=MIN_TIME_US, max_value=MAX_TIME_US))
def test_the_views_time_text_is_format_utc_and_converts_back(us):
    """observed_at (text, as before the compact table) is made in SQL from observed_us, and
    the migration makes observed_us from the old text: both must be exact to the µs."""
    conn = sqlite3.connect(":memory:")
    text, back = conn.execute(f"SELECT {_US_TO_TEXT.format('?1')}, "
                              f"{_TEXT_TO_US.format(_US_TO_TEXT.format('?1'))}",
                              (us,)).fetchone()
    assert text == format_utc(us, fixed=True)
    assert back == us
    short = format_utc(us)  # without trailing zeros, as some older rows may hold
    assert conn.execute(f"SELECT {_TEXT_TO_US.format('?1')}", (short,)).fetchone()[0] == us


def test_one_series_per_station_and_field_with_or_without_a_period(catalog_location):
    catalog = open_catalog(catalog_location)
    for station in ("S4", "S5"):
        catalog.add_station(Station(station, "net"), None, None)
    readings = [Reading(T0, "wind_speed", 1.0, "m/s", "WS"),
                Reading(T0, "wind_speed", 2.0, "m/s", "WS", period_s=600),
                Reading(T0 + 1, "wind_speed", 3.0, "m/s", "WS")]
    catalog.commit([accepted(wire.Batch("S4", "ep", 1, T0, readings)),
                    accepted(wire.Batch("S5", "ep", 1, T0, readings[:1]))])
    reopened = open_catalog(catalog_location)  # the series are found, not made again
    reopened.commit([accepted(wire.Batch("S4", "ep", 2, T0, readings))])
    series = reopened.conn.execute(
        "SELECT station, period_s, count(*) FROM observations GROUP BY series, station, period_s "
        "ORDER BY series"
    ).fetchall()
    assert series == [("S4", None, 4), ("S4", 600, 2), ("S5", None, 1)]
    assert reopened.stats()["observations"] == 7


def test_a_catalog_with_text_observations_is_migrated_row_for_row(tmp_path):
    """Catalogs made before the compact table keep every observation, in order, and read
    the same through the view; new batches are stored beside them."""
    path = tmp_path / "catalog.db"
    conn = sqlite3.connect(path, isolation_level=None)
    compact = next(i for i, (name, _sql) in enumerate(MIGRATIONS)
                   if name.startswith("compact observations"))
    apply_migrations(conn, MIGRATIONS[:compact])  # the schema before the compact table
    conn.execute("INSERT INTO stations (id, network, created_at) VALUES ('S6', 'net', 'x')")
    conn.execute("INSERT INTO batches (id, station, epoch, seq, key_id, signature, "
                 "signed_sha256, body, topic, readings, created_at, received_at, "
                 "committed_at) VALUES (1, 'S6', 'ep', 1, 'k', x'00', 'h', x'00', 't', 3, "
                 "'x', 'x', 'x')")
    old_rows = [
        (1, "S6", format_utc(T0, fixed=True), "air_temperature", 1.5, "degC", "T", None, 0,
         None, 1, 0),
        (1, "S6", format_utc(T0 - 10**15 + 7, fixed=True), "wind_speed", None, "m/s", "WS",
         "NAN", 9, 600, 0, 0),
        (1, "S6", format_utc(T0 + 250_000), "air_temperature", -3.0, "degC", "T", None, 1,
         None, 1, 1),
    ]
    conn.executemany("INSERT INTO observations (batch_id, station, observed_at, element, "
                     "value, unit, source_field, source_flag, qc, period_s, qc_ran, "
                     "qc_failed) VALUES (?,?,?,?,?,?,?,?,?,?,?,?)", old_rows)
    conn.close()
    catalog = open_catalog(path)
    rows = catalog.conn.execute(
        "SELECT batch_id, station, observed_at, element, value, unit, source_field, "
        "source_flag, qc, period_s, qc_ran, qc_failed FROM observations ORDER BY id").fetchall()
    fixed = [(*row[:2], format_utc(_us(row[2]), fixed=True), *row[3:]) for row in old_rows]
    assert rows == fixed
    assert catalog.conn.execute("SELECT observed_us FROM observation_values ORDER BY id"
                                ).fetchall() == [(T0,), (T0 - 10**15 + 7,), (T0 + 250_000,)]
    catalog.commit([accepted(wire.Batch("S6", "ep", 2, T0, [
        Reading(T0 + 60_000_000, "air_temperature", 2.5, "degC", "T")]))])
    assert catalog.conn.execute("SELECT count(DISTINCT series), count(*) FROM observations"
                                ).fetchone() == (2, 4)


def _us(text: str) -> int:
    return utc_us_from_datetime(datetime.fromisoformat(text.replace("Z", "+00:00")))


def test_the_catalog_page_lists_the_views_columns_and_its_query_runs(catalog_location):
    page = (Path(__file__).parent.parent / "docs" / "catalog.md").read_text()
    catalog = open_catalog(catalog_location)
    catalog.add_station(Station("0-20000-0-54511", "net"), None, None)
    catalog.commit([accepted(wire.Batch("0-20000-0-54511", "ep", 1, T0, [
        Reading(1795000000000000 + 60_000_000, "air_temperature", 1.5, "degC", "T"),
        Reading(1794999999000000, "air_temperature", 1.0, "degC", "T")]))])
    view = catalog.conn.execute("SELECT * FROM observations").description
    section = page.split("## `observations`")[1].split("\n## ")[0]
    documented = set(re.findall(r"`(\w+)`", section.split("The view joins")[0]))
    assert {column[0] for column in view} <= documented
    query = re.search(r"```sql\n(.*?)```", page, re.S).group(1)
    assert catalog.conn.execute(query).fetchall() == [
        ("air_temperature", 1795000000000000 + 60_000_000, 1.5, QC_NOT_CHECKED)]


def test_the_keys_version_follows_key_changes_from_this_and_other_connections(catalog_location):
    """The collector asks before every group whether keys changed; the answer is cached
    until this connection changes a key or another connection commits anything."""
    catalog = open_catalog(catalog_location)
    catalog.add_station(Station("S7", "net"), b"k" * 32, "kid-1")
    first = catalog.keys_version()
    assert catalog.keys_version() == first
    catalog.add_key("S7", b"l" * 32, "kid-2")  # this connection
    second = catalog.keys_version()
    assert second != first
    other = open_catalog(catalog_location)  # the CLI, the HTTP API
    other.revoke_key("kid-1")
    assert catalog.keys_version() != second


def test_a_batch_whose_readings_span_three_months_is_stored_whole(catalog_location):
    """On PostgreSQL each month is a partition of its own, made as readings of it arrive:
    the month between a batch's first and last readings needs one too."""
    catalog = open_catalog(catalog_location)
    catalog.add_station(Station("S8", "net"), None, None)
    day = 86_400_000_000
    readings = [Reading(T0 + n * 35 * day, "air_temperature", float(n), "degC", "T")
                for n in range(3)]
    assert catalog.commit([accepted(wire.Batch("S8", "ep", 1, T0, readings))]) == [True]
    assert [row[0] for row in stored(catalog, "S8")] == \
        [format_utc(reading.observed_at, fixed=True) for reading in readings]
    catalog.close()
