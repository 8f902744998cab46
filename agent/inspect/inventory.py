"""What the agent runs on, for the customer archive: sent with every heartbeat.

Read once per daemon (it changes only with a reboot or an upgrade) from the same
readings as ``diag.system``.
"""

from __future__ import annotations

import functools
import platform
import socket

import psutil

from rmaint import __version__
from rmaint.v1 import controller_pb2 as pb


def agent_version() -> str:
    return __version__


@functools.cache
def inventory() -> pb.AgentInventory:
    """This host's inventory (cached for the life of the process)."""
    return pb.AgentInventory(
        hostname=socket.gethostname(), os=platform.platform(), machine=platform.machine(),
        cpu_count=psutil.cpu_count(logical=True) or 0,
        memory_bytes=psutil.virtual_memory().total, agent_version=agent_version(),
        boot_time=psutil.boot_time())
