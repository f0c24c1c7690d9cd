"""Closing holes in HJ 212 data (docs/formats.md, "HJ 212 history requests").

When a data acquisition unit was unreachable, the periods it measured meanwhile never
reached the agent. With the hj212 option ``history_requests``, the agent notices a hole
when a minute, hour or day upload (CN 2051, 2061, 2031) arrives more than one period
after the last of its kind from that unit, and asks the unit for the missing periods with
the standard's history-data request (HJ 212-2017: the same CN from the upper computer,
``CP=&&BeginTime=…;EndTime=…&&``; the unit answers CN 9011, then the uploads, then CN 9012).

What is tracked lives in the adapter's state, committed with the readings: per unit and
command the last period received, and the holes still open, each narrowed as its answers
arrive. A hole still open when the connection comes back (the agent or the unit
restarted) is asked for again, from where its answers had got to; an upload of a period
already stored (not after the last one, not in an open hole) is not stored again.
"""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

HISTORY_COMMANDS = ("2051", "2061", "2031")  # minute, hour, day uploads


def local_text(utc_us: int, offset_minutes: int) -> str:
    """YYYYMMDDhhmmss in the unit's local time."""
    moment = datetime(1970, 1, 1, tzinfo=timezone.utc) + timedelta(
        microseconds=utc_us + offset_minutes * 60_000_000)
    return moment.strftime("%Y%m%d%H%M%S")


class HistoryTracker:
    """Per (MN, CN): the last period received and the open holes. ``state`` is the JSON
    form kept in the source position."""

    def __init__(self, periods: dict[str, int | None], offset_minutes: int,
                 max_hole_s: int) -> None:
        self.periods = periods
        self.offset_minutes = offset_minutes
        self.max_hole_us = max_hole_s * 1_000_000
        self.last: dict[str, int] = {}  # "MN|CN" -> observed time (UTC µs) of the newest
        # "MN|CN" -> [first missing, last missing, QN of the request, ST, PW, Flag, the
        # periods inside received out of order]
        self.holes: dict[str, list] = {}
        self.asked = 0  # requests made since the connection began

    def get_state(self) -> dict:
        return {"last": dict(self.last), "holes": {k: list(v) for k, v in self.holes.items()}}

    def set_state(self, state: dict | None) -> None:
        state = state or {}
        self.last = dict(state.get("last", {}))
        self.holes = {k: list(v) for k, v in state.get("holes", {}).items()}

    def take(self, header: dict[str, str], observed_us: int, now_text: str
             ) -> tuple[bool, list[str]]:
        """An upload of ``observed_us``: (whether to store it, request segments to send).
        Only minute, hour and day uploads are tracked; real-time data always stores."""
        command = header.get("CN", "")
        if command not in HISTORY_COMMANDS:
            return True, []
        key = f"{header.get('MN', '')}|{command}"
        period_us = self.periods[command] * 1_000_000
        last, hole = self.last.get(key), self.holes.get(key)
        if hole is not None and hole[0] <= observed_us <= hole[1]:
            if observed_us in hole[6]:
                return False, []  # an answer stored already (the request was repeated)
            if observed_us != hole[0]:  # out of order: remembered until the front passes
                hole[6].append(observed_us)
                return True, []
            hole[0] = observed_us + period_us  # answers in order narrow the hole
            while hole[0] in hole[6]:
                hole[6].remove(hole[0])
                hole[0] += period_us
            if hole[0] > hole[1]:
                del self.holes[key]
            return True, []
        if last is not None and observed_us <= last:
            return False, []  # stored already: a resend, or an answer we have
        requests = []
        if last is not None and observed_us - last > period_us and hole is None:
            first, final = last + period_us, observed_us - period_us
            first = max(first, final - self.max_hole_us)
            self.holes[key] = [first, final, now_text, header.get("ST", ""),
                               header.get("PW", ""), header.get("Flag", "0"), []]
            requests.append(self.request(key))
        self.last[key] = observed_us if last is None else max(last, observed_us)
        return True, requests

    def request(self, key: str) -> str:
        """The data segment asking the unit for the rest of hole ``key``."""
        mn, command = key.split("|")
        first, final, qn, st, pw, flag, _ = self.holes[key]
        try:  # the upload's version bits, and A: the unit answers 9011 and 9012
            flag_bits = (int(flag) & ~0b11) | 1
        except ValueError:
            flag_bits = 5
        self.asked += 1
        return (f"QN={qn};ST={st};CN={command};PW={pw};MN={mn};Flag={flag_bits};CP=&&"
                f"BeginTime={local_text(first, self.offset_minutes)};"
                f"EndTime={local_text(final, self.offset_minutes)}&&")

    def reopen(self) -> list[str]:
        """Requests for every hole still open (at the start of a connection)."""
        return [self.request(key) for key in sorted(self.holes)]

    def finished(self, header: dict[str, str]) -> None:
        """A CN 9012 result for one of our requests: the unit has sent all it has; what it
        did not send, it does not have."""
        for key, hole in list(self.holes.items()):
            if hole[2] == header.get("QN") and header.get("MN") == key.split("|")[0]:
                del self.holes[key]
