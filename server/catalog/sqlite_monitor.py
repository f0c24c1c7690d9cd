"""The SQLite catalog's monitoring records (docs/monitoring.md): schedules, the hourly
counts read back, alarms, their rules, webhooks and deliveries."""

from __future__ import annotations

import json
import sqlite3

from obslink.errors import ConfigError
from obslink.readings import (QC_ERRONEOUS, QC_GOOD, QC_NOT_CHECKED, QC_SUSPECT, format_utc,
                              now_us)
from obslink.sqlite_store import dicts, transaction
from obslink.server.catalog.errors import NoSuchRecordError, no_alarm
from obslink.server.catalog.monitor_counts import COUNT_COLUMNS

_SUMS = ", ".join(f"sum({column})" for column in COUNT_COLUMNS)
_ALARM_COLUMNS = ("id, station, rule, subject, raised_us, cleared_us, acknowledged_us, "
                  "acknowledged_by, detail, value")


class SQLiteMonitor:
    """Mixed into SQLiteCatalog, whose ``conn`` it reads and writes."""

    conn: sqlite3.Connection

    # -- schedules and counts ------------------------------------------------------------

    def schedules(self, station: str | None = None) -> dict[tuple[str, str], int]:
        where, params = ("WHERE station = ?", (station,)) if station else ("", ())
        return {(s, e): i for s, e, i in self.conn.execute(
            f"SELECT station, element, interval_s FROM schedules {where}", params)}

    def set_schedule(self, station: str, element: str, interval_s: int | None) -> None:
        self.get(station)  # NoSuchStationError names the station
        with transaction(self.conn):
            if interval_s is None:
                self.conn.execute("DELETE FROM schedules WHERE station = ? AND element = ?",
                                  (station, element))
            else:
                self.conn.execute(
                    "INSERT INTO schedules (station, element, interval_s) VALUES (?,?,?) "
                    "ON CONFLICT (station, element) DO UPDATE SET interval_s = "
                    "excluded.interval_s", (station, element, interval_s))

    def monitor_counts(self, start_us: int, end_us: int, station: str | None = None,
                       by_hour: bool = False) -> list[tuple]:
        """(station, [hour,] received, usable, erroneous, checked, latency_sum, *within)
        summed over the hours that start in [start_us, end_us)."""
        where, params = "", [start_us, end_us]
        if station is not None:
            where, params = " AND station = ?", params + [station]
        keys = "station" + (", hour" if by_hour else "")
        return self.conn.execute(
            f"SELECT {keys}, {_SUMS} FROM monitor_hours m WHERE hour >= ? AND hour < ?"
            f"{where} GROUP BY {keys}", params).fetchall()

    def element_counts(self, station: str, start_us: int, end_us: int) -> list[tuple]:
        """(element, period_s, received, usable, erroneous, checked) of a station's rows
        observed in [start_us, end_us), counted now (per element is asked for one station
        at a time)."""
        return self.conn.execute(
            f"SELECT s.element, s.period_s, count(*), count(CASE WHEN v.value IS NOT NULL "
            f"AND v.qc IN ({QC_GOOD}, {QC_SUSPECT}) THEN 1 END), count(CASE WHEN v.qc = "
            f"{QC_ERRONEOUS} THEN 1 END), count(CASE WHEN v.qc != {QC_NOT_CHECKED} THEN 1 "
            "END) FROM series s JOIN observation_values v ON "
            "v.series = s.id WHERE s.station = ? AND v.observed_us >= ? AND v.observed_us < ? "
            "GROUP BY s.element, s.period_s", (station, start_us, end_us)).fetchall()

    def monitor_streams(self, station: str | None = None) -> list[tuple]:
        """(station, element, period_s, first_us, last_us) per stream: each series' first
        and last observation is one seek in the (series, time) index."""
        where, params = ("WHERE s.station = ?", (station,)) if station else ("", ())
        streams: dict[tuple, list] = {}
        for sid, element, period, first, last in self.conn.execute(
                "SELECT s.station, s.element, s.period_s, (SELECT min(observed_us) FROM "
                "observation_values WHERE series = s.id), (SELECT max(observed_us) FROM "
                f"observation_values WHERE series = s.id) FROM series s {where}", params):
            if first is None:
                continue
            found = streams.setdefault((sid, element, period), [first, last])
            found[0], found[1] = min(found[0], first), max(found[1], last)
        return [(*key, first, last) for key, (first, last) in streams.items()]

    def monitor_stations(self) -> list[dict]:
        """Every station with what monitoring needs of it: schedule, creation and
        retirement, when it last committed, its newest batch's clock."""
        return dicts(self.conn.execute(
            "SELECT t.id, t.name, t.network, t.latitude, t.longitude, t.interval_seconds, "
            "t.created_at, t.retired_at, m.last_committed_us, m.clock_synced, "
            "m.clock_offset_ms FROM stations t LEFT JOIN monitor_stations m "
            "ON m.station = t.id ORDER BY t.id"))

    def refusal_counts(self, since_us: int) -> dict[str, int]:
        since = format_utc(since_us, fixed=True)
        return dict(self.conn.execute(
            "SELECT station, count(*) FROM refusals WHERE received_at >= ? AND station IS NOT "
            "NULL GROUP BY station", (since,)))

    def gap_counts(self, since_us: int) -> dict[str, tuple[int, int]]:
        """station -> (gap reports, readings evicted) received since ``since_us``; a
        product the station lost (docs/products.md) counts as a report of no readings."""
        since = format_utc(since_us, fixed=True)
        counts = {station: (reports, readings) for station, reports, readings in
                  self.conn.execute("SELECT station, count(*), sum(readings) FROM gaps WHERE "
                                    "received_at >= ? GROUP BY station", (since,))}
        for station, lost in self.conn.execute(
                "SELECT station, count(*) FROM product_gaps WHERE received_at >= ? "
                "GROUP BY station", (since,)):
            reports, readings = counts.get(station, (0, 0))
            counts[station] = (reports + lost, readings)
        return counts

    def newest_values(self, element: str) -> dict[str, tuple[int, float | None]]:
        """station -> (observed µs, value) of its newest reading of ``element``, one index
        seek per series of that element."""
        found: dict[str, tuple[int, float | None]] = {}
        for station, series in self.conn.execute(
                "SELECT station, id FROM series WHERE element = ?", (element,)).fetchall():
            row = self.conn.execute(
                "SELECT observed_us, value FROM observation_values WHERE series = ? "
                "ORDER BY observed_us DESC LIMIT 1", (series,)).fetchone()
            if row is not None and (station not in found or row[0] > found[station][0]):
                found[station] = (row[0], row[1])
        return found

    # -- alarms --------------------------------------------------------------------------

    def alarm_rules(self) -> dict[tuple[str, str], dict]:
        """(station or '' for the network's defaults, rule) -> the settings changed there."""
        return {(station, rule): json.loads(settings) for station, rule, settings in
                self.conn.execute("SELECT station, rule, settings FROM alarm_rules")}

    def set_alarm_rule(self, station: str, rule: str, settings: dict | None) -> None:
        """Store a rule's changed settings for a station ('' : every station); None
        removes them (back to the defaults)."""
        if station:
            self.get(station)
        with transaction(self.conn):
            if settings is None:
                self.conn.execute("DELETE FROM alarm_rules WHERE station = ? AND rule = ?",
                                  (station, rule))
            else:
                self.conn.execute(
                    "INSERT INTO alarm_rules (station, rule, settings) VALUES (?,?,?) ON "
                    "CONFLICT (station, rule) DO UPDATE SET settings = excluded.settings",
                    (station, rule, json.dumps(settings, sort_keys=True)))

    def open_alarms(self) -> list[dict]:
        return dicts(self.conn.execute(f"SELECT {_ALARM_COLUMNS} FROM alarms WHERE "
                                       "cleared_us IS NULL ORDER BY raised_us, id"))

    def alarms(self, station: str | None = None, open_only: bool = True,
               limit: int = 200) -> list[dict]:
        where, params = [], []
        if open_only:
            where.append("cleared_us IS NULL")
        if station:
            where.append("station = ?")
            params.append(station)
        clause = f"WHERE {' AND '.join(where)} " if where else ""
        return dicts(self.conn.execute(
            f"SELECT {_ALARM_COLUMNS} FROM alarms {clause}ORDER BY raised_us DESC, id DESC "
            "LIMIT ?", (*params, limit)))

    def alarm(self, alarm_id: int) -> dict:
        found = dicts(self.conn.execute(f"SELECT {_ALARM_COLUMNS} FROM alarms WHERE id = ?",
                                        (alarm_id,)))
        if not found:
            raise no_alarm(alarm_id)
        return found[0]

    def change_alarms(self, raised: list[tuple[str, str, str, str, float | None]],
                      cleared: list[int], at_us: int, channels: list[str]) -> list[dict]:
        """Raise alarms (station, rule, subject, detail, value) and clear open ones by id in
        one transaction, queueing a delivery of each event on every channel. An alarm
        already open (another worker raised it) is not raised twice. Returns the events:
        the alarms as stored, with ``event`` raised or cleared."""
        events = []
        with transaction(self.conn):
            for station, rule, subject, detail, value in raised:
                added = self.conn.execute(
                    "INSERT INTO alarms (station, rule, subject, raised_us, detail, value) "
                    "VALUES (?,?,?,?,?,?) ON CONFLICT (station, rule, subject) WHERE "
                    "cleared_us IS NULL DO NOTHING RETURNING id",
                    (station, rule, subject, at_us, detail, value)).fetchone()
                if added is not None:
                    events.append(("raised", added[0]))
            for alarm_id in cleared:
                cursor = self.conn.execute("UPDATE alarms SET cleared_us = ? WHERE id = ? AND "
                                           "cleared_us IS NULL", (at_us, alarm_id))
                if cursor.rowcount:
                    events.append(("cleared", alarm_id))
            self.conn.executemany(
                "INSERT INTO alarm_deliveries (alarm_id, event, channel, status, "
                "next_attempt_us) VALUES (?,?,?,'pending',?)",
                [(alarm_id, event, channel, at_us) for event, alarm_id in events
                 for channel in channels])
        return [{**self.alarm(alarm_id), "event": event} for event, alarm_id in events]

    def acknowledge_alarm(self, alarm_id: int, by: str) -> dict:
        found = self.alarm(alarm_id)
        if found["acknowledged_us"] is None:
            with transaction(self.conn):
                self.conn.execute("UPDATE alarms SET acknowledged_us = ?, acknowledged_by = ? "
                                  "WHERE id = ?", (now_us(), by, alarm_id))
        return self.alarm(alarm_id)

    # -- delivery ------------------------------------------------------------------------

    def webhooks(self) -> list[dict]:
        return dicts(self.conn.execute("SELECT id, url, created_at FROM webhooks ORDER BY id"))

    def add_webhook(self, url: str) -> dict:
        if not url.startswith(("http://", "https://")):
            raise ConfigError(f"webhook {url!r}: give an http:// or https:// URL")
        with transaction(self.conn):
            self.conn.execute("INSERT INTO webhooks (url, created_at) VALUES (?,?) ON "
                              "CONFLICT (url) DO NOTHING",
                              (url, format_utc(now_us(), fixed=True)))
        return next(hook for hook in self.webhooks() if hook["url"] == url)

    def remove_webhook(self, url: str) -> None:
        with transaction(self.conn):
            if not self.conn.execute("DELETE FROM webhooks WHERE url = ?", (url,)).rowcount:
                raise NoSuchRecordError(f"no webhook {url!r}; `obslink alarms webhooks "
                                        "list` lists them")

    def due_deliveries(self, now: int, channel_prefix: str = "http", limit: int = 50
                       ) -> list[dict]:
        return dicts(self.conn.execute(
            "SELECT d.id, d.alarm_id, d.event, d.channel, d.attempts FROM alarm_deliveries d "
            "WHERE d.status = 'pending' AND d.next_attempt_us <= ? AND d.channel LIKE ? "
            "ORDER BY d.next_attempt_us, d.id LIMIT ?", (now, f"{channel_prefix}%", limit)))

    def record_delivery(self, delivery_id: int, status: str, error: str | None,
                        next_attempt_us: int | None = None) -> None:
        """After an attempt: ``status`` delivered, pending (tried again at
        ``next_attempt_us``) or failed (no more attempts)."""
        with transaction(self.conn):
            self.conn.execute(
                "UPDATE alarm_deliveries SET status = ?, attempts = attempts + 1, "
                "last_attempt_us = ?, last_error = coalesce(?, last_error), "
                "next_attempt_us = coalesce(?, "
                "next_attempt_us) WHERE id = ?",
                (status, now_us(), error, next_attempt_us, delivery_id))

    def deliveries(self, alarm_id: int | None = None, limit: int = 200) -> list[dict]:
        where, params = ("WHERE alarm_id = ? ", (alarm_id,)) if alarm_id is not None else ("", ())
        return dicts(self.conn.execute(
            "SELECT id, alarm_id, event, channel, status, attempts, next_attempt_us, "
            f"last_attempt_us, last_error FROM alarm_deliveries {where}ORDER BY id DESC "
            "LIMIT ?", (*params, limit)))
