"""The client's certificate validity: x509's reading, remembered only for the exact bytes."""

from __future__ import annotations

import datetime as dt
import json
import time
from pathlib import Path

import pytest
from cryptography import x509

from controller.client._validity import SUFFIX, read_validity
from pki import certs
from pki.identity import Identity

KEY = certs.generate_key()
NOW = time.time()
CA = certs.create_ca(KEY, "example.test", now=NOW)


def leaf(hours: float) -> x509.Certificate:
    return certs.issue(KEY, CA, certs.generate_key().public_key(),
                       Identity("example.test", "engineer", "alice"), now=NOW,
                       lifetime=dt.timedelta(hours=hours))


def by_x509(cert: x509.Certificate) -> tuple[float, float]:
    return cert.not_valid_before_utc.timestamp(), cert.not_valid_after_utc.timestamp()


@pytest.fixture
def cert_path(tmp_path: Path) -> Path:
    return tmp_path / "identity.crt"


def test_the_window_is_the_one_x509_reads_and_is_kept_with_the_bytes_hash(
        cert_path: Path) -> None:
    cert = leaf(12)
    cert_path.write_bytes(b"leading text\n" + certs.cert_pem(cert) + certs.cert_pem(CA))
    assert read_validity(cert_path) == by_x509(cert)  # the first certificate in the file
    kept = json.loads((cert_path.parent / (cert_path.name + SUFFIX)).read_text())
    assert (kept["not_before"], kept["not_after"]) == by_x509(cert)


def test_the_kept_window_answers_while_the_certificate_is_the_same_bytes(
        cert_path: Path) -> None:
    cert_path.write_bytes(certs.cert_pem(leaf(12)))
    read_validity(cert_path)
    sidecar = cert_path.parent / (cert_path.name + SUFFIX)
    kept = json.loads(sidecar.read_text())
    sidecar.write_text(json.dumps({**kept, "not_after": 123.0}))
    assert read_validity(cert_path) == (kept["not_before"], 123.0)  # no x509 read


def test_a_replaced_certificate_is_read_again(cert_path: Path) -> None:
    cert_path.write_bytes(certs.cert_pem(leaf(12)))
    read_validity(cert_path)
    renewed = leaf(24)
    cert_path.write_bytes(certs.cert_pem(renewed))
    assert read_validity(cert_path) == by_x509(renewed)


@pytest.mark.parametrize("damage", [b"", b"{", b"[]", b'{"sha256": 1}', b"\xff\xfe",
                                    b'{"sha256": "x", "not_before": 1, "not_after": 2}'])
def test_a_damaged_or_foreign_record_is_ignored(cert_path: Path, damage: bytes) -> None:
    cert = leaf(12)
    cert_path.write_bytes(certs.cert_pem(cert))
    (cert_path.parent / (cert_path.name + SUFFIX)).write_bytes(damage)
    assert read_validity(cert_path) == by_x509(cert)


def test_a_home_that_cannot_be_written_still_answers(cert_path: Path) -> None:
    cert = leaf(12)
    cert_path.write_bytes(certs.cert_pem(cert))
    (cert_path.parent / (cert_path.name + SUFFIX)).mkdir()  # the record cannot be written
    assert read_validity(cert_path) == by_x509(cert)
    assert sorted(p.name for p in cert_path.parent.iterdir()) == [cert_path.name,
                                                                  cert_path.name + SUFFIX]


@pytest.mark.parametrize("text", [b"", b"hello",
                                  b"-----BEGIN CERTIFICATE-----\n!!!!\n-----END CERTIFICATE-----\n"])
def test_what_is_not_a_certificate_gets_the_x509_error(cert_path: Path, text: bytes) -> None:
    cert_path.write_bytes(text)
    with pytest.raises(ValueError) as x509_error:
        x509.load_pem_x509_certificate(text)
    with pytest.raises(ValueError) as ours:
        read_validity(cert_path)
    assert str(ours.value) == str(x509_error.value)


def test_an_unreadable_file_raises_oserror(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError):
        read_validity(tmp_path / "absent.crt")


@pytest.mark.parametrize("value", ["NaN", "Infinity", "-Infinity"])
def test_a_record_that_is_not_a_finite_time_is_ignored(cert_path: Path, value: str) -> None:
    cert = leaf(12)
    cert_path.write_bytes(certs.cert_pem(cert))
    read_validity(cert_path)
    sidecar = cert_path.parent / (cert_path.name + SUFFIX)
    kept = json.loads(sidecar.read_text())
    sidecar.write_text(json.dumps(kept).replace(str(kept["not_after"]), value))
    assert read_validity(cert_path) == by_x509(cert)
