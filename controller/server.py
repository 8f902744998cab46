"""The controller process: the mutual-TLS API, the enrollment port and the expiry sweep.

``await serve(home)`` starts everything and returns a :class:`RunningController` (its
bound ports, and ``stop()``); ``run(home)`` does the same and blocks until SIGTERM or
SIGINT, then shuts down cleanly. Both apply pending store migrations first.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection

from controller.audit.checkpointer import start_log
from controller.authz import AuthzInterceptor
from controller.ca import Authority
from controller.config import ControllerConfig, load_config
from controller.dialin import DialIn
from controller.errors import ConfigError
from controller.locks import LockBroker
from controller.logs import LogSinks, log_event
from controller.reissue import ending_soon
from controller.relay import Relay
from controller.services import register_api, register_enrollment
from controller.services._common import Deps
from controller.services.audit import register_audit
from controller.store import Store, migrate
from controller.sweeper import SWEEP_INTERVAL, Sweeper
from pki.files import reason
from pki.handshakes import HandshakeWatch
from pki.tls import (
    TlsFiles,
    bind_problem,
    server_credentials,
    server_options,
    why_not_listening,
)
from rmaint.health import HealthServicer

STOP_GRACE = 2.0
# gRPC on Linux shares ports (SO_REUSEPORT) by default; a second controller must fail.
_OPTIONS = [*server_options(),
            # Dial-out agents hold idle streams: keep pinging them, and let them ping.
            ("grpc.http2.max_pings_without_data", 0), ("grpc.keepalive_permit_without_calls", 1)]


@dataclass
class RunningController:
    """A started controller. ``port``/``enroll_port`` are the bound ports (useful with 0);
    ``sweeper.sweep()`` runs one expiry sweep now (tests, operators)."""

    config: ControllerConfig
    port: int
    enroll_port: int
    address: str
    enroll_address: str
    sweeper: Sweeper
    _stack: contextlib.AsyncExitStack = field(repr=False)
    _stopped: asyncio.Event = field(default_factory=asyncio.Event, repr=False)
    gateway_port: int = 0  # the SSH gateway's bound port; 0 when it is off

    async def stop(self) -> None:
        """Stop serving (in-flight calls get a short grace), then close the store and logs."""
        if self._stopped.is_set():
            return
        self._stopped.set()
        await self._stack.aclose()


async def serve(home: Path, *, clock: Callable[[], float] = time.time,
                sweep_interval: float = SWEEP_INTERVAL,
                log_to_stderr: bool = True) -> RunningController:
    """Start the controller of ``home``; raises ConfigError or StoreError if it cannot.

    ``clock`` is the controller's time for every decision and record; ``sweep_interval``
    is how often grants and requests are expired.
    """
    config = load_config(home)
    stack = contextlib.AsyncExitStack()
    try:
        logs = LogSinks(config.files.log, stderr=log_to_stderr)
        stack.callback(logs.close)
        deps, port, enroll_port, sweeper = await _start(config, stack, clock, sweep_interval)
        gateway_port = await _start_gateway(config, deps, stack)
    except BaseException:
        await stack.aclose()
        raise
    log_event("controller.started", trust_domain=config.trust_domain,
              address=deps.controller_address, enroll_address=deps.enroll_address,
              database=config.safe_database_url)
    return RunningController(config, port, enroll_port, deps.controller_address,
                             deps.enroll_address, sweeper, stack, gateway_port=gateway_port)


async def _start_gateway(config: ControllerConfig, deps: Deps,
                         stack: contextlib.AsyncExitStack) -> int:
    """The SSH gateway's bound port when ``gateway_listen`` is set, else 0."""
    if config.gateway_listen is None:
        return 0
    from controller.gateway.server import start_gateway  # asyncssh only when it is used

    gateway = await start_gateway(config, deps)
    stack.push_async_callback(gateway.stop)
    return gateway.port


async def _start(config: ControllerConfig, stack: contextlib.AsyncExitStack,
                 clock: Callable[[], float],
                 sweep_interval: float) -> tuple[Deps, int, int, Sweeper]:
    """Start everything, registering how to undo each step on ``stack``."""
    files = config.files
    store = Store.open(config.database_url)
    stack.push_async_callback(asyncio.to_thread, store.close)
    await asyncio.to_thread(migrate.upgrade, store)
    # Before anything is served: refuses a rolled-back log (LogRolledBack).
    checkpointer = await start_log(store, files.home, config.trust_domain, clock)
    stack.push_async_callback(checkpointer.stop)
    tls = TlsFiles(files.key, files.cert, files.ca_cert)
    for role, until in ending_soon(files.home, now=clock()):
        log_event("certificate.ending", logging.WARNING, role=role, not_after=until,
                  action=f"run 'rmctl --home {files.home} reissue', then restart serve")
    authority = _read(lambda: Authority.load(files.ca_key, files.ca_cert), files.ca_key)
    dialin = DialIn(store, clock)
    dialin.start()
    stack.push_async_callback(dialin.stop)
    relay = Relay(tls, config.trust_domain, dialin=dialin)
    stack.push_async_callback(relay.close)
    api, enroll = _server(config), _server(config)
    port = _bind(api, str(config.listen), _read(lambda: server_credentials(tls), files.key))
    enroll_port = _bind(enroll, str(config.enroll_listen), _read(
        lambda: server_credentials(tls, require_client_cert=False), files.key))
    broker = LockBroker(store, clock, tls, config.trust_domain, dialin)
    stack.push_async_callback(broker.stop)
    deps = Deps(store, clock, config.trust_domain, authority, relay,
                config.public_address(port), config.enroll_address(enroll_port), broker)
    api_services = register_api(api, deps) + register_audit(api, deps, checkpointer.key)
    healths = [await _add_health(api, api_services, reflect=True),
               await _add_health(enroll, register_enrollment(enroll, deps), reflect=False)]
    for server in (api, enroll):
        await server.start()
        stack.push_async_callback(server.stop, STOP_GRACE)
    for servicer in healths:
        # Unwound before the servers stop: clients see NOT_SERVING during the grace.
        stack.push_async_callback(servicer.enter_graceful_shutdown)
    # Unwound before the servers stop: idle dial-out streams end now, not after the grace.
    stack.callback(dialin.drain)
    sweeper = Sweeper(store, clock, interval=sweep_interval)
    sweeper.start()
    stack.push_async_callback(sweeper.stop)
    stack.callback(log_event, "controller.stopping")
    return deps, port, enroll_port, sweeper


def _server(config: ControllerConfig) -> grpc.aio.Server:
    return grpc.aio.server(interceptors=[AuthzInterceptor(config.trust_domain)],
                           options=_OPTIONS)


def _read(load: Callable[[], Any], path: Path) -> Any:
    """Run ``load``; a missing or unreadable file becomes a ConfigError naming it."""
    try:
        return load()
    except (OSError, ValueError) as exc:
        raise ConfigError(f"cannot read the controller's keys and certificates "
                          f"({path.parent}): {reason(exc)}") from exc


def _bind(server: grpc.aio.Server, address: str, credentials: grpc.ServerCredentials) -> int:
    problem = bind_problem(address)
    if problem is not None:
        raise ConfigError(f"cannot listen on {address}: {problem}")
    try:
        return int(server.add_secure_port(address, credentials))
    except RuntimeError as exc:
        raise ConfigError(f"cannot listen on {address}: {why_not_listening(address)}") from exc


async def _add_health(server: grpc.aio.Server, services: list[str], *,
                      reflect: bool) -> Any:
    """Health (overall and per service SERVING) and, if ``reflect``, server reflection."""
    servicer = HealthServicer()
    health_pb2_grpc.add_HealthServicer_to_server(servicer, server)
    for name in ["", *services]:
        await servicer.set(name, health_pb2.HealthCheckResponse.SERVING)
    if reflect:
        reflection.enable_server_reflection(
            [*services, health.SERVICE_NAME, reflection.SERVICE_NAME], server)
    return servicer


def run(home: Path) -> None:
    """Serve until SIGTERM or SIGINT, then stop cleanly. Raises like :func:`serve`."""
    watch = HandshakeWatch(_log_handshake_refusal).start()
    try:
        asyncio.run(_run_until_signalled(home))
    finally:
        watch.stop()


def _log_handshake_refusal(reason: str, detail: str) -> None:
    log_event("tls.refused", logging.WARNING, reason=reason, detail=detail)


async def _run_until_signalled(home: Path) -> None:
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    running = await serve(home)
    signals = (signal.SIGTERM, signal.SIGINT)
    for signum in signals:
        loop.add_signal_handler(signum, stop.set)
    try:
        await stop.wait()
    finally:
        for signum in signals:
            loop.remove_signal_handler(signum)
        await running.stop()
