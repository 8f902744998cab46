"""Certificate renewal without interruption, and locks that outlive an agent restart.

One fresh direct-mode deployment. Short-lived certificates are made in the test with the
deployment CA's key (as a test may act with any party's files): issued "now" with a
lifetime of two minutes, they are past half-life at once (certificates are backdated five
minutes), so renewal is due as soon as their holder looks.
"""

from __future__ import annotations

import datetime as dt
import json
import socket
import sqlite3
import ssl
import time
from collections.abc import Callable
from typing import Any

import grpc
import pytest
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec

import permissions as p
from demo.deployment import TRUST_DOMAIN, wait_until
from pki.certs import cert_pem, generate_key, issue, make_csr
from pki.files import read_cert, read_ec_key
from pki.identity import Identity
from rmaint.v1 import controller_pb2 as pb
from rmaint.v1 import controller_pb2_grpc as rpc
from tests.integration.e2e.conftest import (
    AGENT_ID,
    E2E,
    ENGINEER,
    REFUSED,
    RPC_TIMEOUT,
    SERVER_NAMES,
    Granted,
    one_error_line,
    refusal,
)

SHORT = dt.timedelta(minutes=2)


@pytest.fixture(scope="module")
def fresh(deployment_factory: Callable[..., E2E]) -> tuple[E2E, Granted]:
    e2e = deployment_factory("direct")
    return e2e, e2e.grant_session()


def _short_cert(e2e: E2E, public_key: Any, identity: Identity) -> x509.Certificate:
    return issue(e2e.ca_key(), read_cert(e2e.d.controller_home / "ca.crt"), public_key,
                 identity, now=time.time(), lifetime=SHORT)


def _agent_proc(e2e: E2E) -> Any:
    return next(proc for proc in e2e.d.processes if "rmagent" in str(proc.args))


def _served_serial(e2e: E2E) -> int:
    """The serial of the certificate the agent's mTLS server presents on a new connection."""
    home = e2e.d.controller_home
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.load_verify_locations(cafile=str(home / "ca.crt"))
    context.load_cert_chain(str(home / "controller.crt"), str(home / "controller.key"))
    context.set_alpn_protocols(["h2"])
    with socket.create_connection(("127.0.0.1", e2e.d.agent_port), timeout=10) as raw, \
            context.wrap_socket(raw, server_hostname=SERVER_NAMES["agent"]) as tls:
        der = tls.getpeercert(binary_form=True)
    assert der is not None
    return x509.load_der_x509_certificate(der).serial_number


def test_the_agent_renews_at_half_life_and_serves_the_new_certificate(
        fresh: tuple[E2E, Granted]) -> None:
    e2e, granted = fresh
    d = e2e.d
    e2e.still_serving(granted)
    cert_path = d.agent_home / "agent.crt"
    key_before = (d.agent_home / "agent.key").read_bytes()
    short = _short_cert(e2e, e2e.agent_public_key(), Identity(TRUST_DOMAIN, "agent", AGENT_ID))
    d.stop(_agent_proc(e2e))
    cert_path.write_bytes(cert_pem(short))
    mark = e2e.agent_daemon_log.mark()
    d.start_agent()
    pid = _agent_proc(e2e).pid
    renewed = e2e.agent_daemon_log.wait_for(mark, lambda r: r.get("event") == "cert.renewed",
                                            timeout=15)
    assert renewed is not None
    new = read_cert(cert_path)
    assert new.serial_number != short.serial_number
    assert format(new.serial_number, "x") == renewed["serial"]
    assert new.not_valid_after_utc - new.not_valid_before_utc > dt.timedelta(days=29)
    assert (d.agent_home / "agent.key").read_bytes() == key_before  # the key never changes
    assert cert_path.stat().st_mode & 0o777 == 0o644
    # The running server presents the new certificate: no restart.
    wait_until(lambda: _served_serial(e2e) == new.serial_number, "the new certificate", 5)
    assert _agent_proc(e2e).pid == pid and _agent_proc(e2e).poll() is None
    e2e.still_serving(granted)  # the engineer's session goes on across it


def test_rmctl_renews_past_half_life_and_grants_stay_valid(fresh: tuple[E2E, Granted]) -> None:
    e2e, granted = fresh
    d = e2e.d
    cert_path = d.engineer_home / "identity.crt"
    key = e2e.engineer_key().public_key()
    assert isinstance(key, ec.EllipticCurvePublicKey)
    short = _short_cert(e2e, key, Identity(TRUST_DOMAIN, "engineer", ENGINEER))
    cert_path.write_bytes(cert_pem(short))
    d.engineer("access", "list", "--json")  # any command renews first
    renewed = read_cert(cert_path)
    assert renewed.serial_number != short.serial_number
    assert renewed.not_valid_after_utc - renewed.not_valid_before_utc > dt.timedelta(hours=11)
    explicit = d.json(d.engineer("renew", "--json"))
    assert explicit["old_serial"] == format(renewed.serial_number, "x")
    assert explicit["serial"] == format(read_cert(cert_path).serial_number, "x")
    e2e.still_serving(granted)  # the grant names the key, not the certificate
    # Each renewal is in the controller's tamper-evident log.
    db = sqlite3.connect(f"{(d.controller_home / 'controller.db').absolute().as_uri()}?mode=ro",
                         uri=True)
    try:
        records = [json.loads(r) for (r,) in db.execute("SELECT record FROM audit_leaves")]
    finally:
        db.close()
    renewals = [r for r in records if r["kind"] == "certificate.renewed"
                and r["actor"].endswith(f"/engineer/{ENGINEER}")]
    assert len(renewals) == 2, renewals


def test_a_locked_engineer_key_or_agent_cannot_renew(fresh: tuple[E2E, Granted]) -> None:
    e2e, granted = fresh
    d = e2e.d
    engineer_key = p.key_id(e2e.engineer_key().public_key())
    lock = d.json(d.rmctl("lock", "add", f"engineer-key:{engineer_key}", "--reason",
                          "laptop lost", "--json"))
    try:
        assert "renewal refused or failed" in one_error_line(d.engineer("renew", check=False))
    finally:
        d.rmctl("lock", "remove", lock["lock_id"])
    d.engineer("renew")
    lock = d.json(d.rmctl("lock", "add", f"agent:{AGENT_ID}", "--reason", "compromised",
                          "--json"))
    try:
        csr = make_csr(read_ec_key(d.agent_home / "agent.key"),
                       Identity(TRUST_DOMAIN, "agent", AGENT_ID))
        with e2e.channel("controller", "agent") as channel:
            error = refusal(lambda: rpc.RenewalServiceStub(channel).RenewCertificate(
                pb.RenewCertificateRequest(csr_pem=csr), timeout=RPC_TIMEOUT))
        assert (error.code(), error.details()) == (grpc.StatusCode.PERMISSION_DENIED, REFUSED)
    finally:
        d.rmctl("lock", "remove", lock["lock_id"])
    # Nobody renews for another key than the certificate's, or as another role.
    with e2e.channel("controller", "agent") as channel:
        error = refusal(lambda: rpc.RenewalServiceStub(channel).RenewCertificate(
            pb.RenewCertificateRequest(csr_pem=make_csr(
                generate_key(), Identity(TRUST_DOMAIN, "agent", AGENT_ID))),
            timeout=RPC_TIMEOUT))
    assert error.code() == grpc.StatusCode.PERMISSION_DENIED
    with e2e.channel("controller", "admin") as channel:
        error = refusal(lambda: rpc.RenewalServiceStub(channel).RenewCertificate(
            pb.RenewCertificateRequest(csr_pem=b"x"), timeout=RPC_TIMEOUT))
    assert error.code() == grpc.StatusCode.PERMISSION_DENIED
    e2e.still_serving(granted)


def test_an_agent_restart_keeps_its_locks(fresh: tuple[E2E, Granted]) -> None:
    """Even with the controller gone, the restarted agent refuses what its kept set locks."""
    e2e, granted = fresh
    d = e2e.d
    lock = d.json(d.rmctl("lock", "add", f"grant:{granted.grant_id}", "--reason", "audit",
                          "--json"))
    d.stop()  # the controller and the agent
    d.start_agent()
    kept = d.json(d.rmagent("locks", "--json"))
    assert [item["lock_id"] for item in kept["locks"]] == [lock["lock_id"]]
    envelope = e2e.session_operation(granted)
    mark = e2e.agent_log_mark()
    error = refusal(lambda: e2e.execute(envelope))
    assert (error.code(), error.details()) == (grpc.StatusCode.PERMISSION_DENIED, REFUSED)
    e2e.assert_denied(envelope, mark, "locked")
