"""When an agent counts as online: heard from within :data:`ONLINE_WINDOW` seconds.

Direct agents refresh ``last_seen`` with every heartbeat (each few seconds); dial-out
agents have it refreshed every :data:`PRESENCE_INTERVAL` seconds while their stream is
open (:mod:`controller.dialin`). Pure: callers pass ``now``.
"""

from __future__ import annotations

PRESENCE_INTERVAL = 10.0
ONLINE_WINDOW = 3 * PRESENCE_INTERVAL


def is_online(last_seen: float, now: float) -> bool:
    """Whether an agent last seen at ``last_seen`` (0: never) is online at ``now``."""
    return bool(last_seen) and now - last_seen <= ONLINE_WINDOW
