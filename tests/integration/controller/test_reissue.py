"""rmctl reissue: the controller's and the administrator's certificates issued again, then
served and accepted with nothing else changed."""

from __future__ import annotations

import datetime as dt
import json
import socket
import ssl
import subprocess
import sys
import time
from pathlib import Path

import pytest
from cryptography import x509

from controller.config import HomeFiles
from controller.errors import ConfigError
from controller.reissue import reissue
from controller.server import serve
from controller.setup import init_deployment
from pki.certs import SERVICE_CERT_LIFETIME, generate_key, identity_of
from pki.files import read_cert, write_key
from pki.identity import Identity
from pki.tls import TlsFiles, secure_channel
from rmaint.v1 import controller_pb2 as pb
from rmaint.v1 import controller_pb2_grpc as rpc
from tests.integration.controller._support import TD

DAY = 86400.0


def sans(cert: x509.Certificate) -> set[str]:
    names = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    return {str(n.value) for n in names}


@pytest.fixture
def old_home(tmp_path: Path) -> Path:
    """A deployment made 360 days ago: its certificates end in five days."""
    home = tmp_path / "ctl"
    init_deployment(home, TD, listen="127.0.0.1:0", enroll_listen="127.0.0.1:0",
                    sans=("ctl.example.test", "10.0.0.5"), now=time.time() - 360 * DAY)
    return home


async def test_reissued_certificates_keep_keys_and_names_and_are_served(old_home: Path) -> None:
    files = HomeFiles.of(old_home)
    old_server, old_admin = read_cert(files.cert), read_cert(files.admin_cert)
    now = time.time()
    done = reissue(old_home, now=now)
    server, admin = read_cert(files.cert), read_cert(files.admin_cert)
    for old, new in ((old_server, server), (old_admin, admin)):
        assert new.public_key() == old.public_key() and identity_of(new) == identity_of(old)
        assert sans(new) == sans(old) and new.serial_number != old.serial_number
        assert new.not_valid_after_utc.timestamp() == pytest.approx(
            now + SERVICE_CERT_LIFETIME.total_seconds(), abs=2)
    assert {"ctl.example.test", "10.0.0.5", "localhost", "127.0.0.1"} <= sans(server)
    assert done.controller_until == server.not_valid_after_utc.timestamp()
    assert files.cert.read_bytes().count(b"BEGIN CERTIFICATE") == 2  # leaf, then the CA

    running = await serve(old_home, log_to_stderr=False)
    try:
        admin_files = TlsFiles(files.admin_key, files.admin_cert, files.ca_cert)
        async with secure_channel(f"127.0.0.1:{running.port}", admin_files,
                                  Identity(TD, "controller")) as channel:
            reply = await rpc.AdminServiceStub(channel).ListCustomers(
                pb.ListCustomersRequest(), timeout=10)
        assert list(reply.customers) == []
        assert served(running.port, files).serial_number == server.serial_number
    finally:
        await running.stop()


def served(port: int, files: HomeFiles) -> x509.Certificate:
    """The certificate the controller presents on ``port``, as a TLS client sees it."""
    context = ssl.create_default_context(cafile=str(files.ca_cert))
    context.check_hostname = False
    context.load_cert_chain(str(files.admin_cert), str(files.admin_key))
    with socket.create_connection(("127.0.0.1", port), timeout=10) as raw, \
            context.wrap_socket(raw) as tls:
        der = tls.getpeercert(binary_form=True)
    assert der is not None
    return x509.load_der_x509_certificate(der)


def test_a_certificate_never_outlives_the_ca(old_home: Path) -> None:
    files = HomeFiles.of(old_home)
    ca_end = read_cert(files.ca_cert).not_valid_after_utc
    near_the_end = (ca_end - dt.timedelta(days=30)).timestamp()
    done = reissue(old_home, now=near_the_end)
    assert done.controller_until == done.admin_until == pytest.approx(ca_end.timestamp(), abs=1)
    with pytest.raises(ConfigError, match="cannot issue certificates any more"):
        reissue(old_home, now=ca_end.timestamp())


def test_files_that_do_not_belong_together_are_refused(old_home: Path,
                                                        tmp_path: Path) -> None:
    files = HomeFiles.of(old_home)
    before = files.cert.read_bytes()
    write_key(files.key, generate_key())  # not the key the certificate was issued for
    with pytest.raises(ConfigError, match="does not belong to this home's controller key"):
        reissue(old_home, now=time.time())
    assert files.cert.read_bytes() == before  # nothing written
    with pytest.raises(ConfigError, match="not a controller home"):
        reissue(tmp_path / "empty", now=time.time())


def test_rmctl_reissue_says_until_when(old_home: Path, tmp_path: Path) -> None:
    rmctl = Path(sys.executable).parent / "rmctl"
    done = subprocess.run([str(rmctl), "--home", str(old_home), "reissue", "--json"],
                          capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode == 0, done.stderr
    shown = json.loads(done.stdout)
    assert shown["controller_until"] == int(
        read_cert(HomeFiles.of(old_home).cert).not_valid_after_utc.timestamp())
    refused = subprocess.run([str(rmctl), "--home", str(tmp_path / "none"), "reissue"],
                             capture_output=True, text=True, timeout=60, check=False)
    assert refused.returncode == 1 and refused.stderr.startswith("error: ")
    assert "is not a controller home" in refused.stderr and refused.stderr.count("\n") == 1


async def test_the_controller_says_at_start_when_its_certificate_ends_soon(
        old_home: Path, caplog: pytest.LogCaptureFixture) -> None:
    running = await serve(old_home, log_to_stderr=False)
    await running.stop()
    ending = [r for r in caplog.records if r.getMessage() == "certificate.ending"]
    assert sorted(r.fields["role"] for r in ending) == ["admin", "controller"]  # type: ignore[attr-defined]
    assert "reissue" in ending[0].fields["action"]  # type: ignore[attr-defined]
    caplog.clear()
    reissue(old_home, now=time.time())
    running = await serve(old_home, log_to_stderr=False)
    await running.stop()
    assert not [r for r in caplog.records if r.getMessage() == "certificate.ending"]


def test_a_ca_key_that_is_not_the_ca_certificates_is_refused(old_home: Path) -> None:
    files = HomeFiles.of(old_home)
    before = files.cert.read_bytes(), files.admin_cert.read_bytes()
    write_key(files.ca_key, generate_key())  # a backup put back from another deployment
    with pytest.raises(ConfigError, match=r"ca\.key is not the key of ca\.crt"):
        reissue(old_home, now=time.time())
    assert (files.cert.read_bytes(), files.admin_cert.read_bytes()) == before


def test_a_certificate_from_another_ca_is_refused(old_home: Path, tmp_path: Path) -> None:
    other = tmp_path / "other"
    init_deployment(other, TD, listen="127.0.0.1:0", enroll_listen="127.0.0.1:0")
    files, foreign = HomeFiles.of(old_home), HomeFiles.of(other)
    for name in ("admin_key", "admin_cert"):  # the key and certificate of another CA's admin
        getattr(files, name).write_bytes(getattr(foreign, name).read_bytes())
    before = files.cert.read_bytes()
    with pytest.raises(ConfigError, match="the admin certificate is not signed by this home's CA"):
        reissue(old_home, now=time.time())
    assert files.cert.read_bytes() == before
