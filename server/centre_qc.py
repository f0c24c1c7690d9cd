"""Centre QC, a step of the collector's pipeline: readings that arrive unchecked are checked
here, so coverage at the centre is complete whatever the sender ran (docs/qc.md).

The collector hands a ``CentreQC`` to the catalog's ``stage``, which calls it with the
batches a group adds, inside its transaction: only storage can tell a new batch from a
redelivered one, and a redelivery must not feed the checks' history twice. What it returns
(the columns to store, the history rows) is stored in that transaction; the collector then
tells it whether the transaction committed (``committed``/``rolled_back``).
"""

from __future__ import annotations

from obslink.plugins.qc_limits import default_settings
from obslink.plugins.qc_runner import QCRunner
from obslink.plugins.registry import load_registry
from obslink.readings import QC_NOT_CHECKED
from obslink.server.catalog.outcomes import AcceptedBatch, BatchQC, CentreChecked


def centre_qc_runner() -> QCRunner:
    """Every installed QC check with the documented default limits."""
    return QCRunner.from_registry(load_registry(), default_settings())


class CentreQC:
    def __init__(self, runner: QCRunner) -> None:
        self.runner = runner
        # the sender's check names -> (names of both, centre mask -> mask over them)
        self._joined: dict[tuple[str, ...], tuple[list[str], object]] = {}

    def __call__(self, new: list[AcceptedBatch]) -> CentreChecked:
        columns = [self.check(item) for item in new]
        return CentreChecked(columns, self.runner.pending_state())

    def committed(self) -> None:
        self.runner.commit_state()

    def rolled_back(self) -> None:
        self.runner.rollback_state()

    def check(self, item: AcceptedBatch) -> BatchQC:
        """The batch's columns with the readings its sender could not judge checked."""
        batch, names = item.batch, self.runner.names
        if not names:
            unchecked = []
        elif not batch.qc_checks:  # the sender ran no QC: all of it, missing values too
            unchecked = list(range(len(batch.times)))
        elif QC_NOT_CHECKED not in batch.qc:
            unchecked = []
        else:  # what the sender's checks could not judge, the centre's may
            unchecked = [i for i, (q, value) in enumerate(zip(batch.qc, batch.values))
                         if q == QC_NOT_CHECKED and value is not None]
        if not unchecked:
            return BatchQC.as_sent(batch)
        readings = batch.readings()
        source = batch.source.get("name")
        checked = self.runner.run([readings[i] for i in unchecked],
                                  f"{batch.station}/{source if isinstance(source, str) else ''}")
        checks, to_joined = self._join(batch.qc_checks)
        qcs, ran, failed = list(batch.qc), list(batch.qc_ran), list(batch.qc_failed)
        for i, q, r, f in zip(unchecked, checked.qc, checked.ran, checked.failed):
            qcs[i], ran[i], failed[i] = q, to_joined(r), to_joined(f)
        return BatchQC(qcs, ran, failed, checks,
                       "edge+centre" if batch.qc_checks else "centre")

    def _join(self, sender: list[str]):
        """The sender's check names followed by the centre's it lacks (a mask over the
        sender's names means the same over these), and a function that moves a mask over
        the centre's checks onto them."""
        key = tuple(sender)
        found = self._joined.get(key)
        if found is None:
            joined = list(sender) + [name for name in self.runner.names if name not in key]
            found = self._joined[key] = (joined, _remap([joined.index(name) for name in
                                                         self.runner.names]))
        return found


def _remap(positions: list[int]):
    """A function from a mask over the centre's checks to one over the joined names."""
    if positions == list(range(len(positions))):
        return lambda mask: mask
    return lambda mask: sum(1 << bit for j, bit in enumerate(positions) if mask >> j & 1)
