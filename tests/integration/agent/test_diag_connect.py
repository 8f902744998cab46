"""diag.connect against servers started here on 127.0.0.1: TCP, HTTP, HTTPS and TLS."""

from __future__ import annotations

import asyncio
import datetime as dt
import ssl
import threading
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509

from agent.catalogue import CATALOGUE, OperationSpec, build_catalogue
from agent.diag.policy import DiagConfig
from agent.errors import InvalidParams
from pki import certs
from pki.files import write_key, write_public
from pki.identity import Identity


def free_port() -> int:
    import socket
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


CLOSED = free_port()


class Handler(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        port = self.server.server_address[1]
        routes = {"/redirect": "/ok", "/loop": "/loop", "/away": f"http://127.0.0.1:{CLOSED}/",
                  "/creds": f"http://u:p@127.0.0.1:{port}/ok", "/token": "/ok?token=s3cr3t"}
        if self.path in routes:
            self.send_response(302)
            self.send_header("Location", routes[self.path])
            self.end_headers()
            return
        self.send_response(200 if self.path.startswith("/ok") else 404)
        self.send_header("Content-Length", "100000000")
        self.end_headers()
        self.wfile.flush()
        if self.path == "/ok/slow-body":
            time.sleep(2)  # the check must not wait for the body
        try:
            self.wfile.write(b"x" * 65536)
        except OSError:
            pass  # the client went away without reading: as it should

    def log_message(self, format: str, *args: Any) -> None:
        pass


@dataclass
class Servers:
    http: int
    https: int
    tcp: int
    silent: int
    cert: x509.Certificate

    def diag(self) -> DiagConfig:
        ports = (self.http, self.https, self.tcp, self.silent, CLOSED)
        return DiagConfig(connect_allow=(*(f"127.0.0.1:{p}" for p in ports),
                                         f"localhost:{self.http}"))


def _serve(server: ThreadingHTTPServer) -> Iterator[int]:
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    try:
        yield server.server_address[1]
    finally:
        server.shutdown()
        server.server_close()


def _tls_files(tmp_path: Path) -> tuple[ssl.SSLContext, x509.Certificate]:
    ca_key = certs.generate_key()
    ca = certs.create_ca(ca_key, "example.test", now=time.time())
    key = certs.generate_key()
    cert = certs.issue(ca_key, ca, key.public_key(), Identity("example.test", "controller"),
                       now=time.time(), lifetime=dt.timedelta(days=30),
                       ip_addresses=("127.0.0.1",), dns_names=("localhost",))
    write_key(tmp_path / "tls.key", key)
    write_public(tmp_path / "tls.crt", certs.cert_pem(cert))
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(tmp_path / "tls.crt", tmp_path / "tls.key")
    return context, cert


@pytest.fixture
async def servers(tmp_path: Path) -> AsyncIterator[Servers]:
    context, cert = _tls_files(tmp_path)
    plain = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    secure = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    secure.socket = context.wrap_socket(secure.socket, server_side=True)
    held: list[asyncio.StreamWriter] = []
    tcp = await asyncio.start_server(lambda r, w: w.close(), "127.0.0.1", 0)
    silent = await asyncio.start_server(lambda r, w: held.append(w), "127.0.0.1", 0)  # mute
    http_ports, https_ports = _serve(plain), _serve(secure)
    try:
        yield Servers(next(http_ports), next(https_ports), tcp.sockets[0].getsockname()[1],
                      silent.sockets[0].getsockname()[1], cert)
    finally:
        for writer in held:
            writer.close()
        for server in (tcp, silent):
            server.close()
            await server.wait_closed()
        for ports in (http_ports, https_ports):
            ports.close()


async def check(servers: Servers, **params: Any) -> dict[str, Any]:
    catalogue: dict[str, OperationSpec] = build_catalogue(servers.diag())
    return await catalogue["diag.connect"].prepare(params)()


async def test_tcp_connect_and_its_failures(servers: Servers) -> None:
    ok = await check(servers, check="tcp", host="127.0.0.1", port=servers.tcp)
    assert ok["connected"] is True and ok["address"] == "127.0.0.1"
    assert 0 < ok["latency_seconds"] < 2
    refused = await check(servers, check="tcp", host="127.0.0.1", port=CLOSED)
    assert refused == {"check": "tcp", "host": "127.0.0.1", "port": CLOSED,
                       "error": "Connection refused"}
    with pytest.raises(InvalidParams, match="not allowed"):
        await check(servers, check="tcp", host="127.0.0.2", port=servers.tcp)


async def test_nothing_is_allowed_without_a_diag_section(servers: Servers) -> None:
    with pytest.raises(InvalidParams, match="connect_allow"):
        CATALOGUE["diag.connect"].prepare({"check": "tcp", "host": "127.0.0.1",
                                           "port": servers.tcp})


async def test_dns_resolution(servers: Servers) -> None:
    result = await check(servers, check="dns", name="localhost")
    assert result["resolved"] is True
    assert {"127.0.0.1", "::1"} & set(result["addresses"])
    with pytest.raises(InvalidParams, match="not allowed"):
        await check(servers, check="dns", name="example.org")


async def test_http_status_latency_and_redirects(servers: Servers) -> None:
    base = f"http://127.0.0.1:{servers.http}"
    ok = await check(servers, check="http", url=f"{base}/ok")
    assert (ok["status"], ok["reason"], ok["redirects"]) == (200, "OK", [])
    assert "body" not in ok and ok["latency_seconds"] > 0
    missing = await check(servers, check="http", url=f"{base}/nothing")
    assert missing["status"] == 404
    followed = await check(servers, check="http", url=f"{base}/redirect")
    assert followed["status"] == 200
    assert followed["redirects"] == [{"status": 302, "location": f"{base}/ok"}]
    looping = await check(servers, check="http", url=f"{base}/loop")
    assert looping["error"] == "more than 3 redirects" and len(looping["redirects"]) == 3
    away = await check(servers, check="http", url=f"{base}/away", timeout=2)
    assert away["error"] == "Connection refused"  # allowlisted, followed, and refused there
    assert away["redirects"] == [{"status": 302, "location": f"http://127.0.0.1:{CLOSED}/"}]
    creds = await check(servers, check="http", url=f"{base}/creds")
    assert "credentials" in creds["error"] and creds["status"] == 302
    token = await check(servers, check="http", url=f"{base}/token")
    assert token["redirects"] == [{"status": 302, "location": f"{base}/ok?token=***"}]


async def test_redirects_to_targets_not_allowlisted_are_not_followed(servers: Servers) -> None:
    narrow = DiagConfig(connect_allow=(f"127.0.0.1:{servers.http}",))
    base = f"http://127.0.0.1:{servers.http}"
    result = await build_catalogue(narrow)["diag.connect"].prepare(
        {"check": "http", "url": f"{base}/away"})()
    assert result["status"] == 302 and result["redirects"] == []
    assert result["error"] == f"redirect to 127.0.0.1:{CLOSED}, not allowed by [diag] connect_allow"


async def test_the_body_is_never_waited_for(servers: Servers) -> None:
    started = time.monotonic()
    result = await check(servers, check="http",
                         url=f"http://127.0.0.1:{servers.http}/ok/slow-body")
    assert result["status"] == 200 and time.monotonic() - started < 1.5


async def test_https_verifies_unless_told_not_to(servers: Servers) -> None:
    url = f"https://127.0.0.1:{servers.https}/ok"
    verified = await check(servers, check="http", url=url)
    assert verified["error"].startswith("certificate verify failed")
    unverified = await check(servers, check="http", url=url, verify=False)
    assert unverified["status"] == 200


async def test_tls_certificate_expiry(servers: Servers) -> None:
    result = await check(servers, check="tls", host="127.0.0.1", port=servers.https,
                         server_name="localhost")
    assert result["handshake"] is True and result["verified"] is False
    assert result["verify_error"]  # our CA is not in the host's trust store
    assert result["not_after_at"] == servers.cert.not_valid_after_utc.timestamp()
    assert result["expires_in_seconds"] == pytest.approx(30 * 86400, abs=120)
    assert result["expired"] is False and result["protocol"].startswith("TLS")
    assert "localhost" in result["dns_names"] and "127.0.0.1" in result["ip_addresses"]
    assert result["issuer"] == "CN=rmaint CA example.test,O=rmaint"


async def test_a_server_that_never_answers_times_out(servers: Servers) -> None:
    started = time.monotonic()
    result = await check(servers, check="tls", host="127.0.0.1", port=servers.silent,
                         timeout=0.3)
    assert result["error"] == "timed out after 0.3 s"
    assert time.monotonic() - started < 2
