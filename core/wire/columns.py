"""Protocol v2's column form of a bundle: the bodies of a v2 message turned on their side, so
that what changes little from one batch to the next (sequence numbers, times, each field's
value, byte offsets) travels as differences, which deflate then squeezes to a fraction
(docs/protocol.md, "Version 2").

It is only a way of carrying the bodies: the collector rebuilds every body's exact bytes
(msgpack packs each value one way only) and checks them against the signature. A sender
uses it only where rebuilding gives back its bodies byte for byte.

A column is ``[0, items]`` (as they are), ``[1, [first, difference, …]]`` (integers) or
``[2, [column, …]]`` (lists of one length, one column per position).
"""

from __future__ import annotations

from itertools import accumulate

import msgpack

from obslink.errors import WireError

AS_IS, DIFFERENCES, NESTED = 0, 1, 2


def column_of(items: list) -> list:
    if items and all(type(x) is int for x in items):
        return [DIFFERENCES, [items[0], *(b - a for a, b in zip(items, items[1:]))]]
    if items and all(type(x) is list for x in items) and len({len(x) for x in items}) == 1:
        return [NESTED, [column_of(list(position)) for position in zip(*items)]]
    return [AS_IS, items]


def items_of(column, count: int) -> list:
    """The ``count`` items a column stands for."""
    if type(column) is not list or len(column) != 2 or type(column[1]) is not list:
        raise WireError("a v2 column is not [kind, items]")
    kind, data = column
    if kind == DIFFERENCES:
        items = list(accumulate(data))
    elif kind == NESTED:
        if not data:
            return [[] for _ in range(count)]
        items = [list(row) for row in zip(*(items_of(part, count) for part in data))]
    elif kind == AS_IS:
        items = data
    else:
        raise WireError(f"a v2 column of unknown kind {kind!r}")
    if len(items) != count:
        raise WireError(f"a v2 column holds {len(items)} items for {count} bodies")
    return items


def to_columns(bodies: list[bytes]) -> list | None:
    """``[count, column]`` of the bodies, or None where rebuilding would not give them back
    byte for byte."""
    try:
        rows = [msgpack.unpackb(body, raw=False) for body in bodies]
        columns = [len(rows), column_of(rows)]
        msgpack.packb(columns)  # differences beyond 64 bits do not pack
        return columns if from_columns(columns) == bodies else None
    except (WireError, ValueError, TypeError, OverflowError):
        return None


def from_columns(columns) -> list[bytes]:
    """The bodies a column form stands for, each packed as msgpack packs it."""
    try:
        count, column = columns
        if type(count) is not int or count < 1:
            raise WireError("a v2 column form's count is not a positive integer")
        return [msgpack.packb(row, use_bin_type=True) for row in items_of(column, count)]
    except WireError:
        raise
    except Exception as exc:  # a wrong shape anywhere in the columns
        raise WireError(f"a v2 column form is malformed ({type(exc).__name__}: {exc})"
                        ) from None
