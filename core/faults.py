"""Fault injection for the fault-injection tests: a process kills itself at a named point.

``OBSLINK_FAULTS="after-commit:0.3"`` makes each pass through ``fault_point("after-commit")``
SIGKILL the process with probability 0.3: a real crash at exactly the moment the tests need
(e.g. the collector between its catalog commit and its ack), which a kill from outside can
only hit by luck. Unset (always, in production), a fault point costs one dict lookup.
"""

from __future__ import annotations

import os
import random
import signal

_PLAN: dict[str, float] = {}
for _item in filter(None, os.environ.get("OBSLINK_FAULTS", "").split(",")):
    _name, _, _chance = _item.partition(":")
    _PLAN[_name.strip()] = float(_chance or 1)


def fault_point(name: str) -> None:
    chance = _PLAN.get(name)
    if chance and random.random() < chance:
        os.kill(os.getpid(), signal.SIGKILL)
