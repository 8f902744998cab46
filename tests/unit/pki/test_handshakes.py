"""Handshake refusals reported by the TLS library become structured records."""

from __future__ import annotations

import os
import sys
import threading
import time

from pki.handshakes import HandshakeWatch, classify

LINE = ("I1126 15:47:22.408664 3282 ssl_transport_security.cc:2563] Handshake failed with "
        "error SSL_ERROR_SSL: error:100000c0:SSL routines:OPENSSL_internal:"
        "PEER_DID_NOT_RETURN_A_CERTIFICATE: Invalid certificate verification context")


def test_classify_names_the_reason() -> None:
    assert classify(LINE)[0] == "no client certificate"  # type: ignore[index]
    expired = LINE.replace("PEER_DID_NOT_RETURN_A_CERTIFICATE: Invalid certificate verification "
                           "context", "CERTIFICATE_VERIFY_FAILED: certificate has expired")
    assert classify(expired) == ("certificate expired", expired.partition("error ")[2])
    assert classify("I1126 some other line") is None


def test_watch_tees_stderr_and_reports(capfd: object) -> None:
    seen: list[tuple[str, str]] = []
    watch = HandshakeWatch(lambda reason, detail: seen.append((reason, detail))).start()
    try:
        os.write(2, b"unrelated\n" + LINE.encode() + b"\n")
        sys.stderr.flush()
        deadline = time.monotonic() + 2
        while not seen and time.monotonic() < deadline:
            time.sleep(0.01)
    finally:
        watch.stop()
    assert [r for r, _ in seen] == ["no client certificate"]
    err = capfd.readouterr().err  # type: ignore[attr-defined]
    assert "unrelated" in err and "Handshake failed" in err


def test_a_watch_stopped_at_once_leaves_no_thread_error(capfd: object) -> None:
    failures: list[BaseException | None] = []
    before = threading.excepthook
    threading.excepthook = lambda args: failures.append(args.exc_value)
    try:
        for _ in range(50):  # stop() used to close the fd the thread had yet to dup
            HandshakeWatch(lambda reason, detail: None).start().stop()
    finally:
        threading.excepthook = before
    assert failures == []
    os.write(2, b"stderr still works\n")
    assert "stderr still works" in capfd.readouterr().err  # type: ignore[attr-defined]
