"""The agent's certificate: renewed at half its life, served again without a restart.

:class:`Renewer` sleeps until :func:`pki.renew.renewal_delay` says renewal is due, asks
the controller for a certificate on the same key (the key file is never touched), and
writes it atomically (0644). Failures are logged and retried with a growing delay, never
later than the certificate's expiry; a certificate that expires unrenewed is logged as an
error (the agent keeps serving its customer's local commands, the controller cannot reach
it until an operator re-enrolls or renewal succeeds).

Nothing restarts: :func:`reloading_server_credentials` gives the mTLS server a fetcher
gRPC calls before every new handshake, which serves the new certificate as soon as the
file changes; new outgoing channels read the files when they are made (dial-out
reconnects, the sync loop is told to reopen its channel through ``on_renewed``), and an
open dial-out stream keeps its connection.
"""

from __future__ import annotations

import asyncio
import logging
import os
import random
import threading
from collections.abc import Awaitable, Callable
from pathlib import Path

import grpc
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec

from pki.files import read_cert, write_public
from pki.identity import Identity
from pki.renew import RenewalFailed, Validity, expired, renew, renewal_delay, utc
from pki.tls import TlsFiles

_log = logging.getLogger("agent.renewal")
RETRY_FIRST = 5.0
RETRY_MAX = 600.0
Sleep = Callable[[float], Awaitable[None]]


def retry_delay(failures: int, validity: Validity, now: float,
                rand: Callable[[], float]) -> float:
    """Seconds before retry number ``failures`` (>= 1): doubling from RETRY_FIRST up to
    RETRY_MAX, with jitter (50..100 %), and never more than a quarter of the time left
    (but at least one second)."""
    ceiling = min(RETRY_MAX, RETRY_FIRST * 2.0 ** min(failures - 1, 16))
    left = validity.not_after - now
    if left > 0:
        ceiling = min(ceiling, max(1.0, left / 4))
    return ceiling * (0.5 + rand() / 2)


class Renewer:
    """Renews the certificate in ``files`` for ``identity`` until cancelled."""

    def __init__(self, *, controller: str, files: TlsFiles, identity: Identity,
                 key: ec.EllipticCurvePrivateKey, clock: Callable[[], float],
                 sleep: Sleep = asyncio.sleep, rand: Callable[[], float] = random.random,
                 on_renewed: Callable[[], Awaitable[None]] | None = None,
                 reenroll: str = "rmagent enroll --token T --force") -> None:
        self._controller = controller
        self._reenroll = reenroll  # the command that enrolls this home again, as typed
        self._files = files
        self._identity = identity
        self._key = key
        self._clock = clock
        self._sleep = sleep
        self._rand = rand
        self._on_renewed = on_renewed
        self.renewals = 0

    async def run(self) -> None:
        failures, warned_expired = 0, False
        while True:
            validity = Validity.of(await asyncio.to_thread(read_cert, self._files.cert))
            now = self._clock()
            if failures == 0:
                await self._sleep(renewal_delay(validity, now, self._rand))
            try:
                await self.renew_now()
            except RenewalFailed as exc:
                failures += 1
                now = self._clock()
                if expired(validity, now) and not warned_expired:
                    warned_expired = True
                    # Renewal needs a valid certificate: only a new enrollment helps now.
                    _log.error(f"certificate expired without renewal: re-enroll this agent "
                               f"with a new join token ('{self._reenroll}')",
                               extra={"fields": {"event": "cert.expired",
                                                 "not_after": utc(validity.not_after),
                                                 "error": str(exc)}})
                else:
                    _log.warning("certificate renewal failed; retrying", extra={"fields": {
                        "event": "cert.renew_failed", "failures": failures,
                        "not_after": utc(validity.not_after), "error": str(exc)}})
                await self._sleep(retry_delay(failures, validity, now, self._rand))
                continue
            failures, warned_expired = 0, False

    async def renew_now(self) -> x509.Certificate:
        """Renew once and write the certificate; RenewalFailed if that cannot be done."""
        pem, cert = await renew(self._controller, self._files, self._identity, self._key,
                                now=self._clock())
        try:
            await asyncio.to_thread(write_public, self._files.cert, pem)
        except OSError as exc:
            raise RenewalFailed(f"cannot write {self._files.cert}: {exc.strerror or exc}") from exc
        self.renewals += 1
        validity = Validity.of(cert)
        _log.info("certificate renewed", extra={"fields": {
            "event": "cert.renewed", "serial": format(cert.serial_number, "x"),
            "not_after": utc(validity.not_after)}})
        if self._on_renewed is not None:
            await self._on_renewed()
        return cert


def reloading_server_credentials(files: TlsFiles) -> grpc.ServerCredentials:
    """mTLS server credentials that serve the newest key and certificate in ``files``
    (checked before each handshake; read again only when a file changed)."""
    watch = _FileWatch(files)
    return grpc.dynamic_ssl_server_credentials(
        watch.initial(), watch.fetch, require_client_authentication=True)


class _FileWatch:
    """The certificate configuration of ``files``, re-read when their mtime or size
    changes. Called from gRPC's own threads."""

    def __init__(self, files: TlsFiles) -> None:
        self._files = files
        self._lock = threading.Lock()
        self._seen: tuple[tuple[int, int], ...] = ()

    def initial(self) -> grpc.ServerCertificateConfiguration:
        config = self.fetch()
        assert config is not None, "the first fetch always reads the files"
        return config

    def fetch(self) -> grpc.ServerCertificateConfiguration | None:
        with self._lock:
            try:
                stamp = tuple(_stamp(path) for path in (self._files.key, self._files.cert,
                                                        self._files.ca))
                if stamp == self._seen:
                    return None
                key, cert, ca = self._files.read()
            except OSError as exc:
                if not self._seen:
                    raise
                _log.warning("cannot re-read the TLS files; serving the previous ones",
                             extra={"fields": {"event": "cert.reload_failed",
                                               "error": str(exc)}})
                return None
            self._seen = stamp
            return grpc.ssl_server_certificate_configuration([(key, cert)],
                                                             root_certificates=ca)


def _stamp(path: Path) -> tuple[int, int]:
    info = os.stat(path)
    return info.st_mtime_ns, info.st_size
