"""What the agent knows of its link to the broker, for its log and for ``agent status``.

The uplink reports every connection event here. A change of state is logged once, with
what to do, and kept in the outbox, where ``agent status`` (another process) reads it; the
same state again at the next retry is not logged again (a station refused for a day would
fill its log). Whatever the state, the sources go on and the outbox keeps every reading.
"""

from __future__ import annotations

import json
import logging

from obslink.readings import format_utc, now_us

log = logging.getLogger(__name__)

META_KEY = "link"  # the outbox's meta row holding the state
AUTH_REFUSALS = {"Not authorized", "Bad user name or password"}


class LinkState:
    def __init__(self, outbox, broker: str, username: str | None) -> None:
        self.outbox = outbox
        self.broker = broker
        self.username = username
        self.state: tuple[str, str] | None = None  # (state, detail) last reported

    def connected(self) -> None:
        self._report("connected", "", logging.INFO)

    def disconnected(self, reason: str) -> None:
        self._report("disconnected", f"the broker connection dropped ({reason}); "
                     "reconnecting, readings wait in the outbox", logging.WARNING)

    def unreachable(self, explanation: str) -> None:
        self._report("unreachable", f"cannot connect to the broker at {self.broker}: "
                     f"{explanation}; readings wait in the outbox, retrying", logging.WARNING)

    def refused(self, reason: str) -> None:
        """The broker answered CONNECT with a refusal (CONNACK reason)."""
        if reason in AUTH_REFUSALS and self.username is None:
            advice = ("it wants an account: set [uplink] username and password_file (`obslink "
                      "agent enrol` writes them)")
        elif reason in AUTH_REFUSALS:
            advice = (f"it does not accept the station's account {self.username}: the "
                      "operator runs `obslink collector broker-config` and reloads the broker "
                      "(a station enrolled, or its password changed, since it was last "
                      "written), or [uplink] username and password_file are wrong")
        elif reason == "Client identifier not valid":
            advice = "it does not accept [uplink] client_id"
        else:
            advice = "see the broker's log"
        self._report("refused", f"the broker at {self.broker} refused the connection "
                     f"({reason}): {advice}; readings wait in the outbox and the agent keeps "
                     "retrying", logging.ERROR)

    def _report(self, state: str, detail: str, level: int) -> None:
        if self.state == (state, detail):
            return
        self.state = (state, detail)
        if detail:
            log.log(level, "%s", detail)
        try:
            self.outbox.set_meta(META_KEY, json.dumps({
                "state": state, "detail": detail, "since": format_utc(now_us()),
                "broker": self.broker}))
        except Exception:  # the state is advice: a busy or full outbox must not stop the link
            log.debug("could not keep the link state in the outbox", exc_info=True)


def read_link_state(outbox) -> dict | None:
    """What the agent last reported, for ``agent status``."""
    text = outbox.meta(META_KEY)
    return None if text is None else json.loads(text)
