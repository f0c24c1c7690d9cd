"""HJ 212 (HJ/T 212-2005, HJ 212-2017, HJ 212-2025): packets from environmental data
acquisition units (air and water quality, pollution sources, VOCs, noise).

A packet is ``##`` + 4-digit data length + data segment + 4 hex digit CRC + CRLF. The data
segment is ``QN=…;ST=…;CN=…;PW=…;MN=…;Flag=…;CP=&&…&&``. Streams carry several packets per
read, packets split across reads, packets that lost their ``##``, NUL bytes and Modbus noise
between packets, and packets longer than the standard's 1024. Devices use the standard's
Annex A CRC, plain CRC-16/MODBUS or byte-swapped MODBUS: ``crc`` is a per-device option.
"""

from __future__ import annotations

import logging
import re
import sys
from datetime import date

from obslink.errors import ConfigError
from obslink.plugins.formats import Decoded, FormatAdapter, Option, quarantine_span
from obslink.plugins.hj212_codes import FACTORS, KINDS
from obslink.plugins.hj212_history import HistoryTracker, local_text
from obslink.plugins import hookimpl
from obslink.readings import QC_MISSING, QC_NOT_CHECKED, Reading, now_us

log = logging.getLogger(__name__)

# (CN, period in seconds or None): the uploads that carry observations
DATA_COMMANDS = {"2011": None, "2051": 60, "2061": 3600, "2031": 86_400, "2041": 86_400}
# replies and notices: understood, carry no observations
RESPONSE_COMMANDS = {"9011", "9012", "9013", "9014", "2081"}
PACKET_START = re.compile(rb"(?:##)?(\d{4})(?=(?:QN|ST)=)")
NOT_NOISE = re.compile(rb"[^\x00\s]")
LONGEST_START = len("##0000QN=")  # bytes before PACKET_START can match
MAX_NOISE = 65_536  # noise held back waiting for a packet, at most
CP_ITEM = re.compile(r"([^;,=]+)=([^;,]*)")  # key=value items of the CP section
CP_SPLIT = re.compile(r"[;,]")
CRC_DIGITS = re.compile(rb"[0-9A-Fa-f]{4}")
LINE_END = re.compile(rb"[\r\n]{0,4}")  # after the CRC: CRLF, or a log's CR CR LF
CP_VALID = re.compile(r"(?:[^;,=]+=[^;,=]*(?:[;,]+|$))*")  # every item is key=value
_EPOCH_ORDINAL = date(1970, 1, 1).toordinal()


def _crc_table() -> list[int]:
    table = []
    for value in range(256):
        for _ in range(8):
            value = (value >> 1) ^ 0xA001 if value & 1 else value >> 1
        table.append(value)
    return table


_TABLE = _crc_table()
_HIGH = bytes(value >> 8 for value in _TABLE)


def _pair_table() -> bytes:
    """Two steps of the high-byte loop at once, indexed by ``high ^ word`` where ``word``
    is two input bytes as ``memoryview.cast("H")`` reads them (native byte order)."""
    first, second = (lambda i: i & 0xFF, lambda i: i >> 8) if sys.byteorder == "little" \
        else (lambda i: i >> 8, lambda i: i & 0xFF)
    return bytes(_HIGH[_HIGH[first(i)] ^ second(i)] for i in range(65536))


_PAIRS = _pair_table()


def crc_hj212(data: bytes) -> int:
    """HJ 212 Annex A: crc = (crc >> 8) ^ byte, then 8 rounds of the 0xA001 polynomial.

    Each step keeps only the high byte of the previous CRC, so the loop runs on that byte
    alone, two bytes a step, and looks up the full 16 bits once, at the last byte.
    """
    if not data:
        return 0xFFFF
    body = data[:-1]
    high = 0xFF
    if len(body) % 2:
        high = _HIGH[high ^ body[0]]
        body = body[1:]
    pairs = _PAIRS
    for word in memoryview(body).cast("H"):
        high = pairs[high ^ word]
    return _TABLE[high ^ data[-1]]


def crc_modbus(data: bytes) -> int:
    """CRC-16/MODBUS, which some devices send instead of the Annex A CRC."""
    crc, table = 0xFFFF, _TABLE
    for byte in data:
        crc = (crc >> 8) ^ table[(crc ^ byte) & 0xFF]
    return crc


CRC_VARIANTS = {
    "hj212": crc_hj212,
    "modbus": crc_modbus,
    "modbus-swapped": lambda data: int.from_bytes(crc_modbus(data).to_bytes(2, "little"), "big"),
    "none": None,
}


def frame(segment: bytes, crc: str = "hj212") -> bytes:
    """Frame a data segment as a packet (used for replies, and by tests and simulators)."""
    check = CRC_VARIANTS[crc]
    digits = b"%04X" % check(segment) if check else b"0000"
    return b"##%04d" % len(segment) + segment + digits + b"\r\n"


def parse_segment(segment: str) -> tuple[dict[str, str], str]:
    """Split a data segment into its header fields and the CP text between the && marks."""
    head, marker, rest = segment.partition("CP=&&")
    if not marker:
        raise ValueError("no CP=&& … && part")
    end = rest.rfind("&&")
    if end < 0:
        raise ValueError("CP part is not closed with &&")
    fields = {}
    for item in head.split(";"):
        if item:
            key, eq, value = item.partition("=")
            if not eq:
                raise ValueError(f"header item {item!r} has no '='")
            fields[key] = value
    return fields, rest[:end]


class HJ212Adapter(FormatAdapter):
    name = "hj212"
    version = "1.0"
    summary = "HJ 212 packets (2005/2017/2025) from air, water and pollution-source units"
    options = {
        "crc": Option("hj212", "CRC variant the device uses: hj212 (Annex A), modbus, "
                      "modbus-swapped or none"),
        "reply_crc": Option("hj212", "CRC variant of the CN 9014 replies obslink sends"),
        "mn": Option("", "the MN (device id) of the station's data acquisition unit, or "
                     "several comma-separated; packets with another MN are quarantined. A "
                     "station config must set it; `obslink parse` accepts any when empty",
                     required=True),
        "minute_period": Option(60, "seconds covered by CN 2051 minute data", int),
        "max_packet": Option(9999, "largest data segment accepted, bytes", int),
        "history_requests": Option(False, "ask the unit for minute, hour and day periods "
                                   "never received (HJ 212-2017 history-data requests, "
                                   "BeginTime/EndTime), and store each period once", bool),
        "history_max_s": Option(7 * 86_400, "the longest hole asked for, seconds (the "
                                "newest part of a longer one)", int),
    }

    def __init__(self, context=None) -> None:
        super().__init__(context)
        if self.option_values["crc"] not in CRC_VARIANTS or \
                self.option_values["reply_crc"] not in CRC_VARIANTS:
            raise ConfigError(f"crc must be one of {', '.join(CRC_VARIANTS)}")
        self._check = CRC_VARIANTS[self.option_values["crc"]]
        self._devices = {mn.strip() for mn in self.option_values["mn"].split(",") if mn.strip()}
        self._periods = dict(DATA_COMMANDS, **{"2051": self.option_values["minute_period"]})
        self._day_cache: dict[str, int] = {}
        self._fields: dict[str, tuple[str, str, str] | bool] = {}
        self._history = HistoryTracker(
            self._periods, self.context.utc_offset_minutes,
            self.option_values["history_max_s"]) \
            if self.option_values["history_requests"] else None
        self._reopen = False  # a new connection: ask again for holes still open

    def get_state(self) -> dict:
        return {"history": self._history.get_state()} if self._history else {}

    def set_state(self, state) -> None:
        if self._history:
            self._history.set_state((state or {}).get("history"))

    def start_stream(self, name: str) -> None:
        self._reopen = self._history is not None

    @classmethod
    def sniff(cls, head: bytes) -> bool:
        return PACKET_START.search(head[:200].lstrip(b"\x00")) is not None and b"CN=" in head

    def decode(self, data: bytes, *, start: int, final: bool) -> Decoded:
        result = Decoded()
        offset = 0
        while True:
            match = PACKET_START.search(data, offset)
            if match is None:
                if final:
                    end = len(data)
                elif len(data) - offset > MAX_NOISE:
                    end = len(data) - LONGEST_START  # keep what may begin a packet
                else:
                    break  # wait: the next bytes may make this the start of a packet
                self._noise(data, offset, end, start, result)
                offset = end
                break
            self._noise(data, offset, match.start(), start, result)
            taken = self._take_packet(data, match, start, result, final)
            if taken is None:
                offset = match.start()  # incomplete: wait for more bytes
                break
            offset = taken
        result.consumed = offset
        return result

    def _noise(self, data, begin, end, start, result) -> None:
        found = NOT_NOISE.search(data, begin, end) if end > begin else None
        if found:  # from its first byte that is not a line end or NUL
            begin = found.start()
            quarantine_span(result, data, begin, end, start,
                            f"{end - begin} bytes that are not an HJ 212 packet skipped")

    def _take_packet(self, data, match, start, result, final) -> int | None:
        """Decode the packet at ``match``; return the offset after it, or None to wait."""
        length = int(match.group(1))
        body_start = match.end()
        if length > self.option_values["max_packet"]:
            return quarantine_span(result, data, match.start(), match.end(), start,
                                   f"declared data length {length} exceeds max_packet "
                                   f"{self.option_values['max_packet']}")
        crc_end = body_start + length + 4  # the standard then ends the packet with CRLF
        if crc_end >= len(data):
            if not final:
                return None  # the CRC, or the line end after it, is still to come
            if crc_end > len(data):
                return quarantine_span(result, data, match.start(), len(data), start,
                                       f"stream ends inside a packet ({len(data) - body_start}"
                                       f" of {length + 6} bytes)")
        segment = data[body_start:body_start + length]
        crc, follows = data[crc_end - 4:crc_end], data[crc_end:crc_end + 2]
        if not (CRC_DIGITS.fullmatch(crc) and self._vouches(segment, crc, follows)):
            return self._misframed(data, match, body_start, crc_end, start, final, result)
        # Declared length and CRC agree: a packet, whatever follows it (receive logs end
        # their lines with CR CR LF; the bytes up to the next packet are noise).
        end = LINE_END.match(data, crc_end).end()
        problem = self._take_segment(segment, result)
        if problem:
            return quarantine_span(result, data, match.start(), end, start, problem)
        return end

    def _vouches(self, segment: bytes, crc: bytes, follows: bytes) -> bool:
        """The CRC matches; with no CRC to check, a line end right after it must do."""
        if self._check is None:
            return follows[:1] in (b"\r", b"\n", b"")
        return self._check(segment) == int(crc, 16)

    def _misframed(self, data, match, body_start, crc_end, start, final,
                   result) -> int | None:
        """Quarantine a packet whose CRC or declared length is wrong; None to wait."""
        crc, follows = data[crc_end - 4:crc_end], data[crc_end:crc_end + 2]
        if CRC_DIGITS.fullmatch(crc) and follows == b"\r\n":  # framed right, CRC wrong
            return quarantine_span(
                result, data, match.start(), crc_end + 2, start,
                f"CRC {crc.decode()} does not match "
                f"{self._check(data[body_start:crc_end - 4]):04X} "
                f"({self.option_values['crc']} variant); check the device's CRC setting "
                "(option crc = hj212, modbus or modbus-swapped)")
        actual = data.find(b"\r\n", body_start)
        if actual < 0 and not final:
            return None
        detail = "" if actual < 0 else f" (the packet ends after {actual - body_start - 4})"
        return quarantine_span(result, data, match.start(),
                               len(data) if actual < 0 else actual + 2, start,
                               f"declared data length {crc_end - 4 - body_start} does not "
                               f"match the packet{detail}")

    def _take_segment(self, segment: bytes, result: Decoded) -> str | None:
        try:
            text = segment.decode("utf-8")
        except UnicodeDecodeError:
            text = segment.decode("gbk", "replace")
        try:
            header, cp = parse_segment(text)
        except ValueError as exc:
            return f"malformed data segment: {exc}"
        command = header.get("CN", "")
        if self._devices and header.get("MN") not in self._devices:
            return (f"MN {header.get('MN')!r} is not this station's device (option mn: "
                    f"{', '.join(sorted(self._devices))}); a second device of the station "
                    "goes into mn, a device of another station into that station's agent")
        if command in RESPONSE_COMMANDS:
            if command == "9012" and self._history:
                self._history.finished(header)
            result.skipped_text += 1
            return None
        if command not in self._periods:
            return (f"CN {command or '(none)'} is not a data upload (2011, 2051, 2061, 2031, "
                    "2041) or a reply obslink understands")
        if self._wants_reply(header):
            # The packet arrived intact and is now kept (as readings, or quarantined with
            # its reason): a device that never hears so would resend it forever.
            result.replies.append(self.reply(header))
        if self._reopen:
            self._reopen = False
            result.replies += [self._framed(request) for request in self._history.reopen()]
        return self._take_values(cp, command, result, header)

    def _framed(self, segment: str) -> bytes:
        log.info("hj212: asking the unit for periods never received: %s", segment)
        return frame(segment.encode(), self.option_values["reply_crc"])

    def _take_values(self, cp: str, command: str, result: Decoded,
                     header: dict[str, str]) -> str | None:
        if not CP_VALID.fullmatch(cp):
            bad = next((item for item in CP_SPLIT.split(cp) if item and "=" not in item), cp)
            return f"CP item {bad!r} has no '='"
        pairs = CP_ITEM.findall(cp)
        data_time = next((value for key, value in pairs if key == "DataTime"), None)
        if data_time is None:
            return "CP has no DataTime"
        try:
            observed_at = self._time_us(data_time)
        except ValueError:
            return f"DataTime {data_time!r} is not YYYYMMDDhhmmss"
        if self._history is not None:
            store, requests = self._history.take(header, observed_at, local_text(
                now_us(), self.context.utc_offset_minutes) + "000")
            result.replies += [self._framed(request) for request in requests]
            if not store:
                result.skipped_text += 1  # a period stored already
                return None
        period = self._periods[command]
        flags = {key[:-5]: value for key, value in pairs if key.endswith("-Flag")} \
            if "-Flag=" in cp else {}
        readings = result.readings
        fields = self._fields
        new = tuple.__new__  # a Reading without NamedTuple's Python-level __new__: hot loop
        for key, text in pairs:
            field = fields.get(key)
            if field is None:
                field = fields[key] = self._field(key)
            if field is False:
                continue  # DataTime, Flag, SampleTime, EFlag … describe values, are not one
            try:
                value = float(text)
            except ValueError:
                if text:
                    return f"value {key}={text!r} is not a number"
                value = None
            if value is not None and value - value == 0.0:  # finite: not NaN, not ±inf
                readings.append(new(Reading, (observed_at, field[0], value, field[1], key,
                                              flags.get(field[2]), QC_NOT_CHECKED, period,
                                              0, 0, None)))
            else:
                readings.append(new(Reading, (observed_at, field[0], None, field[1], key,
                                              flags.get(field[2]), QC_MISSING, period, 0,
                                              0, None)))
        return None

    def _field(self, key: str):
        """(element, unit, code) of a CP key such as ``a34004-Avg``; False for keys that
        are not values (DataTime, Flag, SampleTime …)."""
        code, dash, kind = key.rpartition("-")
        if not dash:
            return False
        if kind == "RT":  # 2041: running time of a piece of equipment, hours
            suffix, unit = "_runtime", "h"
        elif kind in KINDS:
            suffix, unit = KINDS[kind], FACTORS.get(code, (code, ""))[1]
        else:
            return False
        mapped = self.context.element_map.get(key) or self.context.element_map.get(code)
        element = (mapped[0] if mapped else FACTORS.get(code, (code, ""))[0]) + suffix
        if mapped and mapped[1]:
            unit = mapped[1]
        return element, unit, code

    def _time_us(self, text: str) -> int:
        if len(text) not in (14, 17) or not text.isdigit():
            raise ValueError(text)
        day_us = self._day_cache.get(text[:8])
        if day_us is None:
            day = date(int(text[:4]), int(text[4:6]), int(text[6:8]))
            day_us = (day.toordinal() - _EPOCH_ORDINAL) * 86_400_000_000
            self._day_cache[text[:8]] = day_us
        hours, minutes, seconds = int(text[8:10]), int(text[10:12]), int(text[12:14])
        if hours > 23 or minutes > 59 or seconds > 59:
            raise ValueError(text)
        millis = int(text[14:17]) if len(text) == 17 else 0
        local = day_us + ((hours * 60 + minutes) * 60 + seconds) * 1_000_000 + millis * 1000
        return local - self.context.utc_offset_minutes * 60_000_000

    @staticmethod
    def _wants_reply(header: dict[str, str]) -> bool:
        try:
            return int(header.get("Flag", "0")) & 1 == 1
        except ValueError:
            return False

    def reply(self, header: dict[str, str]) -> bytes:
        """The CN 9014 data response for a packet whose Flag asked for one."""
        version_bits = int(header.get("Flag", "0")) & ~0b11  # keep the version, no A/D bits
        segment = (f"QN={header.get('QN', '')};ST=91;CN=9014;PW={header.get('PW', '')};"
                   f"MN={header.get('MN', '')};Flag={version_bits};CP=&&&&").encode()
        return frame(segment, self.option_values["reply_crc"])


@hookimpl
def obslink_register_formats(registry):
    registry.add_format(HJ212Adapter)
