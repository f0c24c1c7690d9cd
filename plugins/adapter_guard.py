"""A format adapter behind a guard: its bugs cost the bytes it failed on, never the source.

The adapter contract says decode() never raises; a plugin that breaks it anyway (an index
out of range on a line nobody foresaw) must not stop the source that feeds it, nor make it
read the same bytes forever. Sources get their adapters through :func:`guarded_factory`:
an exception escaping decode() quarantines the bytes of that call, naming the plugin and
the error, the stream moves past them, and a fresh adapter in the state from before the call
carries on, so one bad file (or packet) never stalls the others.
"""

from __future__ import annotations

import json
import logging
from typing import Any, Callable

from obslink.plugins.formats import AdapterContext, Decoded, FormatAdapter, Quarantined

log = logging.getLogger(__name__)


def plugin_label(adapter_class: type) -> str:
    """How a log line or a quarantine reason names a format plugin."""
    return (f"format plugin {adapter_class.__module__} ({adapter_class.name} "
            f"{adapter_class.version})")


class GuardedAdapter:
    """Wraps one adapter instance; every other attribute is the adapter's own."""

    def __init__(self, make: Callable[[], FormatAdapter]) -> None:
        self._make = make
        self._adapter = make()
        self.failures = 0  # decode() calls that raised

    def __getattr__(self, name: str) -> Any:
        return getattr(self._adapter, name)

    def decode(self, data: bytes, *, start: int, final: bool) -> Decoded:
        before = self._state()
        try:
            return self._adapter.decode(data, start=start, final=final)
        except Exception as exc:  # the plugin boundary: recorded with the plugin's name
            self.failures += 1
            label = plugin_label(type(self._adapter))
            log.error("%s failed on bytes %d-%d (%s: %s); they are quarantined and reading "
                      "goes on after them", label, start, start + len(data),
                      type(exc).__name__, exc, exc_info=log.isEnabledFor(logging.DEBUG))
            self._adapter = self._make()
            self._adapter.set_state(None if before is None else json.loads(before))
            reason = (f"{label} failed on these {len(data)} bytes ({type(exc).__name__}: "
                      f"{exc}); they are kept here unread and reading goes on after them. "
                      "Report it to the plugin's authors with this file")
            return Decoded(quarantined=[Quarantined(start, None, reason, data)],
                           consumed=len(data))


    def _state(self) -> str | None:
        """The adapter's state as JSON (a deep copy), None if it cannot give one."""
        try:
            return json.dumps(self._adapter.get_state())
        except Exception:  # a broken plugin: it starts over rather than stop the source
            return None


def guarded_factory(adapter_class: type[FormatAdapter],
                    context: AdapterContext) -> Callable[[], GuardedAdapter]:
    """What a source calls for a new adapter: ``adapter_class(context)``, guarded."""
    return lambda: GuardedAdapter(lambda: adapter_class(context))
