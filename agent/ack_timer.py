"""How long the uplink waits for an ack before it publishes a batch again.

A fixed wait fails exactly when it matters: when a fleet drains a backlog, acks queue
behind other stations' batches at the broker and the collector, and a station that gives
up too early publishes copies the collector must decode and verify again. So the wait
follows the acks' round trip the way TCP's retransmission timer does (RFC 6298): a
smoothed round trip plus four times its variation, never below the configured
``ack_timeout`` nor above ``ack_timeout_max``. Only first publications are measured
(Karn's rule): an ack after a re-publication could answer either copy. The price, as in
TCP: after an ack delayed by an outage the wait stays longer for a while (about twenty
quick acks halve the excess), so a batch a crashed collector swallowed is published again
later than with a fixed wait, never later than ``ack_timeout_max``.
"""

from __future__ import annotations


class AckTimer:
    def __init__(self, minimum: float, maximum: float) -> None:
        self.minimum, self.maximum = minimum, maximum
        self.smoothed: float | None = None  # seconds
        self.variation = 0.0

    def sample(self, round_trip: float) -> None:
        round_trip = min(round_trip, self.maximum)  # an outage says nothing beyond that
        if self.smoothed is None:
            self.smoothed, self.variation = round_trip, round_trip / 2
            return
        self.variation = 0.75 * self.variation + 0.25 * abs(self.smoothed - round_trip)
        self.smoothed = 0.875 * self.smoothed + 0.125 * round_trip

    def timeout(self) -> float:
        """The wait before a first re-publication; later ones double it (up to maximum)."""
        if self.smoothed is None:
            return self.minimum
        return min(self.maximum, max(self.minimum, self.smoothed + 4 * self.variation))
