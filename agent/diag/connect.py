"""Connectivity checks run from the customer host (scope ``diag.read``).

``check`` is one of:

* ``tcp``: connect to ``host``:``port``; latency of the connect (name lookup included);
* ``dns``: resolve ``name`` to its addresses;
* ``http``: GET ``url`` (http or https, no credentials in it); status and latency of the
  response headers; the body is never read; up to 3 redirects are followed, each to a
  target allowlisted too; ``verify`` (default true) checks the server's certificate;
* ``tls``: handshake with ``host``:``port`` (SNI ``server_name``, default ``host``); the
  certificate's subject, issuer, names and expiry, and whether it verifies.

Every target must be allowed by ``[diag] connect_allow`` (see :mod:`agent.diag.policy`):
by default nothing is. A refused target is InvalidParams; a target that fails (refused,
unreachable, timed out) is a result with ``"error"``. ``timeout`` (0.1..10 s, default 5)
bounds the whole check, redirects included.
"""

from __future__ import annotations

import asyncio
import socket
import time
from dataclasses import dataclass, field
from typing import Any

from agent.diag import _http, _tls
from agent.diag._http import describe_error, http_target
from agent.diag.params import ParamReader, Params
from agent.diag.policy import DiagConfig, normalize_host

_COMMON = {"check", "timeout"}
_KEYS = {"tcp": {"host", "port"}, "dns": {"name"}, "http": {"url", "verify"},
         "tls": {"host", "port", "server_name"}}


@dataclass(frozen=True)
class ConnectQuery:
    """A validated check; fields unused by its kind stay at their defaults."""

    check: str
    timeout: float = 5.0
    host: str = ""
    port: int = 0
    url: str = ""
    verify: bool = True
    server_name: str = ""
    policy: DiagConfig = field(default_factory=DiagConfig)


def parse_connect(params: Params, diag: DiagConfig) -> ConnectQuery:
    """See the module docstring for the parameters of each ``check``."""
    check = params.get("check")
    if not isinstance(check, str) or check not in _KEYS:
        ParamReader("diag.connect", {}, ()).fail('check must be "tcp", "dns", "http" or "tls"')
    reader = ParamReader("diag.connect", params, _COMMON | _KEYS[check])
    timeout = reader.number("timeout", 5.0, 0.1, 10)
    if check == "dns":
        name = _host(reader, "name")
        if not diag.allows_name(name):
            reader.fail(f"{name} is not allowed by [diag] connect_allow of agent.toml")
        return ConnectQuery("dns", timeout, host=name, policy=diag)
    if check == "http":
        url = reader.text("url", max_length=2048)
        target = http_target(url)
        if isinstance(target, str):
            reader.fail(f"url {target}")
        _allow(reader, diag, *target)
        return ConnectQuery("http", timeout, url=url, verify=reader.boolean("verify", True),
                            policy=diag)
    host, port = _host(reader, "host"), reader.integer("port", None, 1, 65535)
    _allow(reader, diag, host, port)
    server_name = _host(reader, "server_name") if reader.has("server_name") else host
    return ConnectQuery(check, timeout, host=host, port=port, server_name=server_name,
                        policy=diag)


def _host(reader: ParamReader, name: str) -> str:
    host = reader.text(name, max_length=255)
    if normalize_host(host) is None:
        reader.fail(f"{name} must be a host name or an IP address")
    return host.removeprefix("[").removesuffix("]")


def _allow(reader: ParamReader, diag: DiagConfig, host: str, port: int) -> None:
    if not diag.allows_connect(host, port):
        reader.fail(f"{host}:{port} is not allowed by [diag] connect_allow of agent.toml")


async def connect(query: ConnectQuery) -> dict[str, Any]:
    """Run the check; failures are results with ``error``, never exceptions."""
    try:
        async with asyncio.timeout(query.timeout):
            found = await _run(query)
    except TimeoutError:
        found = {"error": f"timed out after {query.timeout:g} s"}
    except OSError as exc:
        found = {"error": describe_error(exc)}
    return {**_target(query), **found}


async def _run(query: ConnectQuery) -> dict[str, Any]:
    if query.check == "tcp":
        return await _tcp(query.host, query.port)
    if query.check == "dns":
        return await _dns(query.host)
    if query.check == "http":
        return await _http.get(query.url, verify=query.verify,
                               allowed=query.policy.allows_connect, timeout=query.timeout)
    return await _tls.inspect(query.host, query.port, query.server_name)


def _target(query: ConnectQuery) -> dict[str, Any]:
    if query.check == "http":
        return {"check": "http", "url": query.url}
    if query.check == "dns":
        return {"check": "dns", "name": query.host}
    return {"check": query.check, "host": query.host, "port": query.port}


async def _tcp(host: str, port: int) -> dict[str, Any]:
    started = time.monotonic()
    _, writer = await asyncio.open_connection(host, port)
    latency = time.monotonic() - started
    peer = writer.get_extra_info("peername")
    writer.close()
    return {"connected": True, "address": peer[0] if peer else None,
            "latency_seconds": round(latency, 6)}


async def _dns(name: str) -> dict[str, Any]:
    started = time.monotonic()
    infos = await asyncio.get_running_loop().getaddrinfo(name, None, type=socket.SOCK_STREAM)
    latency = time.monotonic() - started
    return {"resolved": True, "addresses": list(dict.fromkeys(str(i[4][0]) for i in infos)),
            "latency_seconds": round(latency, 6)}
