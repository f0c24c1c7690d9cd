"""Alarm delivery (docs/monitoring.md): each raise and clear is queued in the catalog for
every channel — the retained MQTT alarm topic and each webhook — and each attempt is
recorded; a webhook is tried again with growing waits until it answers 2xx or the
attempts run out."""

from __future__ import annotations

import logging
import threading

from obslink import wire
from obslink.readings import format_utc, now_us

log = logging.getLogger(__name__)

MQTT_CHANNEL = "mqtt"
WEBHOOK_ATTEMPTS = 8
FIRST_RETRY_S = 5.0  # doubled at each attempt: 5 s … about 10 min for the 8th
WEBHOOK_TIMEOUT_S = 10.0


def alarm_json(alarm: dict) -> dict:
    """An alarm as the API and ``--json`` show it: its record, with its times also as
    RFC 3339 text."""
    show = lambda us: None if us is None else format_utc(us)  # noqa: E731
    return {**alarm, "raised_at": show(alarm["raised_us"]),
            "cleared_at": show(alarm["cleared_us"]),
            "acknowledged_at": show(alarm["acknowledged_us"])}


def alarm_message(alarm: dict, state: str) -> dict:
    """An alarm's JSON (MQTT payload and webhook body)."""
    found = alarm_json(alarm)
    return {"alarm": alarm["id"], "station": alarm["station"], "rule": alarm["rule"],
            "subject": alarm["subject"], "state": state, "raised_at": found["raised_at"],
            "cleared_at": found["cleared_at"], "acknowledged_at": found["acknowledged_at"],
            "acknowledged_by": alarm["acknowledged_by"], "detail": alarm["detail"],
            "value": alarm["value"]}


def alarm_topic_of(alarm: dict, network: str) -> str:
    return wire.alarm_topic(network, alarm["station"], alarm["rule"])


class WebhookSender:
    """A thread that posts due webhook deliveries, on a catalog connection of its own."""

    def __init__(self, open_reader, poll_s: float = 1.0) -> None:
        self._open_reader = open_reader  # () -> a catalog usable on this thread
        self.poll_s = poll_s
        self.wake = threading.Event()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="alarm-webhooks", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self.wake.set()
        self._thread.join(WEBHOOK_TIMEOUT_S + 5)

    def _run(self) -> None:
        import requests  # here, not at import: the collector starts faster without it

        catalog = self._open_reader()
        session = requests.Session()
        try:
            while not self._stop.is_set():
                try:
                    send_due(catalog, session)
                except Exception:  # the next round tries again; the queue is in the catalog
                    log.exception("alarm webhook delivery failed; trying again")
                self.wake.wait(self.poll_s)
                self.wake.clear()
        finally:
            session.close()
            catalog.close()


def send_due(catalog, session) -> int:
    """Post every due webhook delivery once (``session``: a requests.Session); returns how
    many were tried."""
    import requests

    due = catalog.due_deliveries(now_us(), "http")
    for delivery in due:
        alarm = catalog.alarm(delivery["alarm_id"])
        error = None
        try:
            answer = session.post(delivery["channel"], json=alarm_message(
                alarm, delivery["event"]), timeout=WEBHOOK_TIMEOUT_S)
            if not 200 <= answer.status_code < 300:
                error = f"HTTP {answer.status_code}: {answer.text[:200]}"
        except requests.RequestException as exc:
            error = f"{type(exc).__name__}: {exc}"
        attempt = delivery["attempts"] + 1
        if error is None:
            catalog.record_delivery(delivery["id"], "delivered", None)
        elif attempt >= WEBHOOK_ATTEMPTS:
            log.error("alarm %d: webhook %s failed %d times, giving up: %s",
                      alarm["id"], delivery["channel"], attempt, error)
            catalog.record_delivery(delivery["id"], "failed", error)
        else:
            wait = FIRST_RETRY_S * 2 ** (attempt - 1)
            log.warning("alarm %d: webhook %s failed (%s); trying again in %.0f s",
                        alarm["id"], delivery["channel"], error, wait)
            catalog.record_delivery(delivery["id"], "pending", error,
                                    now_us() + int(wait * 1e6))
    return len(due)
