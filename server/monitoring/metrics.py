"""The collector's Prometheus metrics (docs/monitoring.md, "Metrics").

Ingest counters live in ``obslink collector serve`` (its ``--metrics-listen``); the
network's state — per station received, expected, completeness and last-seen age, open
alarms — is read from the catalog at each scrape, by that endpoint and by the HTTP API's
``/metrics`` alike. Names follow WIS2's metric hierarchy where it fits (…_received,
…_expected, …_percentage by station); per-station series are capped at ``max_stations``
(the first by id; ``obslink_station_metrics_truncated`` says when the cap cut some)."""

from __future__ import annotations

import time

from prometheus_client import CollectorRegistry, Counter, Histogram
from prometheus_client.core import GaugeMetricFamily

from obslink.readings import now_us
from obslink.server.catalog.monitor_counts import HOUR_US, LATENCY_BOUNDS_S

DEFAULT_MAX_STATIONS = 10_000


class IngestMetrics:
    """Counters the collector updates as groups commit."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.batches = Counter("obslink_batches_committed", "batches committed",
                               registry=registry)
        self.readings = Counter("obslink_readings_committed", "readings committed",
                                registry=registry)
        self.duplicates = Counter("obslink_batches_duplicate", "batches received again "
                                  "after they were committed (acknowledged again)",
                                  registry=registry)
        self.refusals = Counter("obslink_messages_refused", "messages refused, by reason "
                                "(a fixed set: docs/protocol.md)", ["reason"],
                                registry=registry)
        self.latency = Histogram("obslink_batch_latency_seconds", "a batch's newest reading, "
                                 "observed → committed", buckets=LATENCY_BOUNDS_S,
                                 registry=registry)
        self.commit = Histogram("obslink_commit_duration_seconds", "one group's commit "
                                "(write and fsync)", registry=registry)

    def committed(self, accepted, new_flags: list[bool], duration_s: float) -> None:
        now = now_us()
        self.commit.observe(duration_s)
        for item, new in zip(accepted, new_flags):
            if not new:
                self.duplicates.inc()
                continue
            self.batches.inc()
            times = item.batch.times
            self.readings.inc(len(times))
            if times:
                self.latency.observe(max(0.0, (now - max(times)) / 1e6))

    def refused(self, refusals) -> None:
        for refusal in refusals:
            self.refusals.labels(refusal.reason).inc()


class NetworkMetrics:
    """Gauges read from the catalog at each scrape, over the last hour (from the start of
    the hour it began in)."""

    def __init__(self, open_catalog, max_stations: int = DEFAULT_MAX_STATIONS) -> None:
        self.open_catalog = open_catalog  # () -> a catalog for this (the scrape's) thread
        self.max_stations = max_stations

    def collect(self):
        from obslink.server.monitoring.report import period_report

        started = time.perf_counter()
        catalog = self.open_catalog()
        try:
            now = now_us()
            report = period_report(catalog, now - HOUR_US, now, now)
            alarms = catalog.open_alarms()
        finally:
            catalog.close()
        station_gauges = {
            "received": ("obslink_station_readings_received", "readings received over the "
                         "last hour"),
            "expected": ("obslink_station_readings_expected", "readings expected over the "
                         "last hour"),
            "completeness": ("obslink_station_completeness_percentage", "received / "
                             "expected over the last hour, %"),
            "availability": ("obslink_station_availability_percentage", "usable (QC good "
                             "or suspect) / expected over the last hour, %"),
            "age": ("obslink_station_last_seen_age_seconds", "seconds since the station's "
                    "last batch was committed (NaN: never)"),
        }
        families = {key: GaugeMetricFamily(name, text, labels=["station"])
                    for key, (name, text) in station_gauges.items()}
        stations = [s for s in report["stations"] if not s["retired"]]
        for found in stations[:self.max_stations]:
            label = [found["station"]]
            families["received"].add_metric(label, found["received"])
            families["expected"].add_metric(label, found["expected"])
            families["completeness"].add_metric(label, _percent(found["completeness"]))
            families["availability"].add_metric(label, _percent(found["availability"]))
            families["age"].add_metric(label, _age(found["last_committed_at"], now))
        yield from families.values()
        truncated = GaugeMetricFamily("obslink_station_metrics_truncated", "1 when there are "
                                      "more stations than the per-station series cap")
        truncated.add_metric([], 1 if len(stations) > self.max_stations else 0)
        yield truncated
        network = report["network"]
        for key, name in (("received", "received"), ("expected", "expected")):
            family = GaugeMetricFamily(f"obslink_network_readings_{name}", f"readings {name} "
                                       "by the whole network over the last hour")
            family.add_metric([], network[key])
            yield family
        family = GaugeMetricFamily("obslink_network_completeness_percentage", "received / "
                                   "expected by the whole network over the last hour, %")
        family.add_metric([], _percent(network["completeness"]))
        yield family
        by_status = GaugeMetricFamily("obslink_network_stations", "stations by status over "
                                      "the last hour", labels=["status"])
        for status, count in network["by_status"].items():
            by_status.add_metric([status], count)
        yield by_status
        open_alarms = GaugeMetricFamily("obslink_alarms_open", "open alarms by rule",
                                        labels=["rule"])
        rules = [alarm["rule"] for alarm in alarms]
        for rule in sorted(set(rules)):
            open_alarms.add_metric([rule], rules.count(rule))
        yield open_alarms
        took = GaugeMetricFamily("obslink_metrics_scrape_seconds", "time to read these "
                                 "gauges from the catalog")
        took.add_metric([], time.perf_counter() - started)
        yield took


def _percent(share: float | None) -> float:
    return float("nan") if share is None else share * 100


def _age(text: str | None, now: int) -> float:
    if text is None:
        return float("nan")
    from datetime import datetime

    from obslink.readings import utc_us_from_datetime

    return (now - utc_us_from_datetime(datetime.fromisoformat(text.replace("Z", "+00:00")))
            ) / 1e6


def collector_registry(open_catalog, max_stations: int = DEFAULT_MAX_STATIONS
                       ) -> tuple[CollectorRegistry, IngestMetrics]:
    registry = CollectorRegistry()
    registry.register(NetworkMetrics(open_catalog, max_stations))
    return registry, IngestMetrics(registry)
