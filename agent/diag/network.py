"""Network interfaces, counters, listening sockets and connections (scope ``diag.read``).

Sockets of other users' processes are listed without pid and process name where the OS
does not tell an unprivileged agent (``pid`` is then null).
"""

from __future__ import annotations

import asyncio
import socket
from collections import Counter
from typing import Any

import psutil

MAX_INTERFACES = 256
MAX_LISTENING = 500
_FAMILIES = {socket.AF_INET: "ipv4", socket.AF_INET6: "ipv6", psutil.AF_LINK: "link"}


async def network() -> dict[str, Any]:
    """Interfaces with addresses and counters; listening sockets; connections by state."""
    return await asyncio.to_thread(_network)


def _network() -> dict[str, Any]:
    interfaces = _interfaces()
    connections = _connections()
    listening = [_listener(c) for c in connections if _is_listening(c)]
    listening.sort(key=lambda row: (row["protocol"], row["port"], row["address"]))
    _name_processes(listening)
    states = Counter(c.status for c in connections if c.type == socket.SOCK_STREAM
                     and c.status != psutil.CONN_LISTEN)
    return {
        "interfaces": interfaces[:MAX_INTERFACES],
        "interfaces_truncated": len(interfaces) > MAX_INTERFACES,
        "listening": listening[:MAX_LISTENING],
        "listening_truncated": len(listening) > MAX_LISTENING,
        "tcp_connections_by_state": dict(sorted(states.items())),
        "tcp_connections": sum(states.values()),
        "udp_sockets": sum(1 for c in connections if c.type == socket.SOCK_DGRAM),
    }


def _interfaces() -> list[dict[str, Any]]:
    addresses = psutil.net_if_addrs()
    stats = psutil.net_if_stats()
    counters = psutil.net_io_counters(pernic=True)
    rows = []
    for name in sorted(set(addresses) | set(stats)):
        stat, io = stats.get(name), counters.get(name)
        rows.append({
            "name": name,
            "is_up": stat.isup if stat else None,
            "speed_mbps": stat.speed if stat and stat.speed else None,  # 0: not reported
            "mtu_bytes": stat.mtu if stat else None,
            "duplex": _duplex(stat),
            "addresses": [{"family": _FAMILIES.get(a.family, str(a.family)),
                           "address": a.address, "netmask": a.netmask,
                           "broadcast": a.broadcast} for a in addresses.get(name, [])],
            **(_counters(io) if io else {}),
        })
    return rows


def _duplex(stat: Any) -> str | None:
    if stat is None or stat.duplex == psutil.NIC_DUPLEX_UNKNOWN:
        return None
    return "full" if stat.duplex == psutil.NIC_DUPLEX_FULL else "half"


def _counters(io: Any) -> dict[str, int]:
    return {"sent_bytes": io.bytes_sent, "received_bytes": io.bytes_recv,
            "sent_packets": io.packets_sent, "received_packets": io.packets_recv,
            "errors_in": io.errin, "errors_out": io.errout,
            "drops_in": io.dropin, "drops_out": io.dropout}


def _connections() -> list[Any]:
    try:
        return psutil.net_connections(kind="inet")
    except psutil.AccessDenied:  # macOS needs privileges for other users' sockets
        return []


def _is_listening(conn: Any) -> bool:
    if conn.type == socket.SOCK_STREAM:
        return bool(conn.status == psutil.CONN_LISTEN)
    return conn.type == socket.SOCK_DGRAM and not conn.raddr  # a bound, unconnected UDP port


def _listener(conn: Any) -> dict[str, Any]:
    tcp = conn.type == socket.SOCK_STREAM
    protocol = ("tcp" if tcp else "udp") + ("6" if conn.family == socket.AF_INET6 else "")
    return {"protocol": protocol, "address": conn.laddr.ip, "port": conn.laddr.port,
            "pid": conn.pid, "process": None}


def _name_processes(rows: list[dict[str, Any]]) -> None:
    names: dict[int, str | None] = {}
    for row in rows:
        pid = row["pid"]
        if pid is None:
            continue
        if pid not in names:
            try:
                names[pid] = psutil.Process(pid).name()
            except (psutil.NoSuchProcess, psutil.AccessDenied):
                names[pid] = None
        row["process"] = names[pid]
