"""The SQLite catalog's reports: counts, QC flags and checks per station, gaps and
refusals."""

from __future__ import annotations

import sqlite3

from obslink.readings import format_utc
from obslink.sqlite_store import dicts
from obslink.server.catalog.outcomes import QCCounts


class SQLiteReports:
    """Mixed into SQLiteCatalog, whose ``conn`` it reads through."""

    conn: sqlite3.Connection

    def qc_check_names(self) -> dict[int, str]:
        return dict(self.conn.execute("SELECT bit, name FROM qc_checks ORDER BY bit"))

    def qc_counts(self, station: str, since: int | None = None) -> QCCounts:
        where, params = "series IN (SELECT id FROM series WHERE station = ?)", [station]
        if since is not None:
            where += " AND observed_us >= ?"
            params.append(since)
        flags = dict(self.conn.execute(
            f"SELECT qc, count(*) FROM observation_values WHERE {where} GROUP BY qc", params))
        names = self.qc_check_names()
        per_check: dict[str, tuple[int, int]] = {}
        if names:
            columns = ", ".join(f"sum(qc_ran >> {bit} & 1), sum(qc_failed >> {bit} & 1)"
                                for bit in names)
            row = self.conn.execute(f"SELECT {columns} FROM observation_values WHERE {where}",
                                    params).fetchone()
            for index, name in enumerate(names.values()):
                ran, failed = row[2 * index] or 0, row[2 * index + 1] or 0
                if ran:
                    per_check[name] = (ran, failed)
        origins = dict(self.conn.execute(
            "SELECT coalesce(qc_origin, 'none'), count(*) FROM batches WHERE station = ? "
            "GROUP BY 1", (station,)))
        return QCCounts(flags, per_check, origins)

    def gaps(self, station: str | None = None) -> list[dict]:
        where, params = ("WHERE station = ?", (station,)) if station else ("", ())
        cursor = self.conn.execute(
            f"SELECT station, first_observed, last_observed, readings, batches, reason, "
            f"evicted_at FROM gaps {where} ORDER BY station, first_observed", params)
        return dicts(cursor)

    def refusals(self, station: str | None = None, since: int | None = None,
                 limit: int = 50) -> tuple[dict[str, int], list[dict]]:
        """Refused messages: counts per reason, and the newest ``limit`` of them."""
        where, params = ["TRUE"], []
        if station:
            where.append("station = ?")
            params.append(station)
        if since is not None:
            where.append("received_at >= ?")
            params.append(format_utc(since, fixed=True))
        condition = " AND ".join(where)
        counts = dict(self.conn.execute(
            f"SELECT reason, count(*) FROM refusals WHERE {condition} GROUP BY reason "
            f"ORDER BY count(*) DESC, reason", params))
        cursor = self.conn.execute(
            f"SELECT received_at, station, key_id, epoch, seq, reason, detail, topic, "
            f"payload_sha256 FROM refusals WHERE {condition} ORDER BY id DESC LIMIT ?",
            (*params, limit))
        return counts, dicts(cursor)

    def stats(self) -> dict[str, int]:
        count = lambda table: self.conn.execute(f"SELECT count(*) FROM {table}").fetchone()[0]
        return {"stations": count("stations"), "batches": count("batches"),
                "observations": count("observation_values"), "refused": count("refusals"),
                "gaps": count("gaps"),
                "readings_lost_in_gaps": self.conn.execute(
                    "SELECT coalesce(sum(readings), 0) FROM gaps").fetchone()[0]}

