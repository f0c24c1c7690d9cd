"""``obslink agent status``: what is waiting in the outbox, how fast it drains, what went
wrong."""

from __future__ import annotations

import json

from obslink.agent.config import AgentConfig
from obslink.agent.link_state import read_link_state
from obslink.agent.outbox import Outbox
from obslink.readings import format_utc, now_us


def collect_status(config: AgentConfig) -> dict:
    outbox = Outbox(config.outbox_path, config.station, create=False)
    try:
        stats = outbox.stats()
        now = now_us()
        lanes = outbox.lanes(now - int(config.realtime_window * 1_000_000),
                             now + config.qc.time.max_future_s * 1_000_000)
        rate = outbox.drain_rate()
        backlog = lanes["backlog"]["readings"]
        evictions = outbox.evictions()
        show = lambda us: None if us is None else format_utc(us)  # noqa: E731
        return {
            "station": config.station, "network": config.network,
            "outbox": str(config.outbox_path), "epoch": stats.epoch,
            "next_seq": stats.next_seq,
            "unacked_batches": stats.batches, "unacked_readings": stats.readings,
            "live": lanes["live"], "backlog": lanes["backlog"],
            "oldest_unacked_age_s": None if stats.oldest_created_at is None
            else round((now - stats.oldest_created_at) / 1e6, 1),
            "drain_rate_readings_per_s": round(rate, 1),
            "backlog_eta_s": round(backlog / rate) if rate and backlog else (
                0 if not backlog else None),
            "last_ack": show(stats.last_ack_at),
            # the data protocol in use: the collector's announcement, as far as the
            # agent's setting allows (docs/protocol.md, "Version 2")
            "protocol": min(config.protocol, int(outbox.meta("collector_protocol") or 1)),
            "evictions": dict(evictions, recent=[
                dict(gap, first_observed=show(gap["first_observed"]),
                     last_observed=show(gap["last_observed"]), at=show(gap["at"]),
                     reported_at=show(gap["reported_at"])) for gap in evictions["recent"]]),
            "link": read_link_state(outbox),
            "refused_batches": stats.refused, "refused": outbox.refused(),
            "quarantined_records": stats.quarantined,
            "recent_quarantine": [dict(q, at=format_utc(q["at"]))
                                  for q in outbox.recent_quarantine()],
            "products": product_status(config),
        }
    finally:
        outbox.close()


def product_status(config: AgentConfig) -> dict | None:
    """The product outbox's state, where the station has one (docs/products.md)."""
    if not (config.product_directory / "products.db").exists():
        return None
    from obslink.agent.product_outbox import ProductOutbox

    outbox = ProductOutbox(config.product_directory, config.station, None,
                           config.product_max_bytes, tidy=False)
    try:
        found = outbox.stats()
    finally:
        outbox.close()
    for item in found["recent_gaps"]:
        item["at"] = format_utc(item["at"])
        item["reported_at"] = None if item["reported_at"] is None else \
            format_utc(item["reported_at"])
    for item in found["recent_quarantine"]:
        item["at"] = format_utc(item["at"])
    return found


def print_status(config: AgentConfig, as_json: bool) -> int:
    status = collect_status(config)
    if as_json:
        print(json.dumps(status, indent=2))
        return 0
    age = status["oldest_unacked_age_s"]
    live, backlog = status["live"], status["backlog"]
    eta = status["backlog_eta_s"]
    print(f"station {status['station']} (network {status['network']}), outbox "
          f"{status['outbox']} (epoch {status['epoch']})")
    print(f"  waiting for ack: {status['unacked_batches']} batches, "
          f"{status['unacked_readings']} readings"
          + (f", oldest {age:.0f} s old" if age is not None else ""))
    print(f"    live lane: {live['batches']} batches, {live['readings']} readings; backlog: "
          f"{backlog['batches']} batches, {backlog['readings']} readings")
    link = status["link"]
    linked = link is None or link["state"] == "connected"
    if link is not None:
        print(f"  broker link: {link['state']} since {link['since']}"
              + (f": {link['detail']}" if link["detail"] else ""))
    revoked = any(item["reason"].startswith("revoked-key") for item in status["refused"])
    if revoked:
        print("  the collector refuses this station's key (revoked-key): its batches are "
              "parked, not sent again; enrol a new key: move the key file away and run "
              "`obslink agent enrol` with a new token from the operator")
    print(f"  draining at {status['drain_rate_readings_per_s']} readings/s (last 5 min)"
          + ("" if not backlog["readings"] else
             "; backlog done: not while the broker link is down" if not linked else
             f"; backlog done in {'?' if eta is None else f'about {eta} s'}"))
    print(f"  last ack: {status['last_ack'] or 'never'}; data protocol v{status['protocol']}"
          + (" (compact batches)" if status["protocol"] >= 2 else ""))
    evictions = status["evictions"]
    print(f"  evicted by the outbox caps: {evictions['readings']} readings in "
          f"{evictions['gaps']} gap{'s' * (evictions['gaps'] != 1)}, "
          f"{evictions['not_yet_reported']} not yet reported")
    for gap in evictions["recent"]:
        print(f"    {gap['first_observed']} .. {gap['last_observed']}: {gap['readings']} "
              f"readings ({gap['reason']}), reported {gap['reported_at'] or 'not yet'}")
    print(f"  refused by the collector (parked): {status['refused_batches']}")
    for item in status["refused"]:
        print(f"    batch {item['seq']} ({item['readings']} readings): {item['reason']}")
    print(f"  quarantined records: {status['quarantined_records']}")
    for item in status["recent_quarantine"]:
        print(f"    {item['at']} {item['source']}/{item['stream']}: {item['reason']}")
    products = status["products"]
    if products is not None:
        print(f"  products waiting: {products['products']} ({products['bytes']:,} bytes); "
              f"lost (refused or evicted, reported as gaps): {products['gaps']}")
        for item in products["waiting"]:
            print(f"    {item['name']}: {item['size']:,} bytes, chunks held by the collector "
                  f"{item['chunks_held_by_collector']}")
        for item in products["recent_gaps"]:
            print(f"    lost {item['name']} ({item['reason']}): {item['detail']}; reported "
                  f"{item['reported_at'] or 'not yet'}")
        for item in products["recent_quarantine"]:
            print(f"    {item['at']} {item['source']}/{item['name']}: {item['outcome']}")
    return 0
