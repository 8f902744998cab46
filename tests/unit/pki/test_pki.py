"""Identities, certificates, key files and join tokens."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest
from cryptography import x509

from pki import certs, files
from pki.identity import Identity, IdentityError
from pki.token import JoinToken, TokenError

NOW = 1_780_000_000.0


@pytest.mark.parametrize("uri", ["spiffe://example.test/controller",
                                 "spiffe://example.test/agent/web-1",
                                 "spiffe://example.test/engineer/alice",
                                 "spiffe://example.test/auditor/bob"])
def test_identity_round_trip(uri: str) -> None:
    assert Identity.parse(uri).uri == uri


@pytest.mark.parametrize("uri", ["https://example.test/agent/x", "spiffe://example.test/agent",
                                 "spiffe://example.test/root/x", "spiffe://example.test/agent/../x",
                                 "spiffe://EXAMPLE/agent/x", "spiffe://example.test/agent/a/b"])
def test_identity_rejects(uri: str) -> None:
    with pytest.raises(IdentityError):
        Identity.parse(uri)


def test_issued_certificate_carries_role_and_lifetime() -> None:
    ca_key = certs.generate_key()
    ca = certs.create_ca(ca_key, "example.test", now=NOW)
    key = certs.generate_key()
    who = Identity("example.test", "engineer", "alice")
    cert = certs.issue(ca_key, ca, key.public_key(), who, now=NOW,
                       lifetime=certs.ENGINEER_CERT_LIFETIME)
    assert certs.identity_of(cert) == who
    lifetime = cert.not_valid_after_utc.timestamp() - NOW
    assert lifetime == certs.ENGINEER_CERT_LIFETIME.total_seconds()
    cert.verify_directly_issued_by(ca)
    dns = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert "alice.engineer.example.test" in dns.get_values_for_type(x509.DNSName)


def test_csr_with_bad_signature_is_refused() -> None:
    key = certs.generate_key()
    pem = certs.make_csr(key, Identity("example.test", "agent", "web-1"))
    assert certs.csr_public_key(pem).public_numbers() == key.public_key().public_numbers()
    with pytest.raises(certs.CertificateError):
        certs.csr_public_key(b"-----BEGIN CERTIFICATE REQUEST-----\nAAAA\n-----END CERTIFICATE REQUEST-----\n")


def test_private_keys_are_written_0600(tmp_path: Path) -> None:
    path = tmp_path / "deep" / "agent.key"
    files.write_key(path, certs.generate_key())
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert files.read_ec_key(path)
    assert not list(path.parent.glob(".*.tmp"))


def test_join_token_round_trip_and_damage() -> None:
    token = JoinToken("127.0.0.1:7444", "sha256:" + "ab" * 32, "example.test", "s3cret")
    assert JoinToken.decode(token.encode()) == token
    assert JoinToken.decode("  " + token.encode() + "\n") == token
    for bad in ["", "rmj1.", "rmj1.!!!!", "xyz." + token.encode()[5:], token.encode()[:-8],
                "rmj1." + "A" * 2000]:
        with pytest.raises(TokenError):
            JoinToken.decode(bad)


def test_file_errors_read_as_people_read_them(tmp_path: Path) -> None:
    missing = tmp_path / "nope" / "ca.crt"
    with pytest.raises(OSError) as failed:
        missing.read_bytes()
    assert files.reason(failed.value) == f"No such file or directory: {missing}"
    assert files.reason(failed.value, with_file=False) == "No such file or directory"
    assert files.reason(OSError("no errno")) == "no errno"
    assert files.reason(ValueError("not PEM")) == "not PEM"
