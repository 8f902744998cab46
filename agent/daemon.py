"""The agent daemon (``rmagent run``): wires state, log, dispatcher, servers and sync.

``start`` brings everything up inside the running event loop and returns a handle
(tests use it with ``listen`` port 0); ``run`` is the blocking entry point that logs
JSON lines and stops cleanly on SIGTERM or SIGINT.

Raises on start: ConfigError (agent.toml), StartupError (certificates, addresses),
LogUnavailable / StateUnavailable (databases). Nothing stays open after a failed start.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import signal
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import grpc
from cryptography.hazmat.primitives.asymmetric import ec

from agent import config as agent_config
from agent import jsonlog, params
from agent.bundle.operation import BundleSettings
from agent.catalogue import OperationSpec, build_catalogue
from agent.change_consent import ChangeGate
from agent.changes import CHANGES_NAME, ChangeStore
from agent.checkpoints import signer_for, start_checkpoints
from agent.config import AgentConfig, AgentPaths
from agent.device_ops import device_specs
from agent.dialout import DialOut
from agent.dispatcher import Dispatcher
from agent.errors import StartupError
from agent.homes import logged_command_for
from agent.inspect.runner import start_inspection
from agent.local_service import LocalServicer
from agent.locks import LockKeeper, LockPuller
from agent.log import OperationLog
from agent.param_ops import PARAMS_BACKUPS, ParamOperations
from agent.renewal import Renewer
from agent.server import execute, execute_stream, start_local_server, start_network_server
from agent.service_ops import ServiceOperations
from agent.shell.reverse import ReverseShells
from agent.shell.service import ShellService
from agent.state import StateStore
from agent.sync import SyncLoop
from agent.trust import PinnedTrust
from agent.witness import Witness

if TYPE_CHECKING:
    from agent.data.ops import DataOperations
from pki.certs import identity_of
from pki.files import read_cert, read_ec_key, reason
from pki.handshakes import HandshakeWatch
from pki.identity import Identity, IdentityError
from pki.tls import TlsFiles

Clock = Callable[[], float]
_log = logging.getLogger("agent.daemon")


@dataclass
class AgentHandle:
    """A running daemon. ``port`` is the bound mTLS port, ``address`` host:port (0 and ""
    when it does not listen: dial-out mode)."""

    port: int
    address: str
    socket: Path
    identity: Identity
    dispatcher: Dispatcher
    sync: SyncLoop
    _stack: contextlib.AsyncExitStack
    dialout: DialOut | None = None  # set in dial-out and both modes
    locks: LockKeeper | None = None  # the controller's locks this agent holds
    renewer: Renewer | None = None  # renews the certificate at half-life

    async def stop(self) -> None:
        """Stop serving, stop syncing, close the databases; safe to call twice."""
        await self._stack.aclose()


async def start(home: Path, *, clock: Clock = time.time) -> AgentHandle:
    """Start the daemon for the enrolled ``home`` in the running event loop."""
    config = agent_config.load(home)
    paths = AgentPaths.of(home, config)
    identity, key = _credentials(paths, config)
    if not config.approvers:  # agent.toml is read again when one is pinned
        _log.warning(f"no approver key is pinned: no request can be approved until "
                     f"'{logged_command_for('approver init', home)}' makes one",
                     extra={"fields": {"event": "approvers.none"}})
    stack = contextlib.AsyncExitStack()
    try:
        return await _assemble(stack, home, config, paths, identity, key, clock)
    except BaseException:
        await stack.aclose()
        raise


async def _assemble(stack: contextlib.AsyncExitStack, home: Path, config: AgentConfig,
                    paths: AgentPaths, identity: Identity, key: ec.EllipticCurvePrivateKey,
                    clock: Clock) -> AgentHandle:
    state = StateStore(paths.state)
    stack.callback(state.close)
    log = OperationLog(paths.log)
    stack.callback(log.close)
    # Stopped after everything that writes the log: the last checkpoint covers it all.
    await start_checkpoints(stack, home=home, identity=identity, log=log, clock=clock)
    trust = PinnedTrust(home, identity.name)
    # The customer's [diag] allowlists are bound into the catalogue once, at start.
    shell = ShellService(policy=config.shell, log=log, state=state, clock=clock)
    changes, data = await _start_changes(stack, home, config, trust, clock)
    dispatcher = Dispatcher(agent_id=identity.name, signing_key=key, trust=trust, state=state,
                            log=log, catalogue=build_catalogue(
                                config.diag, data,
                                more=(*shell.specs(), *_change_specs(home, config, changes,
                                                                     trust, clock)),
                                bundle=BundleSettings(home, config.bundle.max_bytes, clock,
                                                      configs=config.bundle.configs)),
                            clock=clock)
    shell.attach(dispatcher)  # a revocation ends the grant's shells
    stack.push_async_callback(dispatcher.close)  # after the servers stop, before the stores
    files = TlsFiles(paths.key, paths.cert, paths.ca)
    locks = LockKeeper(home, dispatcher)
    locks.load()  # before anything is served: kept locks are in force from the start
    port, address = await _start_direct(stack, config, identity, files, dispatcher, shell,
                                        locks)
    witness = Witness(paths.log, signer_for(home, identity)[0], clock=clock,
                      interval=float(config.witness.interval_seconds))
    stack.callback(witness.close)  # after the sync loop stops
    sync = SyncLoop(controller=config.controller, trust_domain=identity.trust_domain,
                    files=files, state=state, trust=trust, address=address, clock=clock,
                    witness=witness)
    stack.push_async_callback(sync.close)
    local = LocalServicer(agent_id=identity.name, listen=address, controller=config.controller,
                          state=state, dispatcher=dispatcher, trust=trust, sync=sync, clock=clock,
                          shells=shell.live, changes=changes)
    local_server = await start_local_server(paths.socket, identity.trust_domain, local)
    stack.callback(paths.socket.unlink, missing_ok=True)
    stack.push_async_callback(_stop_server, local_server)
    task = asyncio.create_task(sync.run(), name="rmagent-sync")
    stack.push_async_callback(_cancel, task)
    await start_inspection(stack, home=home, config=config, log=log, files=files, clock=clock)
    if config.dials_out:  # logins reach it through streams it opens, one per ticket
        reverse = ReverseShells(shell, controller=config.controller,
                                trust_domain=identity.trust_domain, files=files)
        stack.push_async_callback(reverse.close)
    dialout = await _start_dialout(stack, config, identity, files, dispatcher, locks)
    renewer = _start_upkeep(stack, home, config, identity, files, key, locks, sync, clock)
    return AgentHandle(port, address, paths.socket, identity, dispatcher, sync, stack, dialout,
                       locks, renewer)


def _start_upkeep(stack: contextlib.AsyncExitStack, home: Path, config: AgentConfig,
                  identity: Identity,
                  files: TlsFiles, key: ec.EllipticCurvePrivateKey, locks: LockKeeper,
                  sync: SyncLoop, clock: Clock) -> Renewer | None:
    """Pull the controller's locks and renew the certificate, in the background."""
    if not config.controller:
        return None
    puller = LockPuller(locks, controller=config.controller,
                        trust_domain=identity.trust_domain, files=files)
    renewer = Renewer(controller=config.controller, files=files, identity=identity, key=key,
                      clock=clock, on_renewed=sync.close,  # its next round uses the new cert
                      reenroll=logged_command_for("enroll --token T --force", home))
    for work, name in ((puller.run(), "rmagent-locks"), (renewer.run(), "rmagent-renewal")):
        stack.push_async_callback(_cancel, asyncio.create_task(work, name=name))
    return renewer


async def _start_changes(stack: contextlib.AsyncExitStack, home: Path, config: AgentConfig,
                         trust: PinnedTrust, clock: Clock,
                         ) -> tuple[ChangeStore, DataOperations | None]:
    """The change store and data sources (None when the customer configured none), after
    resolving applies a crash cut off."""
    changes = ChangeStore(home / CHANGES_NAME)
    stack.callback(changes.close)
    if not config.data.sources:  # SQLAlchemy is loaded only by an agent that needs it
        return changes, None
    from agent.data.ops import DataOperations
    from agent.data.undo import resolve_applying
    data = DataOperations(config.data, changes, trust, clock)
    stack.callback(data.close)
    await asyncio.to_thread(resolve_applying, changes, data.engine, data.source, clock)
    return changes, data


def _change_specs(home: Path, config: AgentConfig, changes: ChangeStore, trust: PinnedTrust,
                  clock: Clock) -> tuple[OperationSpec, ...]:
    """Parameter changes, service control and devices, bound to the customer's config."""
    gate = ChangeGate(changes, trust, clock)
    backups = params.Backups(home / PARAMS_BACKUPS)
    param_ops = ParamOperations(config.params, backups, gate, clock)
    param_ops.resolve_applying()  # before any operation: the store is not shared yet
    service_ops = ServiceOperations(config.services, gate, clock)
    service_ops.resolve_applying()
    return (*param_ops.specs(),
            *service_ops.specs(),
            *device_specs(config.devices))


async def _start_direct(stack: contextlib.AsyncExitStack, config: AgentConfig,
                        identity: Identity, files: TlsFiles,
                        dispatcher: Dispatcher, shell: ShellService,
                        locks: LockKeeper | None = None) -> tuple[int, str]:
    """The bound port and address of the mTLS server; (0, "") in dial-out mode."""
    if not config.serves_direct:
        return 0, ""
    network, port = await start_network_server(config.listen, identity.trust_domain, files,
                                               dispatcher, shell, locks)
    stack.push_async_callback(_stop_server, network)
    return port, f"{config.listen.rpartition(':')[0]}:{port}"


async def _start_dialout(stack: contextlib.AsyncExitStack, config: AgentConfig,
                         identity: Identity, files: TlsFiles,
                         dispatcher: Dispatcher, locks: LockKeeper | None = None,
                         ) -> DialOut | None:
    if not config.dials_out:
        return None
    dialout = DialOut(controller=config.controller, trust_domain=identity.trust_domain,
                      files=files, execute=functools.partial(execute, dispatcher),
                      execute_stream=functools.partial(execute_stream, dispatcher),
                      apply_locks=locks.apply if locks is not None else None)
    task = asyncio.create_task(dialout.run(), name="rmagent-dialout")
    stack.push_async_callback(_cancel, task)  # before the dispatcher closes
    return dialout


def _credentials(paths: AgentPaths,
                 config: AgentConfig) -> tuple[Identity, ec.EllipticCurvePrivateKey]:
    try:
        identity = identity_of(read_cert(paths.cert))
        key = read_ec_key(paths.key)
    except (OSError, ValueError, IdentityError) as exc:
        raise StartupError(f"cannot use the agent's certificate and key: {reason(exc)}") from exc
    expected = Identity(config.trust_domain, "agent", config.id)
    if identity != expected:
        raise StartupError(f"the certificate names {identity.uri}, agent.toml {expected.uri}")
    return identity, key


async def _stop_server(server: grpc.aio.Server) -> None:
    await server.stop(1.0)


async def _cancel(task: asyncio.Task[None]) -> None:
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task


def run(home: Path) -> None:
    """Serve until SIGTERM or SIGINT, then shut down cleanly. Blocks."""
    paths = AgentPaths.of(home, agent_config.load(home))
    handlers = jsonlog.install(paths.daemon_log)
    watch = HandshakeWatch(_log_handshake_refusal).start()
    try:
        asyncio.run(_serve(home))
    finally:
        watch.stop()
        jsonlog.uninstall(handlers)


def _log_handshake_refusal(reason: str, detail: str) -> None:
    _log.warning("tls handshake refused", extra={"fields": {
        "event": "tls.refused", "reason": reason, "detail": detail}})


async def _serve(home: Path) -> None:
    stopping = asyncio.Event()
    loop = asyncio.get_running_loop()
    # Before anything is served: a stop asked for while starting is a clean stop once started.
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stopping.set)
    try:
        handle = await start(home)
        _log.info("rmagent serving", extra={"fields": {
            "agent_id": handle.identity.name, "address": handle.address,
            "socket": str(handle.socket), "dial_out": handle.dialout is not None}})
        try:
            await stopping.wait()
        finally:
            await handle.stop()
            _log.info("rmagent stopped")
    finally:
        for signum in (signal.SIGTERM, signal.SIGINT):
            loop.remove_signal_handler(signum)
