"""Plain ``ssh -p PORT <agent>@gateway`` with a gateway certificate, with the real OpenSSH
client.

``rmctl ssh-cert`` saves a one-login certificate next to the engineer's identity key; the
stock client offers it and logs in as the agent id, no ticket in the username. Whatever
is wrong with a certificate (another principal, expired, its ticket used, another CA, a
key that is not the engineer's) the client sees the same refusal ("permission denied",
exit status 1) and the controller's log says why. One deployment for the module.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import grpc
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from controller.gateway.userca import TICKET_EXTENSION, USER_CA_NAME, UserCA
from controller.gateway.usercert import parse_line
from rmaint.v1 import controller_pb2 as pb
from rmaint.v1 import controller_pb2_grpc
from tests.integration.e2e.conftest import AGENT_ID, E2E, new_id, refusal
from tests.integration.e2e.test_shell import (
    SSH,
    ShellE2E,
    assert_refused,
    login_refusal,
    run_ssh,
    shell_grant,
    ssh_argv,
    wrapper_argv,
)
from tests.integration.e2e.test_shell import shell_deployment as shell_deployment  # fixture

pytestmark = pytest.mark.skipif(not Path(SSH).exists(), reason="needs the OpenSSH client")


def identity(e2e: ShellE2E) -> Path:
    return e2e.d.engineer_home / "identity.key"


def ssh_cert(e2e: ShellE2E, session_id: str, *options: str) -> dict[str, Any]:
    """``rmctl ssh-cert --json``: where it saved the certificate, for whom, until when."""
    return dict(e2e.d.json(e2e.d.engineer("ssh-cert", "--session", session_id, "--json",
                                          *options)))


def plain_argv(e2e: ShellE2E, login: str = AGENT_ID, key: Path | None = None) -> list[str]:
    """The stock client as an engineer types it: ``ssh -p PORT -i KEY login@host``, the
    certificate found as ``KEY-cert.pub``."""
    argv = ssh_argv(e2e, "unused", key or identity(e2e))[:-3]  # without "-l unused host"
    return [*argv, f"{login}@127.0.0.1"]


def refused_because(e2e: ShellE2E, mark: int) -> str:
    """The reason the controller logged for the refused login after ``mark``."""
    found = e2e.controller_log.wait_for(mark, lambda r: r.get("event") == "gateway.refused")
    assert found is not None, "no gateway.refused in the controller's log"
    return str(found["reason"])


def key_file(e2e: ShellE2E, name: str) -> tuple[Path, ec.EllipticCurvePrivateKey]:
    private = ec.generate_private_key(ec.SECP256R1())
    path = e2e.d.root / f"{name}-{new_id('')}.key"
    path.write_bytes(private.private_bytes(serialization.Encoding.PEM,
                                           serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    path.chmod(0o600)
    return path, private


def forged(ca: UserCA, key: ec.EllipticCurvePublicKey, ticket: str, path: Path) -> Path:
    """A certificate as the controller would make it, by ``ca``, for ``key``."""
    now = time.time()
    issued = ca.issue(key, agent_id=AGENT_ID, ticket=ticket, key_id="forged", now=now,
                      valid_before=now + 60)
    path.write_text(issued.line + "\n")
    return path


def ticket_in(cert_path: Path) -> str:
    ticket = parse_line(cert_path.read_text()).extension_text(TICKET_EXTENSION)
    assert ticket is not None
    return ticket


# -- a login that works ----------------------------------------------------------------------


def test_plain_ssh_with_the_certificate_runs_a_command_and_is_recorded(
        shell_deployment: ShellE2E) -> None:
    e2e = shell_deployment
    granted = shell_grant(e2e)
    saved = ssh_cert(e2e, granted.session_id)
    cert = Path(saved["certificate"])
    assert cert == e2e.d.engineer_home / "identity.key-cert.pub"  # where ssh -i finds it
    assert cert.stat().st_mode & 0o777 == 0o644
    assert saved["principal"] == AGENT_ID
    assert 0 < saved["valid_before"] - time.time() <= 60
    mark = e2e.agent_log_mark()
    done = run_ssh(plain_argv(e2e), b"echo cert-$((6*7)); exit 7\n")
    assert b"cert-42" in done.stdout, done
    assert done.returncode == 7, done
    events = e2e.session_log(granted.session_id).events
    assert [e.operation for e in events] == ["shell.open", "shell.recording"], events
    recorded = json.loads(events[1].params_json)
    assert (recorded["exit_status"], recorded["output_matches"]) == (7, True), recorded
    login = [e for e in e2e.agent_log(mark) if e["operation"] == "shell.login"]
    assert [(e["outcome"], e["session_id"]) for e in login] == [("allowed", granted.session_id)]


def test_rmctl_ssh_logs_in_as_the_plain_agent_id(shell_deployment: ShellE2E) -> None:
    e2e = shell_deployment
    granted = shell_grant(e2e)
    argv = wrapper_argv(e2e, granted.session_id)
    assert argv[argv.index("-l") + 1] == AGENT_ID
    key = Path(argv[argv.index("-i") + 1])
    cert = key.with_name(key.name + "-cert.pub")  # where the client finds it
    assert parse_line(cert.read_text()).principals == (AGENT_ID,)
    done = run_ssh(argv, b"echo wrapped-$((2*3)); exit 0\n")
    assert done.returncode == 0 and b"wrapped-6" in done.stdout, done


def test_a_ticket_username_still_works_beside_a_certificate(shell_deployment: ShellE2E) -> None:
    e2e = shell_deployment
    granted = shell_grant(e2e)
    told = e2e.d.engineer("ssh-cert", AGENT_ID, "--session", granted.session_id).stdout
    cert = e2e.d.engineer_home / "identity.key-cert.pub"  # which the client offers too
    assert f"certificate for {AGENT_ID}, one login until " in told and str(cert) in told
    assert (f"ssh -i {identity(e2e)} -o UserKnownHostsFile=KNOWN_HOSTS -p PORT "
            f"{AGENT_ID}@GATEWAY") in told
    assert "KNOWN_HOSTS: a file holding the line 'rmctl gateway-key' prints" in told
    envelope = e2e.session_operation(granted, "shell.open", params={"ttl": 30})
    ticket = json.loads(e2e.run_through_controller(envelope).result_json)["ticket"]
    done = run_ssh(ssh_argv(e2e, f"{AGENT_ID}+{ticket}"), b"exit 3\n")
    assert done.returncode == 3, done


# -- refusals: one message outward, the reason in the controller's log ----------------------


def test_a_certificate_for_another_agent_is_refused(shell_deployment: ShellE2E) -> None:
    e2e = shell_deployment
    granted = shell_grant(e2e)
    ssh_cert(e2e, granted.session_id)
    mark, agent_mark = e2e.controller_log.mark(), e2e.agent_log_mark()
    assert_refused(run_ssh(plain_argv(e2e, login="db-9"), b"exit 0\n"))
    assert refused_because(e2e, mark) == "cert-principal-mismatch"
    assert [e for e in e2e.agent_log(agent_mark) if e["operation"] == "shell.login"] == []
    assert run_ssh(plain_argv(e2e), b"exit 0\n").returncode == 0  # its own agent: fine


def test_an_expired_certificate_is_refused(shell_deployment: ShellE2E) -> None:
    e2e = shell_deployment
    granted = shell_grant(e2e)
    saved = ssh_cert(e2e, granted.session_id, "--valid", "1")
    assert saved["valid_before"] - saved["valid_after"] == 1
    time.sleep(max(0.0, saved["valid_before"] - time.time()) + 0.05)  # the certificate's life
    mark, agent_mark = e2e.controller_log.mark(), e2e.agent_log_mark()
    assert_refused(run_ssh(plain_argv(e2e), b"exit 0\n"))
    assert refused_because(e2e, mark) == "cert-expired"
    # Refused at the gateway: the agent never saw the ticket, which lives on.
    assert [e for e in e2e.agent_log(agent_mark) if e["operation"] == "shell.login"] == []


def test_a_certificate_whose_ticket_was_used_is_refused(shell_deployment: ShellE2E,
                                                        tmp_path: Path) -> None:
    e2e = shell_deployment
    granted = shell_grant(e2e)
    key = _copy_key(e2e, tmp_path)  # saved elsewhere: beside a copy of the identity key
    told = e2e.d.engineer("ssh-cert", "--session", granted.session_id,
                          "-o", f"{key}-cert.pub").stdout
    assert (f"ssh -i {key} -o UserKnownHostsFile=KNOWN_HOSTS -p PORT {AGENT_ID}@GATEWAY "
            f"(a copy of {identity(e2e)}") in told
    assert run_ssh(plain_argv(e2e, key=key), b"exit 0\n").returncode == 0
    mark, agent_mark = e2e.controller_log.mark(), e2e.agent_log_mark()
    assert_refused(run_ssh(plain_argv(e2e, key=key), b"exit 0\n"))
    assert refused_because(e2e, mark) == "agent-refused"
    assert login_refusal(e2e, agent_mark)["reason"] == "ticket-unknown"


def test_a_certificate_of_another_ca_is_refused(shell_deployment: ShellE2E,
                                                tmp_path: Path) -> None:
    e2e = shell_deployment
    granted = shell_grant(e2e)
    genuine = Path(ssh_cert(e2e, granted.session_id)["certificate"])
    other_ca = UserCA.load_or_create(tmp_path)
    key = _copy_key(e2e, tmp_path)
    forged(other_ca, e2e.engineer_key().public_key(), ticket_in(genuine),
           key.with_name(key.name + "-cert.pub"))
    mark = e2e.controller_log.mark()
    assert_refused(run_ssh(plain_argv(e2e, key=key), b"exit 0\n"))
    assert refused_because(e2e, mark) == "cert-ca-unknown"
    assert run_ssh(plain_argv(e2e), b"exit 0\n").returncode == 0  # the ticket was untouched


def test_a_certificate_on_a_key_that_is_not_the_engineers_is_refused(
        shell_deployment: ShellE2E) -> None:
    e2e = shell_deployment
    granted = shell_grant(e2e)
    genuine = Path(ssh_cert(e2e, granted.session_id)["certificate"])
    stranger, private = key_file(e2e, "stranger")
    # Even the gateway's own CA (read from the controller home) gets a stranger nowhere.
    gateway_ca = UserCA.load_or_create(e2e.d.controller_home)
    assert (e2e.d.controller_home / USER_CA_NAME).stat().st_mode & 0o777 == 0o600
    forged(gateway_ca, private.public_key(), ticket_in(genuine),
           stranger.with_name(stranger.name + "-cert.pub"))
    mark = e2e.controller_log.mark()
    assert_refused(run_ssh(plain_argv(e2e, key=stranger), b"exit 0\n"))
    assert refused_because(e2e, mark) == "key-not-enrolled"
    assert run_ssh(plain_argv(e2e), b"exit 0\n").returncode == 0  # the ticket was untouched


def test_the_controller_certifies_only_the_callers_own_key(shell_deployment: ShellE2E) -> None:
    e2e = shell_deployment
    granted = shell_grant(e2e)
    _, private = key_file(e2e, "other")
    request = pb.IssueShellCertificateRequest(
        session_id=granted.session_id, ticket="0" * 32, ticket_expires_at=time.time() + 30,
        public_key=_spki(private.public_key()))
    with e2e.channel("controller", "engineer") as channel:
        stub = controller_pb2_grpc.EngineerServiceStub(channel)
        denied = refusal(lambda: stub.IssueShellCertificate(request, timeout=10))
        assert (denied.code(), denied.details()) == (grpc.StatusCode.PERMISSION_DENIED,
                                                     "permission denied")
        request.public_key = _spki(e2e.engineer_key().public_key())
        request.ticket_expires_at = time.time() - 1
        late = refusal(lambda: stub.IssueShellCertificate(request, timeout=10))
        assert late.code() == grpc.StatusCode.FAILED_PRECONDITION, late
    with e2e.channel("controller", "auditor") as channel:
        stub = controller_pb2_grpc.EngineerServiceStub(channel)
        assert refusal(lambda: stub.IssueShellCertificate(request, timeout=10)).code() \
            == grpc.StatusCode.PERMISSION_DENIED


def _spki(key: ec.EllipticCurvePublicKey) -> bytes:
    """A public key as IssueShellCertificate takes it (DER SubjectPublicKeyInfo)."""
    return key.public_bytes(serialization.Encoding.DER,
                            serialization.PublicFormat.SubjectPublicKeyInfo)


def _copy_key(e2e: ShellE2E, where: Path) -> Path:
    """The engineer's key under another name, so its own ``-cert.pub`` is not offered."""
    copy = where / "engineer-copy.key"
    copy.write_bytes(identity(e2e).read_bytes())
    copy.chmod(0o600)
    return copy


def test_no_certificate_is_issued_while_the_gateway_is_off(deployment: E2E) -> None:
    request = pb.IssueShellCertificateRequest(
        session_id="S-none", ticket="0" * 32, ticket_expires_at=time.time() + 30,
        public_key=_spki(deployment.engineer_key().public_key()))
    with deployment.channel("controller", "engineer") as channel:
        stub = controller_pb2_grpc.EngineerServiceStub(channel)
        off = refusal(lambda: stub.IssueShellCertificate(request, timeout=10))
    assert (off.code(), off.details()) == (grpc.StatusCode.FAILED_PRECONDITION,
                                           "the SSH gateway is off on this controller")
