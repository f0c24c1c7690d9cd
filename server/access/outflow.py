"""Outflow reports (docs/access.md, "Audit"): per account and dataset over a period, the
requests that released its data, the rows and the bytes. A request that read several
datasets shares its bytes among them by their rows (the audit row records the bytes of
the whole answer); requests refused or failed release nothing and are not counted."""

from __future__ import annotations

import json
from collections import defaultdict
from typing import Iterable


def outflow(rows: Iterable[dict]) -> list[dict]:
    """Audit rows (as the catalog returns them) -> one entry per (account, dataset), by
    bytes released, most first."""
    totals: dict = defaultdict(lambda: {"requests": 0, "rows": 0, "bytes": 0.0})
    for row in rows:
        if row["status"] is None or row["status"] >= 400:
            continue
        datasets = json.loads(row["datasets"])
        read = sum(datasets.values())
        for dataset, count in datasets.items():
            entry = totals[(row["account"], dataset)]
            entry["requests"] += 1
            entry["rows"] += count
            entry["bytes"] += row["bytes"] * count / read if read else 0
    report = [{"account": account, "dataset": dataset, "requests": entry["requests"],
               "rows": entry["rows"], "bytes": round(entry["bytes"])}
              for (account, dataset), entry in totals.items()]
    return sorted(report, key=lambda entry: (-entry["bytes"], entry["account"] or "",
                                             entry["dataset"]))
