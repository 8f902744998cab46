"""Gateway certificates: what they say, that OpenSSH and asyncssh read them, and every
reason the gateway declines one (time is a parameter)."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import asyncssh
import pytest
from cryptography.hazmat.primitives.asymmetric import ec, ed25519

from controller.gateway.userca import (
    TICKET_EXTENSION,
    USER_CA_NAME,
    CertificateRefused,
    UserCA,
    check,
)
from controller.gateway.usercert import (
    CertificateInvalid,
    is_certificate,
    issue,
    openssh_line,
    parse,
    parse_line,
    ssh_public_blob,
    text_extension,
)

NOW = 1_800_000_000.0
TICKET = "0a" * 16


@pytest.fixture
def ca(tmp_path: Path) -> UserCA:
    return UserCA.load_or_create(tmp_path)


def engineer_key() -> ec.EllipticCurvePublicKey:
    return ec.generate_private_key(ec.SECP256R1()).public_key()


def issued(ca: UserCA, *, agent: str = "web-1", seconds: float = 30) -> str:
    return ca.issue(engineer_key(), agent_id=agent, ticket=TICKET, key_id="alice/S-1",
                    now=NOW, valid_before=NOW + seconds).line


def test_a_certificate_names_the_agent_carries_the_ticket_and_lives_briefly(
        ca: UserCA) -> None:
    subject = engineer_key()
    made = ca.issue(subject, agent_id="web-1", ticket=TICKET, key_id="alice/S-1", now=NOW,
                    valid_before=NOW + 600)
    cert = parse_line(made.line)
    assert cert.algorithm == "ecdsa-sha2-nistp256-cert-v01@openssh.com"
    assert cert.subject == ssh_public_blob(subject)
    assert (cert.principals, cert.key_id, cert.cert_type) == (("web-1",), "alice/S-1", 1)
    assert (cert.valid_after, cert.valid_before) == (int(NOW), int(NOW) + 60)  # capped
    assert (made.valid_after, made.valid_before) == (cert.valid_after, cert.valid_before)
    assert cert.extension_text(TICKET_EXTENSION) == TICKET
    assert list(cert.extensions) == ["permit-pty", TICKET_EXTENSION]  # no forwarding
    assert cert.critical_options == {}
    assert check(ca.public, cert, "web-1", NOW + 1) == TICKET


def test_the_ca_key_is_made_once_and_private(tmp_path: Path) -> None:
    first = UserCA.load_or_create(tmp_path)
    assert (tmp_path / USER_CA_NAME).stat().st_mode & 0o777 == 0o600
    assert UserCA.load_or_create(tmp_path).public == first.public


def test_asyncssh_reads_it_as_a_valid_user_certificate(ca: UserCA) -> None:
    cert = asyncssh.import_certificate(issued(ca))  # verifies the CA signature
    assert isinstance(cert, asyncssh.SSHCertificate)
    blob = parse_line(issued(ca)).signature_key
    assert blob == ssh_public_blob(ca.public)


@pytest.mark.skipif(shutil.which("ssh-keygen") is None, reason="needs OpenSSH's ssh-keygen")
def test_openssh_reads_it_with_the_ticket_extension(ca: UserCA, tmp_path: Path) -> None:
    path = tmp_path / "id-cert.pub"
    path.write_text(issued(ca) + "\n")
    shown = subprocess.run(["ssh-keygen", "-L", "-f", str(path)], capture_output=True,
                           text=True, check=True, env={**os.environ, "TZ": "UTC"}).stdout
    assert "user certificate" in shown and "web-1" in shown
    assert TICKET_EXTENSION in shown and "permit-pty" in shown
    assert "permit-port-forwarding" not in shown


@pytest.mark.parametrize(("username", "at", "reason"), [
    ("web-2", NOW + 1, "cert-principal-mismatch"),
    ("web-1", NOW + 30, "cert-expired"),
    ("web-1", NOW - 5, "cert-not-yet-valid"),
])
def test_the_gateway_declines_it_for_another_agent_or_time(
        ca: UserCA, username: str, at: float, reason: str) -> None:
    with pytest.raises(CertificateRefused) as refused:
        check(ca.public, parse_line(issued(ca)), username, at)
    assert refused.value.reason == reason


def test_another_cas_certificate_is_declined(ca: UserCA, tmp_path: Path) -> None:
    other = UserCA.load_or_create(tmp_path / "other")
    with pytest.raises(CertificateRefused) as refused:
        check(ca.public, parse_line(issued(other)), "web-1", NOW + 1)
    assert refused.value.reason == "cert-ca-unknown"


def test_a_tampered_certificate_is_declined(ca: UserCA) -> None:
    cert = parse_line(issued(ca))
    forged = cert.signed.replace(b"web-1", b"web-2") + _string(cert.signature)
    with pytest.raises(CertificateRefused) as refused:
        check(ca.public, parse(forged), "web-2", NOW + 1)
    assert refused.value.reason == "cert-signature-invalid"


@pytest.mark.parametrize(("extensions", "reason"), [
    ({}, "cert-no-ticket"),
    ({TICKET_EXTENSION: text_extension("not-a-ticket")}, "cert-no-ticket"),
    ({TICKET_EXTENSION: b"\xff"}, "cert-no-ticket"),
])
def test_a_certificate_without_a_ticket_is_declined(
        extensions: dict[str, bytes], reason: str) -> None:
    key = ed25519.Ed25519PrivateKey.generate()
    blob = issue(key, ssh_public_blob(engineer_key()), key_id="x", principals=("web-1",),
                 valid_after=int(NOW), valid_before=int(NOW) + 30, extensions=extensions)
    with pytest.raises(CertificateRefused) as refused:
        check(key.public_key(), parse(blob), "web-1", NOW + 1)
    assert refused.value.reason == reason


@pytest.mark.parametrize("blob", [
    b"", b"\x00\x00\x00\x07ssh-rsa", b"\x00\x00\x00\x28ssh-ed25519-cert-v01@openssh.com",
    b"\x00\x00\x00\x20ssh-dss-cert-v01@openssh.com" + b"\x00" * 40,
])
def test_malformed_certificates_are_refused_cleanly(blob: bytes) -> None:
    with pytest.raises(CertificateInvalid):
        parse(blob)


def test_only_certificate_algorithms_are_taken_for_certificates(ca: UserCA) -> None:
    assert is_certificate(parse_line(issued(ca)).signed)
    assert not is_certificate(ssh_public_blob(engineer_key()))
    assert not is_certificate(b"\x00\x00")


def test_a_line_round_trips(ca: UserCA) -> None:
    cert = parse_line(issued(ca))
    again = parse_line(openssh_line(cert.signed + _string(cert.signature), "c"))
    assert again == cert


def _string(data: bytes) -> bytes:
    return len(data).to_bytes(4, "big") + data


def test_an_empty_validity_window_is_not_issued(ca: UserCA) -> None:
    with pytest.raises(ValueError, match="empty"):
        ca.issue(engineer_key(), agent_id="web-1", ticket=TICKET, key_id="k", now=NOW,
                 valid_before=NOW + 0.5)
