"""Runs the QC checks over readings and folds their results into one flag per reading.

Used by the agent (every reading, before the outbox) and by the collector (readings that
arrive unchecked). Per reading it gives ``qc`` (the worst flag any check gave; missing values
are QC_MISSING; QC_NOT_CHECKED when no check applied), ``qc_ran`` and ``qc_failed``: bit
masks over :attr:`QCRunner.names`, the checks that applied and those that flagged.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Iterable, Sequence

from obslink.plugins.qc import QCCheck, QCSettings, ReadingBatch, SeriesState
from obslink.readings import QC_MISSING, QC_NOT_CHECKED, Reading

MAX_CHECKS = 32  # the masks travel as 32-bit integers


@dataclass(frozen=True)
class QCColumns:
    """QC results as columns aligned with the readings (what the outbox encodes)."""

    qc: list[int]
    ran: list[int]
    failed: list[int]


class _FoldTable(dict):
    """(value missing, result of check 0, result of check 1, …) -> (qc, ran, failed).

    Readings come in few distinct combinations: each is folded once, then looked up."""

    def __missing__(self, key: tuple) -> tuple[int, int, int]:
        missing, *flags = key
        ran = failed = 0
        worst = -1
        for bit, flag in enumerate(flags):
            if flag is not None:
                ran |= 1 << bit
                if flag:
                    failed |= 1 << bit
                worst = max(worst, flag)
        qc = QC_MISSING if missing else (QC_NOT_CHECKED if worst < 0 else worst)
        folded = self[key] = (qc, ran, failed)
        return folded


class QCRunner:
    def __init__(self, checks: Sequence[QCCheck]) -> None:
        if len(checks) > MAX_CHECKS:
            raise ValueError(f"at most {MAX_CHECKS} QC checks can run, not {len(checks)}")
        self.checks = list(checks)
        self.names = [check.name for check in self.checks]
        self.states = {check.name: SeriesState() for check in self.checks if check.stateful}
        self._fold = _FoldTable()

    @classmethod
    def from_registry(cls, registry, settings: QCSettings) -> "QCRunner":
        names = settings.checks if settings.checks is not None else sorted(registry.qc_checks)
        return cls([registry.qc_checks[name](settings) for name in names])

    def run(self, readings: Sequence[Reading], origin: str) -> QCColumns:
        """QC results for the readings, which are left as they are."""
        batch = ReadingBatch(readings)
        results = [check.run(batch, origin, self.states.get(check.name))
                   for check in self.checks]
        count = len(batch)
        qc, ran, failed = [QC_NOT_CHECKED] * count, [0] * count, [0] * count
        fold = self._fold
        for series in batch.series(origin):
            indices = series.indices
            if indices.__class__ is range:
                parts = [result[indices.start:indices.stop:indices.step] for result in results]
                if None not in series.values and all(
                        part.count(part[0]) == len(part) for part in parts):
                    # the whole series got one result from every check: fold it once
                    folded = fold[(False, *(part[0] for part in parts))]
                    where = slice(indices.start, indices.stop, indices.step)
                    size = len(parts[0]) if parts else len(indices)
                    qc[where], ran[where], failed[where] = (
                        [folded[0]] * size, [folded[1]] * size, [folded[2]] * size)
                    continue
            for i in indices:
                qc[i], ran[i], failed[i] = fold[
                    (batch[i][2] is None, *(result[i] for result in results))]
        return QCColumns(qc, ran, failed)

    def annotate(self, readings: Sequence[Reading], origin: str) -> list[Reading]:
        """The readings with their QC fields set; values, times and order are unchanged."""
        columns = self.run(readings, origin)
        return [Reading(r[0], r[1], r[2], r[3], r[4], r[5], qc, r[7], ran, failed, r[10])
                for r, qc, ran, failed in zip(readings, columns.qc, columns.ran,
                                              columns.failed)]

    # -- history of the stateful checks, made durable by the caller -------------------------

    def load_state(self, rows: Iterable[tuple[str, str, str]]) -> None:
        """(check, series key, JSON) rows as :meth:`pending_state` gave them."""
        for check, key, text in rows:
            if check in self.states:
                self.states[check].committed[key] = json.loads(text)

    def pending_state(self) -> list[tuple[str, str, str]]:
        return [(name, key, json.dumps(value)) for name, state in self.states.items()
                for key, value in state.pending.items()]

    def commit_state(self) -> None:
        for state in self.states.values():
            state.commit()

    def rollback_state(self) -> None:
        for state in self.states.values():
            state.rollback()
