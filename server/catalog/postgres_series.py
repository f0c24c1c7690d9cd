"""Observations from several series in one statement, on PostgreSQL (docs/scaling.md).

On SQLite a statement a series costs microseconds; on a database server it costs a round
trip, so "one element, all stations, one hour" would ask as many statements as there are
stations. Here the next series to answer are read together: one statement takes each
series' next rows (a LATERAL index scan a series, the chunk shared out among them), in the
answer's order (series, then time and row). A series whose share was not enough goes on
from its last row; the rows read of the series after it wait (at most a chunk) until their
turn, so no row is read twice. How many series a statement asks for follows how long
they turn out to be: one at first, then as many as half a chunk of series of the length
the last ones had, one again once a share fills (a day or a month of a series is read as
on SQLite, a chunk a statement; one element of all stations over an hour in a few
statements).
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass
from itertools import islice
from typing import Iterator

from obslink.readings import MAX_TIME_US
from obslink.server.catalog.queries import Cursor, ObservationQuery
from obslink.server.catalog.sqlite_queries import CHUNK

FIRST_GROUP = 1  # series the first statement asks for (a page may end inside the first)
MOST_SERIES = 256  # series one statement asks for at most
LEAST_SHARE = 64  # rows a series gets of a statement at least (a page's last rows: fewer series)

# each series of the group after its position (arrays: series, observed_us, row id), at
# most :size rows of each, in order
_GROUP_ROWS = (
    "SELECT q.n, x.* FROM unnest(CAST(:group_series AS bigint[]), "
    "CAST(:group_after_us AS bigint[]), CAST(:group_after_row AS bigint[])) WITH ORDINALITY "
    "AS q(series, after_us, after_row, n) CROSS JOIN LATERAL (SELECT {columns}, "
    "v.observed_us AS at_us, v.id AS row_id FROM observation_values v JOIN batches b ON "
    "b.id = v.batch_id WHERE v.series = q.series AND (v.observed_us, v.id) > (q.after_us, "
    "q.after_row) AND v.observed_us <= :bound{filters} ORDER BY v.observed_us, v.id "
    "LIMIT :size) x ORDER BY q.n, x.at_us, x.row_id")


@dataclass
class _Series:
    row: tuple  # the series as _series_for gives it
    position: tuple[int, int]  # (observed_us, row id) its answer goes on after
    read: list | None = None  # rows read ahead, not yet answered
    ended: bool = False  # nothing after what was read

    def take(self, rows: list, share: int) -> None:
        self.read = (self.read or []) + rows
        self.ended = len(rows) < share
        if rows:
            self.position = tuple(rows[-1][-2:])


def _next_size(group: list[_Series]) -> int:
    """How many series the next statement asks for: as many as would fill half a chunk at
    the length this group's series had, when all of them ended in it; else one (a long
    series: grouping it with the next costs a sort and saves a round trip in thousands of
    rows)."""
    if not all(series.ended for series in group):
        return 1
    average = sum(len(series.read) for series in group) / len(group)
    return max(1, min(MOST_SERIES, int(CHUNK / 2 / max(average, 1.0))))


class PostgresSeries:
    """Mixed into PostgresCatalog before SQLiteQueries: the chunks that observations() and
    observation_text() turn into rows and text."""

    def _chunks(self, query: ObservationQuery, after: Cursor | None, columns: str
                ) -> Iterator[tuple[tuple, list]]:
        return self._grouped_chunks(query, after, columns, None)

    def _grouped_chunks(self, query: ObservationQuery, after: Cursor | None, columns: str,
                        limit: int | None) -> Iterator[tuple[tuple, list]]:
        """(series row, rows) in the answer's order, at most ``limit`` rows in all:
        ``columns`` over the rows ``v`` and their batches ``b``, then each row's
        observed_us and id."""
        end = MAX_TIME_US if query.end_us is None else query.end_us
        filters, params = self._filters(query)
        positions = self._positions(query, after)
        waiting: deque[_Series] = deque()
        size, left = FIRST_GROUP, limit
        while left is None or left > 0:
            while len(waiting) < size and (following := next(positions, None)):
                waiting.append(_Series(*following))
            if not waiting:
                return
            head = waiting[0]
            if head.read is None:  # the head and the series after it not read yet
                budget = CHUNK if left is None else min(CHUNK, left)
                group = [head]
                for series in islice(waiting, 1, min(size, max(1, budget // LEAST_SHARE))):
                    if series.read is not None:
                        break
                    group.append(series)
                share = budget // len(group)
                for series, rows in zip(group, self._group_rows(
                        group, end, columns, filters, params, share)):
                    series.take(rows, share)
                size = _next_size(group)
            rows, head.read = head.read, None
            if rows:
                if left is not None:
                    rows = rows[:left]
                    left -= len(rows)
                yield head.row, rows
            if head.ended:
                waiting.popleft()

    def _group_rows(self, group: list[_Series], end: int, columns: str, filters: str,
                    params: dict, share: int) -> list[list]:
        """Each series' rows after its position (as SQLiteQueries._rows gives them), at
        most ``share`` of each, in the order of ``group``."""
        if len(group) == 1:  # the plain statement: no sort of what the index gives in order
            return [self._rows(columns, filters, {
                **params, "series": group[0].row[0], "after_us": group[0].position[0],
                "after_row": group[0].position[1], "bound": end, "size": share})]
        rows = self.conn.execute(_GROUP_ROWS.format(columns=columns, filters=filters), {
            **params, "group_series": [series.row[0] for series in group],
            "group_after_us": [series.position[0] for series in group],
            "group_after_row": [series.position[1] for series in group],
            "bound": end, "size": share}).fetchall()
        found: list[list] = [[] for _ in group]
        for number, *row in rows:
            found[number - 1].append(tuple(row))
        return found
