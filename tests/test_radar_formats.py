"""Radar product formats: our metadata agrees with the public readers (PyCINRAD for CINRAD
base data, Unidata's MetPy for NEXRAD Level II) on products we write, and bad or truncated
products are refused with a reason, never a crash."""

from __future__ import annotations

import bz2
import io
import json
import subprocess
import sys
from datetime import timezone
from pathlib import Path

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from obslink.demo.radar_products import (RadarScan, write_cinrad,
                                         write_nexrad_chunks, write_nexrad_volume)
from obslink.plugins.cinrad import CinradBaseData
from obslink.plugins.nexrad2 import Nexrad2
from obslink.plugins.products import ProductFormatError
from obslink.plugins.registry import load_registry

FUZZ = 10_000
SCAN = RadarScan(elevations=(0.5, 1.45, 2.4, 3.35, 6.0), radials=120, gates=400,
                 moments=("REF", "VEL", "SW", "ZDR"), seed=3)
TINY = RadarScan(elevations=(0.5, 2.4), radials=3, gates=8, moments=("REF", "VEL"))


def cinrad_metadata(path: Path):
    with open(path, "rb") as stream:
        return CinradBaseData().read_metadata(stream, path.name)


def nexrad_metadata(path: Path):
    with open(path, "rb") as stream:
        return Nexrad2().read_metadata(stream, path.name)


# --- against PyCINRAD ---------------------------------------------------------------------


@pytest.mark.parametrize("compress", [True, False])
def test_cinrad_volume_metadata_agrees_with_pycinrad(tmp_path, compress):
    import cinrad

    path = write_cinrad(tmp_path / "volume.bin", SCAN, compress=compress)
    ours = cinrad_metadata(path)
    theirs = cinrad.io.StandardData(str(path))
    assert ours.site == theirs.code == "Z9010"
    assert ours.site_name == theirs.name.strip("\0") == "Nanjing"
    assert ours.latitude == pytest.approx(float(theirs.stationlat), abs=1e-6)
    assert ours.longitude == pytest.approx(float(theirs.stationlon), abs=1e-6)
    assert ours.height_m == float(theirs.radarheight)
    assert ours.scan_strategy == theirs.task_name == "VCP21D"
    assert ours.start_us == int(theirs.scantime.replace(tzinfo=timezone.utc).timestamp()
                                * 1_000_000)
    assert ours.elevations == pytest.approx([float(e) for e in theirs.el], abs=1e-4)
    assert [list(sweep.moments) for sweep in ours.sweeps] == \
        [theirs.available_product(index) for index in range(len(theirs.el))]
    assert ours.kind == "volume" and ours.complete
    assert [sweep.radials for sweep in ours.sweeps] == [120] * 5


def test_cinrad_single_tilt_file_agrees_with_pycinrad(tmp_path):
    import cinrad

    path = write_cinrad(tmp_path / "tilt3.bin.bz2", SCAN, cut=3)
    ours = cinrad_metadata(path)
    theirs = cinrad.io.StandardData(str(path))
    assert ours.kind == "tilt"
    assert [sweep.number for sweep in ours.sweeps] == [3]
    # PyCINRAD keys its data by cut (0-based); the one cut present is ours
    assert list(theirs.data) == [2]
    assert ours.sweeps[0].elevation_deg == pytest.approx(float(theirs.el[2]), abs=1e-4)
    assert list(ours.sweeps[0].moments) == theirs.available_product(2)


# --- against MetPy ------------------------------------------------------------------------


def test_nexrad_volume_metadata_agrees_with_metpy(tmp_path):
    from metpy.io import Level2File

    path = write_nexrad_volume(tmp_path / "KOBL20261130_010000_V06", RadarScan(
        site="KOBL", elevations=SCAN.elevations, radials=120, gates=400,
        moments=("REF", "VEL", "SW", "ZDR", "PHI", "RHO"), vcp=35))
    ours = nexrad_metadata(path)
    theirs = Level2File(str(path))
    assert ours.site == theirs.stid.decode() == "KOBL"
    assert ours.start_us == int(theirs.dt.replace(tzinfo=timezone.utc).timestamp()
                                * 1_000_000)
    assert ours.scan_strategy == f"VCP {theirs.sweeps[0][0].vol_consts.vcp}" == "VCP 35"
    assert ours.latitude == pytest.approx(theirs.sweeps[0][0].vol_consts.lat, abs=1e-6)
    assert ours.longitude == pytest.approx(theirs.sweeps[0][0].vol_consts.lon, abs=1e-6)
    assert ours.height_m == theirs.sweeps[0][0].vol_consts.site_amsl
    assert ours.elevations == pytest.approx(
        [sweep[0].header.el_angle for sweep in theirs.sweeps], abs=1e-4)
    assert [sweep.radials for sweep in ours.sweeps] == [len(s) for s in theirs.sweeps]
    assert [list(sweep.moments) for sweep in ours.sweeps] == \
        [[name.decode() for name in sweep[0].moments] for sweep in theirs.sweeps]
    assert ours.kind == "volume" and ours.complete


def test_nexrad_chunk_feed_agrees_with_metpy(tmp_path):
    """Each chunk read alone; MetPy reads the chunks put together as one volume."""
    from metpy.io import Level2File

    scan = RadarScan(site="KOBL", elevations=(0.5, 0.9, 1.3), radials=90, gates=200)
    paths = write_nexrad_chunks(tmp_path, scan)
    chunks = [nexrad_metadata(path) for path in paths]
    assert [chunk.kind for chunk in chunks] == ["start", "intermediate", "intermediate",
                                                "end"]
    assert [chunk.extra["chunk_number"] for chunk in chunks] == [1, 2, 3, 4]
    assert all(chunk.site == "KOBL" and chunk.complete for chunk in chunks)
    whole = Level2File(io.BytesIO(b"".join(path.read_bytes() for path in paths)))
    assert [chunk.elevations[0] for chunk in chunks[1:]] == pytest.approx(
        [sweep[0].header.el_angle for sweep in whole.sweeps], abs=1e-4)
    assert chunks[0].start_us == int(whole.dt.replace(tzinfo=timezone.utc).timestamp()
                                     * 1_000_000)
    middle = Level2File(str(paths[2]), has_volume_header=False)
    assert [len(sweep) for sweep in middle.sweeps if sweep] == [chunks[2].sweeps[0].radials]


# --- bad products -------------------------------------------------------------------------


def write_cinrad_bytes(scan: RadarScan) -> bytes:
    import tempfile

    with tempfile.TemporaryDirectory() as directory:
        return write_cinrad(Path(directory) / "p", scan, compress=False).read_bytes()


def write_nexrad_bytes(scan: RadarScan) -> bytes:
    import tempfile

    with tempfile.TemporaryDirectory() as directory:
        return write_nexrad_volume(Path(directory) / "p", scan).read_bytes()


CINRAD_TINY = write_cinrad_bytes(TINY)
CINRAD_TINY_BZ2 = bz2.compress(CINRAD_TINY)
NEXRAD_TINY = write_nexrad_bytes(RadarScan(site="KOBL", elevations=(0.5, 2.4), radials=3,
                                           gates=8, moments=("REF", "VEL")))


def test_every_truncation_of_a_cinrad_volume_is_refused_or_a_tilt():
    """A prefix that stops right after tilt 1's last radial reads as that tilt's file (the
    two cannot be told apart); every other prefix is refused as truncated."""
    assert cinrad_metadata_of(CINRAD_TINY).kind == "volume"
    for end in range(len(CINRAD_TINY)):
        try:
            metadata = cinrad_metadata_of(CINRAD_TINY[:end])
        except ProductFormatError as error:
            assert "truncated" in error.reason
        else:
            assert metadata.kind == "tilt" and len(metadata.sweeps) == 1


def test_every_truncation_of_a_nexrad_volume_is_refused_or_a_start_chunk():
    """The prefix that stops right after the metadata record is a real-time feed's start
    chunk; every other prefix is refused."""
    assert nexrad_metadata_of(NEXRAD_TINY).kind == "volume"
    starts = 0
    for end in range(len(NEXRAD_TINY)):
        try:
            metadata = nexrad_metadata_of(NEXRAD_TINY[:end])
        except ProductFormatError:
            continue
        assert metadata.kind == "start" and not metadata.sweeps
        starts += 1
    assert starts == 1


def cinrad_metadata_of(data: bytes, name: str = ""):
    return CinradBaseData().read_metadata(io.BytesIO(data), name)


def nexrad_metadata_of(data: bytes, name: str = ""):
    return Nexrad2().read_metadata(io.BytesIO(data), name)


def damaged(product: bytes):
    """A product cut short, with bytes changed, inserted or removed, or all of these."""
    edit = st.tuples(st.integers(0, len(product)), st.binary(max_size=8),
                     st.integers(0, 8))
    return st.builds(_apply, st.just(product), st.lists(edit, max_size=4),
                     st.integers(0, len(product)))


def _apply(product: bytes, edits, end: int) -> bytes:
    data = bytearray(product)
    for at, new, removed in edits:
        data[at:at + removed] = new
    return bytes(data[:end])


@settings(max_examples=FUZZ, deadline=None)
@given(st.one_of(damaged(CINRAD_TINY), damaged(CINRAD_TINY_BZ2), st.binary(max_size=600)))
@example(CINRAD_TINY[:32])
@example(CINRAD_TINY_BZ2[:40])
def test_cinrad_damaged_products_are_refused_with_a_reason_never_a_crash(data):
    try:
        metadata = cinrad_metadata_of(data)
    except ProductFormatError as error:
        assert error.reason
    else:
        json.dumps(metadata.as_dict())


@settings(max_examples=FUZZ, deadline=None)
@given(st.one_of(damaged(NEXRAD_TINY), st.binary(max_size=600)))
@example(NEXRAD_TINY[:24])
@example(b"AR2V0006.001" + bytes(12) + b"\0\0\0\x05BZh91")
def test_nexrad_damaged_products_are_refused_with_a_reason_never_a_crash(data):
    for name in ("", "KOBL_20261130-010000-002-I"):
        try:
            metadata = nexrad_metadata_of(data, name)
        except ProductFormatError as error:
            assert error.reason
        else:
            json.dumps(metadata.as_dict())


def test_obslink_register_product_formats_builtin_and_third_party():
    from obslink.plugins.markers import hookimpl
    from obslink.plugins.products import ProductFormat
    from obslink.plugins.registry import make_plugin_manager

    class Fake(ProductFormat):
        name, version, summary = "fake", "1", "a test format"

    class Plugin:
        @staticmethod
        @hookimpl
        def obslink_register_product_formats(registry):
            registry.add_product_format(Fake)

    manager = make_plugin_manager(load_entry_points=False)
    manager.register(Plugin)
    registry = load_registry(manager)
    assert {"cinrad", "nexrad2", "fake"} <= set(registry.product_formats)


# --- obslink parse ------------------------------------------------------------------------


def obslink(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "obslink", *args], capture_output=True,
                          text=True, timeout=60)


def test_parse_prints_a_radar_products_metadata(tmp_path):
    path = write_cinrad(tmp_path / "volume.bin.bz2", SCAN)
    done = obslink("parse", str(path), "--format", "cinrad")
    assert done.returncode == 0, done.stderr
    assert "Z9010" in done.stdout and "VCP21D" in done.stdout and "2.4" in done.stdout
    done = obslink("parse", str(path), "--format", "auto", "--json")
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["site"] == "Z9010"
    volume = write_nexrad_volume(tmp_path / "KOBL.ar2v")
    done = obslink("parse", str(volume), "--format", "nexrad2", "--json")
    assert json.loads(done.stdout)["scan_strategy"] == "VCP 212"


def test_parse_names_what_is_wrong_with_a_truncated_product(tmp_path):
    path = tmp_path / "cut.bin"
    path.write_bytes(CINRAD_TINY[:-10])
    done = obslink("parse", str(path), "--format", "cinrad")
    assert done.returncode == 1
    assert "truncated" in done.stderr and str(path) in done.stderr
