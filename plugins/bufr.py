"""WMO BUFR surface observations (e.g. sequences 307080/307096, WIGOS id 301150), decoded
with ecCodes.

Why ecCodes: it is the reference BUFR decoder of the WMO community, maintained by ECMWF
with WMO table updates several times a year, and its PyPI package now ships the C library
as a wheel (`eccodeslib`), so `pip install obslink[bufr]` needs no system package. A
hand-written decoder would have to track the WMO tables itself; pybufrkit, the pure-Python
alternative, is updated far less often. ecCodes is large (about 50 MB), so it is an extra:
gateways that never see BUFR do not carry it.

Messages are framed here (``BUFR`` … length … ``7777``) and their section lengths checked,
so an invalid message in a multi-message file is quarantined with its reason and the others
are read. ecCodes runs in a worker process (obslink.plugins.bufr_worker): a damaged message
that crashes it is quarantined, never the agent. BUFR times are UTC; the configured UTC
offset does not apply.
"""

from __future__ import annotations

import importlib.util
import logging
from datetime import datetime, timezone

from obslink.errors import ConfigError
from obslink.plugins.bufr_worker import shared_worker
from obslink.plugins.formats import Decoded, FormatAdapter, Option, quarantine_span
from obslink.plugins import hookimpl
from obslink.readings import QC_NOT_CHECKED, Reading, utc_us_from_datetime

log = logging.getLogger(__name__)

# ecCodes key -> element of the vocabulary
ELEMENTS = {
    "airTemperature": "air_temperature",
    "dewpointTemperature": "dew_point_temperature",
    "relativeHumidity": "relative_humidity",
    "nonCoordinatePressure": "air_pressure",
    "pressureReducedToMeanSeaLevel": "sea_level_pressure",
    "windSpeed": "wind_speed",
    "windDirection": "wind_direction",
    "maximumWindGustSpeed": "wind_speed_max",
    "horizontalVisibility": "visibility",
    "totalSnowDepth": "snow_depth",
    "totalPrecipitationPast24Hours": "precipitation_amount",
    "totalPrecipitationOrTotalWaterEquivalent": "precipitation_amount",
    "maximumTemperatureAtHeightAndOverPeriodSpecified": "air_temperature_max",
    "minimumTemperatureAtHeightAndOverPeriodSpecified": "air_temperature_min",
    "totalSunshine": "sunshine_duration",
    "globalSolarRadiationIntegratedOverPeriodSpecified": "solar_radiation_total",
}
FIXED_PERIODS = {"totalPrecipitationPast24Hours": 86_400}
PERIOD_KEYS = {"totalPrecipitationOrTotalWaterEquivalent", "totalSunshine",
               "maximumTemperatureAtHeightAndOverPeriodSpecified",
               "minimumTemperatureAtHeightAndOverPeriodSpecified",
               "globalSolarRadiationIntegratedOverPeriodSpecified"}
MISSING = -1e100  # CODES_MISSING_DOUBLE
MISSING_LONG = 2147483647  # CODES_MISSING_LONG, for integer keys
UNIT_SECONDS = {"h": 3600, "min": 60, "s": 1, "d": 86_400}
MAX_PERIOD_SECONDS = 31 * 86_400
HEADER = 8  # "BUFR", 3-byte length, edition
MAX_NOISE = 65_536  # bytes held back waiting for the start of a message, at most


def _eccodes():
    try:
        import eccodes
    except ImportError:
        raise ConfigError("the bufr format needs ecCodes: pip install 'obslink[bufr]'") \
            from None
    return eccodes


class BUFRAdapter(FormatAdapter):
    name = "bufr"
    version = "1.0"
    summary = "WMO BUFR surface observations (307080, 307096 …), decoded with ecCodes"
    options = {
        "wigos_id": Option("", "read only subsets of this station (WIGOS id, or the "
                           "0-20000-0-IIiii form of a WMO block and station number); empty: all"),
        "max_message": Option(16 * 1024 * 1024, "largest message accepted, bytes", int),
    }

    def __init__(self, context=None, in_process: bool = False) -> None:
        super().__init__(context)
        # The agent's adapter frames messages and hands them to a worker process (see
        # obslink.plugins.bufr_worker); only that worker runs ecCodes, in process.
        if in_process:
            self.codes = _eccodes()
        else:
            if importlib.util.find_spec("eccodes") is None:
                _eccodes()  # raises the error that says how to install it
            self.worker = shared_worker()
            self.worker_context = {
                "station": self.context.station, "options": dict(self.option_values),
                "element_map": {k: list(v) for k, v in self.context.element_map.items()}}

    @classmethod
    def sniff(cls, head: bytes) -> bool:
        at = head.find(b"BUFR")
        return 0 <= at < 256 and len(head) > at + 7 and head[at + 7] in (3, 4)

    def decode(self, data: bytes, *, start: int, final: bool) -> Decoded:
        result = Decoded()
        offset = 0
        while True:
            at = data.find(b"BUFR", offset)
            if at < 0:
                if final:
                    end = len(data)
                elif len(data) - offset > MAX_NOISE:
                    end = len(data) - 3  # "BUF" may continue in the next read
                else:
                    break  # wait: bytes before a message are reported once, whole
                self._skip(data, offset, end, start, result)
                offset = end
                break
            self._skip(data, offset, at, start, result)
            if len(data) - at < HEADER:
                if not final:
                    offset = at
                    break
                offset = quarantine_span(result, data, at, len(data), start,
                                         "file ends inside a BUFR message header")
                break
            length = int.from_bytes(data[at + 4:at + 7], "big")
            if length < HEADER + 4 or length > self.option_values["max_message"]:
                offset = quarantine_span(result, data, at, at + 4, start,
                                         f"BUFR message length {length} is impossible")
                continue
            end = at + length
            if end > len(data):
                if not final:
                    offset = at
                    break
                offset = quarantine_span(result, data, at, len(data), start,
                                         f"file ends inside a BUFR message "
                                         f"({len(data) - at} of {length} bytes)")
                break
            if data[end - 4:end] != b"7777":
                offset = quarantine_span(result, data, at, at + 4, start,
                                         "BUFR message does not end with 7777 where its "
                                         "length says; looking for the next message")
                continue
            problem = section_problem(data[at:end]) or self._take_isolated(data[at:end],
                                                                           result)
            if problem:
                quarantine_span(result, data, at, end, start, problem)
            offset = end
        result.consumed = offset
        return result

    def _skip(self, data, begin, end, start, result) -> None:
        if end > begin and data[begin:end].strip(b"\x00\r\n "):
            quarantine_span(result, data, begin, end, start,
                            f"{end - begin} bytes outside BUFR messages skipped")


    def _take_isolated(self, message: bytes, result: Decoded) -> str | None:
        readings, skipped, problem = self.worker.decode(message, self.worker_context)
        result.readings += readings
        result.skipped_text += skipped
        return problem

    def take_message(self, message: bytes, result: Decoded) -> str | None:
        """Decode one framed message with ecCodes, in this process (the worker's side)."""
        codes = self.codes
        try:
            handle = codes.codes_new_from_message(message)
        except Exception as exc:  # ecCodes raises its own error classes for bad input
            return f"ecCodes cannot read the message: {exc}"
        try:
            codes.codes_set(handle, "unpack", 1)
            subsets = codes.codes_get(handle, "numberOfSubsets")
            if subsets > 1 and not codes.codes_get(handle, "compressedData"):
                for number in range(1, subsets + 1):
                    codes.codes_set(handle, "extractSubset", number)
                    codes.codes_set(handle, "doExtractSubsets", 1)
                    single = codes.codes_clone(handle)
                    try:
                        codes.codes_set(single, "unpack", 1)
                        self._take_subsets(single, 1, result)
                    finally:
                        codes.codes_release(single)
            else:
                self._take_subsets(handle, subsets, result)
        except ValueError as exc:  # raised by this adapter: the message decodes but is unusable
            return str(exc)
        except Exception as exc:
            return f"ecCodes cannot decode the message: {exc}"
        finally:
            codes.codes_release(handle)
        return None

    def _take_subsets(self, handle, subsets: int, result: Decoded) -> None:
        """Readings of every subset of a handle whose keys hold one value per subset."""
        codes = self.codes
        keys = []
        iterator = codes.codes_bufr_keys_iterator_new(handle)
        try:
            while codes.codes_bufr_keys_iterator_next(iterator):
                keys.append(codes.codes_bufr_keys_iterator_get_name(iterator))
        finally:
            codes.codes_bufr_keys_iterator_delete(iterator)

        def values(key):
            found = codes.codes_get_array(handle, key)
            return list(found) * subsets if len(found) == 1 else list(found)

        def first(name, default=None):
            key = f"#1#{name}"
            return values(key) if key in keys else [default] * subsets

        stations = self._station_ids(first, subsets)
        times = [first(part) for part in ("year", "month", "day", "hour", "minute")]
        seconds = first("second", 0)
        wanted = self.option_values["wigos_id"]
        columns, units = {}, {}
        for key in keys:
            name = key.split("#")[-1]
            if name in ELEMENTS or name == "timePeriod":
                columns[key] = values(key)
                units[key] = codes.codes_get(handle, f"{key}->units")
        for index in range(subsets):
            if wanted and stations[index] != wanted:
                result.skipped_text += 1
                continue
            try:
                moment = datetime(*(int(part[index]) for part in times),
                                  int(seconds[index] if seconds[index] not in (None, MISSING)
                                      else 0), tzinfo=timezone.utc)
            except (TypeError, ValueError, OverflowError):
                raise ValueError(f"subset {index + 1} has no valid observation time") \
                    from None
            observed_at = utc_us_from_datetime(moment)
            period_seconds = None
            for key, column in columns.items():
                name = key.split("#")[-1]
                value = column[index]
                if name == "timePeriod":
                    period_seconds = self._period_seconds(units[key], value)
                    continue
                period = FIXED_PERIODS.get(name)
                if period is None and name in PERIOD_KEYS:
                    period = period_seconds
                missing = value is None or value in (MISSING, MISSING_LONG)
                unit = units[key]
                start = observed_at - period * 1_000_000 if period else observed_at
                mapped = self.context.element_map.get(name)
                element = mapped[0] if mapped else ELEMENTS[name]
                result.readings.append(Reading(
                    start, element, None if missing else float(value),
                    (mapped[1] if mapped and mapped[1] else unit),
                    f"{stations[index]}:{key}", "missing" if missing else None,
                    8 if missing else QC_NOT_CHECKED, period))

    @staticmethod
    def _period_seconds(unit: str, value) -> int | None:
        """A BUFR time period (negative: the period ends at the observation time)."""
        if value in (None, MISSING, MISSING_LONG) or value == 0:
            return None
        seconds = abs(value) * UNIT_SECONDS.get(unit, 0)
        return int(seconds) if 0 < seconds <= MAX_PERIOD_SECONDS else None

    @staticmethod
    def _station_ids(first, subsets: int) -> list[str]:
        series, issuer = first("wigosIdentifierSeries"), first("wigosIssuerOfIdentifier")
        number, local = first("wigosIssueNumber"), first("wigosLocalIdentifierCharacter")
        block, station = first("blockNumber"), first("stationNumber")
        ids = []
        for i in range(subsets):
            if local[i] not in (None, "", MISSING) and series[i] not in (None, MISSING):
                ids.append(f"{int(series[i])}-{int(issuer[i])}-{int(number[i])}-"
                           f"{str(local[i]).strip()}")
            elif block[i] not in (None, MISSING) and station[i] not in (None, MISSING):
                ids.append(f"0-20000-0-{int(block[i]):02d}{int(station[i]):03d}")
            else:
                ids.append("unknown")
        return ids


@hookimpl
def obslink_register_formats(registry):
    registry.add_format(BUFRAdapter)


def section_problem(message: bytes) -> str | None:
    """Why the sections of a BUFR message do not add up to its length, or None.

    ecCodes trusts these lengths: a damaged one can make it read past the message and crash
    the process, so the structure is checked here first (WMO-No. 306, FM 94 BUFR)."""
    edition = message[7]
    if edition not in (2, 3, 4):
        return f"BUFR edition {edition} is not one this adapter reads (2, 3 or 4)"
    end = len(message) - 4  # where section 5 (7777) starts
    # octet of section 1 whose first bit says an optional section 2 follows
    flag_octet = 10 if edition == 4 else 8
    at = 8  # section 0 is 8 octets
    for number in (1, 2, 3, 4):
        if number == 2 and not message[8 + flag_octet - 1] & 0x80:
            continue
        if at + 3 > end:
            return f"BUFR section {number} starts past the end of the message"
        length = int.from_bytes(message[at:at + 3], "big")
        if length < (flag_octet if number == 1 else 4) or at + length > end:
            return (f"BUFR section {number} length {length} does not fit the message "
                    f"({len(message)} bytes)")
        at += length
    if at != end:
        return (f"BUFR sections end at byte {at}, not at the 7777 at byte {end}: a section "
                "length is damaged")
    return None
