"""Writes the input.bufr of each BUFR golden case with ecCodes. Run it only to change a case
on purpose: `.venv/bin/python -m tests.golden.bufr.make_inputs`, then regenerate and review."""

from pathlib import Path

HERE = Path(__file__).parent
# WIGOS id, WMO block/station, date, time, position, then surface elements (no delayed
# replication, so every subset has the same keys)
DESCRIPTORS = [301150, 301001, 301011, 301012, 301021, 12101, 12103, 10004, 11001, 11002,
               4024, 13011]
STATIONS = [  # (issuer, local id, block, station, values)
    (20000, "54511", 54, 511, [293.15, 285.65, 100230.0, 270, 3.5, -1, 0.4]),
    (20000, "54527", 54, 527, [291.05, None, 100190.0, 250, 2.0, -6, 12.5]),
    (376, "608", None, None, [282.95, 280.15, 101590.0, None, 0.0, -1, 0.0]),
]


def encode(stations, compressed: bool, minute: int = 0) -> bytes:
    import eccodes

    handle = eccodes.codes_bufr_new_from_samples("BUFR4")
    try:
        eccodes.codes_set(handle, "masterTablesVersionNumber", 35)
        eccodes.codes_set(handle, "dataCategory", 0)
        eccodes.codes_set(handle, "numberOfSubsets", len(stations))
        eccodes.codes_set(handle, "observedData", 1)
        eccodes.codes_set(handle, "compressedData", 1 if compressed else 0)
        eccodes.codes_set_array(handle, "unexpandedDescriptors", DESCRIPTORS)

        def put(name, values):
            if all(v is None for v in values):
                return
            if isinstance(values[0], str):
                eccodes.codes_set_string_array(handle, name, values)
            elif any(isinstance(v, float) for v in values):
                eccodes.codes_set_double_array(handle, name, [
                    eccodes.CODES_MISSING_DOUBLE if v is None else float(v) for v in values])
            else:
                eccodes.codes_set_long_array(handle, name, [
                    eccodes.CODES_MISSING_LONG if v is None else int(v) for v in values])

        put("wigosIdentifierSeries", [0] * len(stations))
        put("wigosIssuerOfIdentifier", [s[0] for s in stations])
        put("wigosIssueNumber", [0] * len(stations))
        put("wigosLocalIdentifierCharacter", [s[1] for s in stations])
        put("blockNumber", [s[2] for s in stations])
        put("stationNumber", [s[3] for s in stations])
        for name, value in (("year", 2025), ("month", 11), ("day", 3), ("hour", 6),
                            ("minute", minute)):
            put(name, [value] * len(stations))
        put("latitude", [39.8, 40.1, 32.0][:len(stations)])
        put("longitude", [116.47, 116.2, 34.8][:len(stations)])
        for index, name in enumerate(["airTemperature", "dewpointTemperature",
                                      "nonCoordinatePressure", "windDirection", "windSpeed",
                                      "timePeriod", "totalPrecipitationOrTotalWaterEquivalent"]):
            put(name, [s[4][index] for s in stations])
        eccodes.codes_set(handle, "pack", 1)
        return eccodes.codes_get_message(handle)
    finally:
        eccodes.codes_release(handle)


if __name__ == "__main__":
    one = encode(STATIONS[:1], compressed=False)
    cases = {
        "single_station": one,
        "compressed_three_stations": encode(STATIONS, compressed=True),
        "uncompressed_three_stations": encode(STATIONS, compressed=False, minute=30),
        # a bulletin heading before, a corrupted message between two good ones
        "invalid_message_between_good_ones": b"ISMD01 BABJ 030600\r\r\n" + one
        + one[:40] + b"\xff" * 20 + one[60:] + encode(STATIONS[1:2], compressed=False),
        "truncated_file": one + one[:50],
    }
    for name, data in cases.items():
        (HERE / name).mkdir(exist_ok=True)
        (HERE / name / "input.bufr").write_bytes(data)
        options = '[options]\nwigos_id = "0-20000-0-54527"\n' \
            if name == "uncompressed_three_stations" else ""
        (HERE / name / "case.toml").write_text('tz = "+08:00"\n' + options)
