"""The PostgreSQL catalog's observation partitions: a month of observation time each
(``observation_values_y2026m12``), made ahead (this month and the next ``AHEAD``) when a
catalog is opened, and in the commit's transaction for any other month a group's
observations fall in (a backlog, a station whose clock is wrong), so an insert never
finds no partition. Old months can be detached, compressed or dropped one at a time
(docs/scaling.md, "Retention")."""

from __future__ import annotations

from datetime import datetime, timezone

from obslink.readings import MAX_TIME_US

AHEAD = 2  # months made ahead of the current one


def month_of(us: int) -> tuple[int, int]:
    try:
        moment = datetime.fromtimestamp(us // 1_000_000, timezone.utc)
    except (OverflowError, OSError, ValueError):
        raise ValueError(f"observation time {us} µs is outside what the catalog stores "
                         "(years 1-9999)") from None
    return moment.year, moment.month


def month_bounds(year: int, month: int) -> tuple[int, int]:
    """[first µs, first µs of the next month) of a month (December 9999 ends where the
    catalog's times do: year 10000 has no datetime)."""
    start = datetime(year, month, 1, tzinfo=timezone.utc)
    if (year, month) == (9999, 12):
        return int(start.timestamp()) * 1_000_000, MAX_TIME_US + 1
    end = datetime(year + month // 12, month % 12 + 1, 1, tzinfo=timezone.utc)
    return int(start.timestamp()) * 1_000_000, int(end.timestamp()) * 1_000_000


def partition_name(year: int, month: int) -> str:
    return f"observation_values_y{year:04d}m{month:02d}"


def months_ahead(us: int, ahead: int = AHEAD) -> list[tuple[int, int]]:
    year, month = month_of(us)
    months = []
    for step in range(ahead + 1):
        index = year * 12 + month - 1 + step
        months.append((index // 12, index % 12 + 1))
    return months


class Partitions:
    """The months that have a partition, as this connection knows them."""

    def __init__(self, conn) -> None:
        self.conn = conn
        self.known: set[tuple[int, int]] = set()

    def load(self) -> None:
        self.known = {
            (int(name[-7:-3]), int(name[-2:])) for (name,) in self.conn.execute(
                "SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid "
                "JOIN pg_class p ON p.oid = i.inhparent WHERE p.relname = "
                "'observation_values' AND p.relnamespace = c.relnamespace "
                "AND pg_table_is_visible(p.oid)")}

    def cover_times(self, times) -> None:
        """Partitions for every month of ``times`` (µs), inside the caller's transaction."""
        self.cover({month_of(us) for us in times})

    def cover(self, months) -> None:
        for year, month in sorted(set(months) - self.known):
            start, end = month_bounds(year, month)
            # IF NOT EXISTS: another worker may have made it since this one looked
            self.conn.execute(f"CREATE TABLE IF NOT EXISTS {partition_name(year, month)} "
                              f"PARTITION OF observation_values FOR VALUES FROM ({start}) "
                              f"TO ({end})")
            self.known.add((year, month))
