"""Recording TLS handshake refusals.

A client without a certificate, with one from another CA, or with an expired one is
refused by gRPC's C core inside the TLS handshake, before any Python code sees the call;
the core reports it only as a line on the process's standard error. ``HandshakeWatch``
tees file descriptor 2 through a pipe, passes every byte on unchanged, and hands each
handshake failure to a callback as a short reason plus the library's own words, so
these refusals reach the structured log like every other refusal.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable

_MARKER = "Handshake failed with error "
_REASONS = (
    ("PEER_DID_NOT_RETURN_A_CERTIFICATE", "no client certificate"),
    ("unable to get local issuer certificate", "certificate from an unknown CA"),
    ("certificate has expired", "certificate expired"),
    ("certificate is not yet valid", "certificate not yet valid"),
    ("CERTIFICATE_VERIFY_FAILED", "certificate verification failed"),
)

OnRefusal = Callable[[str, str], None]


def classify(line: str) -> tuple[str, str] | None:
    """(short reason, detail) for a handshake-failure line, else None."""
    _, found, detail = line.partition(_MARKER)
    if not found:
        return None
    detail = detail.strip()
    for needle, reason in _REASONS:
        if needle in detail:
            return reason, detail
    return "handshake failed", detail


class HandshakeWatch:
    """Tee standard error while running; ``stop()`` restores it."""

    def __init__(self, on_refusal: OnRefusal) -> None:
        self._on_refusal = on_refusal
        self._saved = -1
        self._thread: threading.Thread | None = None

    def start(self) -> HandshakeWatch:
        read_end, write_end = os.pipe()
        self._saved = os.dup(2)
        os.dup2(write_end, 2)
        os.close(write_end)
        # The pump's own copy of the real stderr: stop() may close self._saved before the
        # thread first runs.
        out = os.dup(self._saved)
        self._thread = threading.Thread(target=self._pump, args=(read_end, out), daemon=True,
                                        name="handshake-watch")
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._saved < 0:
            return
        os.dup2(self._saved, 2)  # closes the pipe's last write end: the pump sees EOF
        os.close(self._saved)
        self._saved = -1
        if self._thread is not None:
            self._thread.join(timeout=2)

    def _pump(self, read_end: int, out: int) -> None:
        pending = b""
        try:
            with open(read_end, "rb", buffering=0) as pipe:
                while chunk := pipe.read(65536):
                    os.write(out, chunk)
                    pending += chunk
                    *lines, pending = pending.split(b"\n")
                    for line in lines:
                        self._report(line)
        finally:
            os.close(out)

    def _report(self, raw: bytes) -> None:
        found = classify(raw.decode("utf-8", "replace"))
        if found is not None:
            try:
                self._on_refusal(*found)
            except Exception:  # noqa: S110 - the tee must never stop passing stderr on
                pass
