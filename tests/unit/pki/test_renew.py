"""The renewal schedule (pure, fake clock) and the checks a renewed certificate must pass."""

from __future__ import annotations

import asyncio
import datetime as dt
from dataclasses import dataclass
from pathlib import Path

import pytest
from cryptography import x509

from agent.renewal import RETRY_FIRST, RETRY_MAX, Renewer, retry_delay
from pki.certs import cert_pem, create_ca, generate_key, issue
from pki.files import write_key, write_public
from pki.identity import Identity
from pki.renew import JITTER, RenewalFailed, Validity, check_renewed, renewal_delay
from pki.tls import TlsFiles

TD = "example.test"
DAY = 86400.0


def test_renewal_is_due_at_half_life_plus_a_bounded_jitter() -> None:
    validity = Validity(1000.0, 1000.0 + 30 * DAY)
    half = 1000.0 + 15 * DAY
    assert renewal_delay(validity, 1000.0, lambda: 0.0) == 15 * DAY
    assert renewal_delay(validity, half - 10, lambda: 0.0) == 10
    latest = renewal_delay(validity, 1000.0, lambda: 0.999999)
    assert 15 * DAY < latest < 15 * DAY + JITTER * 30 * DAY
    # Past half-life (a restart, a long sleep): now, never negative.
    assert renewal_delay(validity, half + 1, lambda: 0.0) == 0.0
    assert renewal_delay(validity, validity.not_after + 5, lambda: 0.5) == 0.0
    assert not validity.due(half - 1) and validity.due(half)


def test_retries_back_off_but_never_past_a_quarter_of_the_time_left() -> None:
    validity = Validity(0.0, 10 * DAY)
    delays = [retry_delay(n, validity, 5 * DAY, lambda: 0.999999) for n in range(1, 12)]
    assert delays[0] == pytest.approx(RETRY_FIRST, rel=1e-5)
    assert delays == sorted(delays) and delays[-1] == pytest.approx(RETRY_MAX, rel=1e-5)
    assert retry_delay(1, validity, 5 * DAY, lambda: 0.0) == RETRY_FIRST / 2  # jitter
    near_end = retry_delay(20, validity, 10 * DAY - 40, lambda: 0.999999)
    assert near_end == pytest.approx(10, rel=1e-5)  # a quarter of the 40 s left
    assert retry_delay(20, validity, 10 * DAY + 100, lambda: 0.999999) == \
        pytest.approx(RETRY_MAX, rel=1e-5)  # expired: keep trying at the slowest pace


class _CA:
    def __init__(self) -> None:
        self.key = generate_key()
        self.cert = create_ca(self.key, TD, now=1_000_000.0)

    def leaf(self, key: object, identity: Identity, now: float = 1_000_000.0) -> bytes:
        return cert_pem(issue(self.key, self.cert, key, identity,  # type: ignore[arg-type]
                              now=now, lifetime=dt.timedelta(days=30)))


def test_a_renewed_certificate_must_be_the_same_key_and_identity_from_the_ca() -> None:
    ca, key = _CA(), generate_key()
    agent = Identity(TD, "agent", "web-1")
    ca_pem = cert_pem(ca.cert)
    good = ca.leaf(key.public_key(), agent)
    assert isinstance(check_renewed(good, ca_pem, agent, key, 1_000_100.0), x509.Certificate)
    cases = {
        "another key": ca.leaf(generate_key().public_key(), agent),
        "another identity": ca.leaf(key.public_key(), Identity(TD, "agent", "web-2")),
        "another CA": _CA().leaf(key.public_key(), agent),
        "not valid now": ca.leaf(key.public_key(), agent, now=2_000_000_000.0),
        "garbage": b"not a certificate",
    }
    for what, pem in cases.items():
        with pytest.raises(RenewalFailed):
            check_renewed(pem, ca_pem, agent, key, 1_000_100.0)
            pytest.fail(what)


@dataclass
class _Away:
    """An agent's renewer whose controller never answers, on a fake clock: each sleep is
    recorded and advances the clock; the fourth ends the run."""

    files: TlsFiles
    clock: list[float]
    slept: list[float]
    renewer: Renewer


def _renewer_with_no_controller(tmp_path: Path, now: float) -> _Away:
    ca, key = _CA(), generate_key()
    agent = Identity(TD, "agent", "web-1")
    files = TlsFiles(tmp_path / "agent.key", tmp_path / "agent.crt", tmp_path / "ca.crt")
    write_key(files.key, key)
    write_public(files.cert, ca.leaf(key.public_key(), agent))
    write_public(files.ca, cert_pem(ca.cert))
    clock, slept = [now], []

    async def sleep(seconds: float) -> None:
        slept.append(seconds)
        clock[0] += seconds
        if len(slept) == 4:
            raise asyncio.CancelledError

    renewer = Renewer(controller="127.0.0.1:1", files=files, identity=agent, key=key,
                      clock=lambda: clock[0], sleep=sleep, rand=lambda: 0.0,
                      reenroll="rmagent --home /srv/agent enroll --token T --force")
    return _Away(files, clock, slept, renewer)


async def test_the_renewer_sleeps_until_due_and_retries_when_the_controller_is_away(
        tmp_path: Path) -> None:
    """No controller listens: each attempt fails; the sleeps follow the schedule."""
    away = _renewer_with_no_controller(tmp_path, 1_000_000.0)
    validity = Validity.of(x509.load_pem_x509_certificate(away.files.cert.read_bytes()))
    with pytest.raises(asyncio.CancelledError):
        await away.renewer.run()
    assert away.slept[0] == pytest.approx(validity.renew_at - 1_000_000.0)
    assert away.slept[1:] == [RETRY_FIRST / 2, RETRY_FIRST, RETRY_FIRST * 2]
    assert away.renewer.renewals == 0
    assert Validity.of(x509.load_pem_x509_certificate(away.files.cert.read_bytes())) == validity


async def test_an_expired_certificate_says_how_to_recover(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    """Past not_after the controller refuses renewal: the log says to enroll again, once."""
    away = _renewer_with_no_controller(tmp_path, 1_000_000.0 + 31 * DAY)  # 30-day cert: over
    with caplog.at_level("WARNING", logger="agent.renewal"), \
            pytest.raises(asyncio.CancelledError):
        await away.renewer.run()
    expired = [r for r in caplog.records if getattr(r, "fields", {}).get("event") == "cert.expired"]
    assert len(expired) == 1
    # The command the daemon was given for its home, so that it works when pasted.
    assert "('rmagent --home /srv/agent enroll --token T --force')" in expired[0].getMessage()
