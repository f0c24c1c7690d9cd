"""``obslink agent status``: what is waiting in the outbox and what went wrong."""

from __future__ import annotations

import json

from obslink.agent.config import AgentConfig
from obslink.agent.outbox import Outbox
from obslink.readings import format_utc, now_us


def collect_status(config: AgentConfig) -> dict:
    outbox = Outbox(config.outbox_path, config.station, create=False)
    try:
        stats = outbox.stats()
        now = now_us()
        return {
            "station": config.station, "network": config.network,
            "outbox": str(config.outbox_path), "epoch": stats.epoch,
            "next_seq": stats.next_seq,
            "unacked_batches": stats.batches, "unacked_readings": stats.readings,
            "oldest_unacked_age_s": None if stats.oldest_created_at is None
            else round((now - stats.oldest_created_at) / 1e6, 1),
            "last_ack": None if stats.last_ack_at is None else format_utc(stats.last_ack_at),
            "refused_batches": stats.refused, "refused": outbox.refused(),
            "quarantined_records": stats.quarantined,
            "recent_quarantine": [dict(q, at=format_utc(q["at"]))
                                  for q in outbox.recent_quarantine()],
        }
    finally:
        outbox.close()


def print_status(config: AgentConfig, as_json: bool) -> int:
    status = collect_status(config)
    if as_json:
        print(json.dumps(status, indent=2))
        return 0
    age = status["oldest_unacked_age_s"]
    print(f"station {status['station']} (network {status['network']}), outbox "
          f"{status['outbox']} (epoch {status['epoch']})")
    print(f"  waiting for ack: {status['unacked_batches']} batches, "
          f"{status['unacked_readings']} readings"
          + (f", oldest {age:.0f} s old" if age is not None else ""))
    print(f"  last ack: {status['last_ack'] or 'never'}")
    print(f"  refused by the collector (parked): {status['refused_batches']}")
    for item in status["refused"]:
        print(f"    batch {item['seq']} ({item['readings']} readings): {item['reason']}")
    print(f"  quarantined records: {status['quarantined_records']}")
    for item in status["recent_quarantine"]:
        print(f"    {item['at']} {item['source']}/{item['stream']}: {item['reason']}")
    return 0
