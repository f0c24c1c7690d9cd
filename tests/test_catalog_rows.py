"""The catalog stores each batch's columns as observation rows, without the broker.

The collector builds rows straight from a batch's columns (no Reading per value), so this
checks every column of every row against the readings the batch carries, including the
cases that leave the fast path: masks over check names in another order than the
catalog's bits, and readings the sender could not check, which the centre checks.
"""

from __future__ import annotations

import msgpack
import pytest

from obslink import wire
from obslink.errors import WireError
from obslink.readings import QC_NOT_CHECKED, Reading, format_utc
from obslink.server.catalog import AcceptedBatch, SQLiteCatalog, Station
from obslink.server.collector import centre_qc_runner

T0 = 1_795_000_000_000_000


def accepted(batch: wire.Batch) -> AcceptedBatch:
    body = wire.encode_batch(batch)
    return AcceptedBatch(wire.decode_batch_columns(body), f"obslink/v1/net/{batch.station}/data",
                         "kid", b"s" * 64, body, T0)


def stored(catalog: SQLiteCatalog, station: str) -> list[tuple]:
    names = catalog.qc_check_names()

    def named(bits: int) -> set[str]:
        return {name for bit, name in names.items() if bits >> bit & 1}

    rows = catalog.conn.execute(
        "SELECT observed_at, element, value, unit, source_field, source_flag, qc, period_s, "
        "qc_ran, qc_failed FROM observations WHERE station = ? ORDER BY rowid", (station,))
    return [(*row[:8], named(row[8]), named(row[9])) for row in rows]


def test_rows_hold_every_column_of_the_readings_with_masks_by_check_name(tmp_path):
    catalog = SQLiteCatalog(tmp_path / "catalog.db")
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


def test_readings_the_sender_could_not_check_are_checked_at_the_centre(tmp_path):
    catalog = SQLiteCatalog(tmp_path / "catalog.db")
    catalog.add_station(Station("S2", "net"), None, None)
    qc = centre_qc_runner()
    readings = [
        Reading(T0, "air_temperature", 20.0, "degC", "T", None, 0, None, 1, 0),
        Reading(T0, "air_temperature", 99.0, "degC", "T2", None, QC_NOT_CHECKED),  # too hot
        Reading(T0, "wind_speed", None, "m/s", "WS", "NAN", QC_NOT_CHECKED),  # stays so
    ]
    catalog.commit([accepted(wire.Batch("S2", "ep", 1, T0, readings, qc_checks=["range"]))],
                   qc)
    rows = stored(catalog, "S2")
    assert [row[6] for row in rows[:1]] == [0] and rows[0][8] == {"range"}
    assert rows[1][6] not in (0, QC_NOT_CHECKED) and "range" in rows[1][9]
    assert "range" in rows[1][8] <= set(qc.names)  # the centre's checks, by their names
    assert rows[2][6] == QC_NOT_CHECKED and rows[2][5] == "NAN"
    origin = catalog.conn.execute("SELECT qc_origin FROM batches").fetchone()[0]
    assert origin == "edge+centre"


def test_integers_beyond_sqlites_range_never_fail_a_commit(tmp_path):
    """Such a batch failed its whole group's commit at every redelivery: a free-form
    integer SQLite cannot hold is dropped, and such a period is malformed."""
    catalog = SQLiteCatalog(tmp_path / "catalog.db")
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
