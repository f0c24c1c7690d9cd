"""The audit log's hash chain (docs/access.md, "Audit"): each row's hash covers its fields
and the hash of the row before it, so editing a row breaks its hash and deleting one breaks
the link of the next; ``seq`` numbers are consecutive, so a deleted row also leaves a gap.
What a chain cannot show by itself is rows cut from its end: ``obslink audit verify``
prints the head (seq and hash) for the auditor to keep elsewhere and check later with
``--expect SEQ:HASH``."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from typing import Iterable

from obslink.readings import format_utc

GENESIS = "0" * 64
# the fields the hash covers, in this order
FIELDS = ("seq", "at_us", "account", "address", "action", "target", "status", "datasets",
          "rows", "bytes", "detail")


def row_hash(previous: str, row: dict) -> str:
    """SHA-256 of the previous row's hash and this row's fields as canonical JSON."""
    text = json.dumps([row[name] for name in FIELDS], ensure_ascii=False,
                      separators=(",", ":"))
    return hashlib.sha256(previous.encode() + b"\n" + text.encode()).hexdigest()


@dataclass(frozen=True)
class ChainProblem:
    seq: int
    problem: str

    def __str__(self) -> str:
        return f"audit row {self.seq}: {self.problem}"


@dataclass(frozen=True)
class ChainCheck:
    problems: list[ChainProblem]  # in seq order
    rows: int  # how many were checked
    head: str  # the last row's hash (GENESIS for an empty log)


def check_chain(rows: Iterable[dict]) -> ChainCheck:
    """Every problem of the chain. ``rows`` come in seq order, each with its stored
    ``prev_hash`` and ``hash``."""
    problems, previous, expected_seq, count = [], GENESIS, 1, 0
    for row in rows:
        count += 1
        if row["seq"] != expected_seq:
            problems.append(ChainProblem(row["seq"], f"rows {expected_seq} to "
                                         f"{row['seq'] - 1} are missing (deleted)"))
        if row["prev_hash"] != previous:
            problems.append(ChainProblem(row["seq"], "does not follow the row before it (a "
                                         "row was deleted or replaced)"))
        if row_hash(row["prev_hash"], row) != row["hash"]:
            problems.append(ChainProblem(row["seq"], "its content does not match its hash "
                                         "(the row was edited)"))
        previous, expected_seq = row["hash"], row["seq"] + 1
    return ChainCheck(problems, count, previous)


def shown_row(row: dict) -> dict:
    """An audit row as people read it: its time in UTC, its JSON fields parsed."""
    return {**row, "at": format_utc(row["at_us"], fixed=True),
            "datasets": json.loads(row["datasets"]), "detail": json.loads(row["detail"])}
