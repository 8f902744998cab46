"""The HTTP(S) check of ``diag.connect``: status and latency, body never read.

Runs ``http.client`` in a worker thread with socket timeouts, so that a check that is
given up (deadline, revoke) ends on its own within the timeout. Redirects are followed
up to ``MAX_REDIRECTS`` times, and only to targets that ``allowed`` accepts.
"""

from __future__ import annotations

import asyncio
import os
import socket
import ssl
import time
from collections.abc import Callable
from typing import Any
from urllib.parse import urljoin, urlsplit

from agent.redact import redact_text

MAX_REDIRECTS = 3
REDIRECTS = frozenset({301, 302, 303, 307, 308})
Allowed = Callable[[str, int], bool]


def http_target(url: str) -> tuple[str, int] | str:
    """``(host, port)`` of an http(s) URL, or what is wrong with it."""
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:
        return "is not a valid URL"
    if parts.scheme not in ("http", "https") or not parts.hostname:
        return "must be an http:// or https:// URL with a host"
    if parts.username is not None or parts.password is not None:
        return "must not carry credentials"
    return parts.hostname, port or (443 if parts.scheme == "https" else 80)


async def get(url: str, *, verify: bool, allowed: Allowed, timeout: float) -> dict[str, Any]:
    """The final response's status, the redirects on the way, and the total latency."""
    return await asyncio.to_thread(_get, url, verify, allowed, timeout)


def _get(url: str, verify: bool, allowed: Allowed, timeout: float) -> dict[str, Any]:
    import http.client  # loaded with the first check: an idle agent does not hold it

    started = time.monotonic()
    redirects: list[dict[str, Any]] = []
    current = url
    while True:
        remaining = timeout - (time.monotonic() - started)
        if remaining <= 0:
            raise TimeoutError
        try:
            status, reason, location = _request(current, verify, remaining)
        except http.client.HTTPException as exc:
            return {"redirects": redirects, "error": f"bad HTTP response: {type(exc).__name__}"}
        except OSError as exc:
            if not redirects:
                raise
            return {"redirects": redirects, "error": describe_error(exc)}  # a later hop
        result = {"status": status, "reason": reason, "redirects": redirects,
                  "latency_seconds": round(time.monotonic() - started, 6)}
        if status not in REDIRECTS or location is None:
            return result
        following = urljoin(current, location)
        refusal = _refuse_redirect(following, allowed, len(redirects))
        if refusal is not None:
            return {**result, "location": redact_text(following)[0], "error": refusal}
        redirects.append({"status": status, "location": redact_text(following)[0]})
        current = following


def _refuse_redirect(url: str, allowed: Allowed, followed: int) -> str | None:
    if followed >= MAX_REDIRECTS:
        return f"more than {MAX_REDIRECTS} redirects"
    target = http_target(url)
    if isinstance(target, str):
        return f"redirect to a URL that {target}"
    if not allowed(*target):
        return f"redirect to {target[0]}:{target[1]}, not allowed by [diag] connect_allow"
    return None


def _request(url: str, verify: bool, timeout: float) -> tuple[int, str, str | None]:
    import http.client

    parts = urlsplit(url)
    host, port = parts.hostname or "", parts.port
    connection: http.client.HTTPConnection
    if parts.scheme == "https":
        connection = http.client.HTTPSConnection(host, port, timeout=timeout,
                                                 context=_context(verify))
    else:
        connection = http.client.HTTPConnection(host, port, timeout=timeout)
    path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    try:
        connection.request("GET", path, headers={
            "User-Agent": "rmaint-agent", "Accept": "*/*", "Connection": "close"})
        response = connection.getresponse()
        return response.status, response.reason, response.getheader("Location")
    finally:
        connection.close()  # the body is never read


def _context(verify: bool) -> ssl.SSLContext:
    context = ssl.create_default_context()
    if not verify:
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    return context


def describe_error(exc: OSError) -> str:
    """A short text for a network error (no stack, no object reprs)."""
    if isinstance(exc, ssl.SSLCertVerificationError):
        return f"certificate verify failed: {exc.verify_message}"
    if isinstance(exc, ssl.SSLError):
        return f"TLS error: {exc.reason or exc}"
    if isinstance(exc, socket.gaierror):
        return f"name resolution failed: {exc.strerror}"
    if isinstance(exc, TimeoutError):
        return "timed out"
    if exc.errno:
        return os.strerror(exc.errno)
    return str(exc)[:200] or type(exc).__name__
