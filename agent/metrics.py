"""The agent's Prometheus metrics, served at ``metrics_listen`` when it is set
(docs/monitoring.md): read from the outbox at each scrape, as ``obslink agent status``
reads it, so they cost nothing between scrapes."""

from __future__ import annotations

import logging

from obslink.agent.config import AgentConfig
from obslink.errors import ConfigError

log = logging.getLogger(__name__)


def serve_metrics(config: AgentConfig):
    """Start the metrics endpoint; returns its server (``shutdown()`` stops it)."""
    try:
        from prometheus_client import CollectorRegistry, start_http_server
        from prometheus_client.core import GaugeMetricFamily
    except ImportError:
        raise ConfigError("station.metrics_listen needs prometheus-client: pip install "
                          "'obslink[metrics]', or remove the setting", str(config.path)) \
            from None
    from obslink.agent.status import collect_status

    station = config.station

    class OutboxMetrics:
        def collect(self):
            status = collect_status(config)

            def gauge(name: str, text: str, value, labels: dict | None = None):
                found = GaugeMetricFamily(f"obslink_agent_{name}", text,
                                          labels=["station", *(labels or {})])
                found.add_metric([station, *(labels or {}).values()],
                                 float("nan") if value is None else value)
                return found
            for lane in ("live", "backlog"):
                yield gauge(f"{lane}_readings", f"readings waiting in the {lane} lane",
                            status[lane]["readings"])
                yield gauge(f"{lane}_batches", f"batches waiting in the {lane} lane",
                            status[lane]["batches"])
            yield gauge("oldest_unacknowledged_age_seconds", "age of the oldest batch not "
                        "acknowledged by the collector (NaN: none)",
                        status["oldest_unacked_age_s"])
            yield gauge("quarantined_records", "records the adapters could not read, kept "
                        "with their reason", status["quarantined_records"])
            yield gauge("evicted_readings", "readings the outbox evicted (reported to the "
                        "centre as gaps)", status["evictions"]["readings"])
            yield gauge("evictions", "eviction events (gaps)", status["evictions"]["gaps"])
            link = (status["link"] or {}).get("state")
            yield gauge("broker_connected", "1 while the agent is connected to the broker",
                        1 if link == "connected" else 0)
            yield gauge("refused_batches", "batches the collector refused (parked)",
                        status["refused_batches"])

    registry = CollectorRegistry()
    registry.register(OutboxMetrics())
    host, _, port = config.metrics_listen.rpartition(":")
    server, _thread = start_http_server(int(port), host.strip("[]"), registry)
    log.info("agent metrics at http://%s/metrics", config.metrics_listen)
    return server
