"""The collector's watch: every few seconds, alarms are raised and cleared by the rules
(server/monitoring/alarms.py), and each change is published on its retained MQTT topic
and handed to the webhook sender."""

from __future__ import annotations

import json
import logging
import time

from obslink.readings import now_us
from obslink.server.monitoring import alarms
from obslink.server.monitoring.delivery import (MQTT_CHANNEL, WebhookSender, alarm_message,
                                                alarm_topic_of)

log = logging.getLogger(__name__)

DEFAULT_WATCH_EVERY_S = 10.0


class Watch:
    def __init__(self, catalog, publish, every_s: float = DEFAULT_WATCH_EVERY_S) -> None:
        """``publish(topic, payload, retain)`` hands a message to the broker."""
        self.catalog = catalog
        self.publish = publish
        self.every_s = every_s
        self.next_run = time.monotonic() + min(every_s, 1.0)
        self.sender = WebhookSender(catalog.reader)
        self.evaluations = 0

    def start(self) -> None:
        self.sender.start()

    def stop(self) -> None:
        self.sender.stop()

    def due(self) -> bool:
        return time.monotonic() >= self.next_run

    def run_once(self) -> list[dict]:
        """Evaluate the rules now; returns the alarm events it made."""
        self.next_run = time.monotonic() + self.every_s
        now = now_us()
        raise_, clear = alarms.changes(self.catalog.open_alarms(),
                                       alarms.findings(self.catalog, now))
        events = []
        if raise_ or clear:
            channels = [MQTT_CHANNEL] + [hook["url"] for hook in self.catalog.webhooks()]
            events = self.catalog.change_alarms(raise_, clear, now, channels)
            for event in events:
                log.warning("alarm %s: %s at station %s: %s", event["event"], event["rule"],
                            event["station"], event["detail"])
            self.sender.wake.set()
        self._publish_due()
        self.evaluations += 1
        return events

    def _publish_due(self) -> None:
        due = self.catalog.due_deliveries(now_us(), MQTT_CHANNEL)
        if not due:
            return
        networks = {s["id"]: s["network"] for s in self.catalog.monitor_stations()}
        for delivery in due:
            alarm = self.catalog.alarm(delivery["alarm_id"])
            message = alarm_message(alarm, delivery["event"])
            try:
                self.publish(alarm_topic_of(alarm, networks.get(alarm["station"], "unknown")),
                             json.dumps(message).encode(), True)
            except OSError as exc:
                self.catalog.record_delivery(delivery["id"], "pending", str(exc),
                                             now_us() + int(self.every_s * 1e6))
            else:  # QoS 1 from here on: the MQTT process delivers it or dies trying
                self.catalog.record_delivery(delivery["id"], "delivered", None)
