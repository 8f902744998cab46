"""``rmctl customer show`` end to end: the customer's systems with their inventory, the
last inspection, cases with how each was handled and its outcome, and the sessions held."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from demo.deployment import Deployment, wait_until
from tests.integration.e2e.conftest import AGENT_ID, ENGINEER, one_error_line
from tests.integration.e2e.test_inspection import inspected_deployment, inspection_runs


@pytest.fixture(scope="module")
def handled(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Deployment, str]]:
    """An inspected deployment with a case alice handled in one session and closed."""
    # rmagent commands read agent.toml too: the short interval needs the variable throughout.
    with pytest.MonkeyPatch.context() as monkeypatch:
        yield from _handled(inspected_deployment(tmp_path_factory.mktemp("archive"), monkeypatch))


def _handled(d: Deployment) -> Iterator[tuple[Deployment, str]]:
    try:
        d.login("engineer", ENGINEER, d.engineer_home)
        case_id = d.open_case("web-1 answers slowly")
        grant_id = d.grant_access(case_id)
        session = d.json(d.engineer("session", "open", "--case", case_id, "--agent", AGENT_ID,
                                    "--grant", grant_id, "--json"))
        for what in ("system", "memory"):
            d.engineer("diag", what, "--session", session["session_id"], "--json")
        d.engineer("session", "close", session["session_id"])
        d.rmctl("case", "close", case_id, "--resolution", "restarted the app pool")
        wait_until(lambda: inspection_runs(d) >= 2, "two inspection runs", timeout=60)
        yield d, case_id
    finally:
        d.stop()


def test_the_archive_shows_systems_cases_and_sessions(handled: tuple[Deployment, str]) -> None:
    d, case_id = handled
    for reader in (d.auditor, d.engineer, d.rmctl):  # auditors, engineers and admins may read
        archive = d.json(reader("customer", "show", "acme", "--json"))
    assert archive["customer"]["customer_id"] == "acme"
    (system,) = archive["systems"]
    assert system["agent"]["agent_id"] == AGENT_ID and system["online"] is True
    inventory = system["inventory"]
    assert inventory["cpu_count"] > 0 and inventory["memory_bytes"] > 0
    assert inventory["os"] and inventory["agent_version"]
    findings = system["last_inspection"]["findings"]
    assert [f["key"] for f in findings] == ["memory.use"]
    by_id = {c["case"]["case_id"]: c for c in archive["cases"]}
    handled_case = by_id[case_id]
    assert handled_case["sessions"] == 1 and handled_case["operations"] == 2
    assert handled_case["case"]["status"] == "closed"
    assert handled_case["case"]["resolution"] == "restarted the app pool"
    assert [c["opened_by"] for c in by_id.values() if c["case"]["case_id"] != case_id] \
        == ["inspection"]
    assert [s["case_id"] for s in archive["sessions"]] == [case_id]


def test_the_archive_reads_as_aligned_sections(handled: tuple[Deployment, str]) -> None:
    d, case_id = handled
    text = d.auditor("customer", "show", "acme").stdout
    for section in ("Systems", "Last inspection", "Cases", "Sessions"):
        assert section in text
    assert "online" in text and "memory.use" in text and "restarted the app pool" in text
    assert case_id in text


def test_an_unknown_customer_is_one_error_line(handled: tuple[Deployment, str]) -> None:
    d, _ = handled
    message = one_error_line(d.auditor("customer", "show", "nobody", check=False))
    assert "nobody" in message

