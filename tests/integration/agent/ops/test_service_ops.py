"""service.status / service.preview / service.apply over a real supervised process."""

from __future__ import annotations

import os
import signal
import time

import psutil
import pytest

from agent import servicectl as svc
from agent.data.errors import ChangeNotConsented, ChangeNotFound
from agent.errors import InvalidParams
from tests.integration.agent.ops.conftest import Ops


def status(ops: Ops) -> str:
    return str(ops.run("service.status", {"name": "worker"})["state"])


def preview(ops: Ops, action: str) -> dict[str, object]:
    return ops.run("service.preview", {"name": "worker", "action": action})


def start(ops: Ops) -> int:
    result = ops.run("service.apply", {"digest": preview(ops, "start")["digest"]})
    assert result["verified"] is True and result["after"]["state"] == "running"
    return int(result["after"]["pid"])


def test_start_needs_no_consent_but_a_preview(ops: Ops) -> None:
    assert status(ops) == "stopped"
    shown = preview(ops, "start")
    assert shown["needs_consent"] is False and shown["expected"] == "running"
    assert ops.store.preview(str(shown["digest"])).kind == "service"  # type: ignore[union-attr]
    result = ops.run("service.apply", {"digest": shown["digest"]})
    assert psutil.pid_exists(result["after"]["pid"]) and status(ops) == "running"
    with pytest.raises(ChangeNotFound):  # a preview runs once
        ops.run("service.apply", {"digest": shown["digest"]})


def test_stop_needs_consent_to_its_own_preview(ops: Ops) -> None:
    pid = start(ops)
    first = preview(ops, "stop")
    second = preview(ops, "stop")
    assert first["digest"] != second["digest"]  # each preview is its own change
    assert first["needs_consent"] is True
    with pytest.raises(ChangeNotConsented):
        ops.run("service.apply", {"digest": second["digest"]})
    ops.consent(str(first["digest"]))
    with pytest.raises(ChangeNotConsented):  # consent to another preview does not carry
        ops.run("service.apply", {"digest": second["digest"]})
    assert status(ops) == "running" and psutil.pid_exists(pid)
    result = ops.run("service.apply", {"digest": first["digest"]})
    assert result["after"]["state"] == "stopped" and status(ops) == "stopped"
    assert not os.path.exists(ops.pidfile) or status(ops) == "stopped"


def test_restart_with_consent_gives_a_new_process(ops: Ops) -> None:
    pid = start(ops)
    shown = preview(ops, "restart")
    ops.consent(str(shown["digest"]))
    result = ops.run("service.apply", {"digest": shown["digest"]})
    assert result["after"]["pid"] != pid and status(ops) == "running"


def test_expired_consent_refused(ops: Ops) -> None:
    start(ops)
    shown = preview(ops, "stop")
    ops.consent(str(shown["digest"]), seconds=60)
    ops.clock.now += 120
    with pytest.raises(ChangeNotConsented):
        ops.run("service.apply", {"digest": shown["digest"]})
    assert status(ops) == "running"


def test_state_moved_since_the_preview_is_refused(ops: Ops) -> None:
    start(ops)
    stale = preview(ops, "stop")
    ops.consent(str(stale["digest"]))
    restart = preview(ops, "restart")
    ops.consent(str(restart["digest"]))
    ops.run("service.apply", {"digest": restart["digest"]})
    refused = ops.run("service.apply", {"digest": stale["digest"]})
    assert refused["status"] == "refused" and "as previewed" in refused["reason"]
    assert refused["now"]["state"] == "running" and status(ops) == "running"


def test_bad_names_and_actions(ops: Ops) -> None:
    with pytest.raises(InvalidParams, match="sshd"):
        ops.run("service.status", {"name": "sshd"})
    with pytest.raises(InvalidParams):
        ops.run("service.preview", {"name": "worker", "action": "kill"})
    with pytest.raises(InvalidParams, match="cannot reload"):
        preview(ops, "reload")


# -- an apply cut off by a crash: journal "applying", resolved at the next start ----------

def cut_off(ops: Ops, action: str, *, act: bool, began: float | None = None) -> str:
    """A consented preview whose apply began (journal ``applying``, at ``began``: now by
    default) and whose agent died either before the action (``act`` False) or after it,
    before the journal was closed."""
    shown = preview(ops, action)
    digest = str(shown["digest"])
    if shown["needs_consent"]:
        ops.consent(digest)
    # The verdict compares the service's real change times with when the apply began.
    ops.store.journal_begin(digest, [], time.time() if began is None else began)
    if act:  # the engine's own preview of the same state: the action the agent began
        svc.apply(ops.services_config, svc.preview(ops.services_config, "worker", action))
    return digest


@pytest.mark.parametrize(("action", "act", "verdict"), [
    ("stop", True, "applied"), ("stop", False, "aborted"),
    ("restart", True, "applied"), ("restart", False, "aborted"),
])
def test_an_interrupted_action_is_closed_by_the_state_it_left(
        ops: Ops, action: str, act: bool, verdict: str) -> None:
    start(ops)
    digest = cut_off(ops, action, act=act)
    assert ops.store.applying("service") == [digest]
    assert ops.services.resolve_applying() == {digest: verdict}
    assert ops.store.journal_state(digest) == verdict
    assert ops.store.preview(digest).status == verdict  # type: ignore[union-attr]
    record = ops.store.journal_record(digest)
    if verdict == "applied":
        assert record is not None and record["recovered"] is True
        assert record["after"]["state"] == ("stopped" if action == "stop" else "running")
    else:
        assert record is None
    assert ops.store.applying("service") == []


def test_an_interrupted_start_is_applied_when_the_service_runs(ops: Ops) -> None:
    digest = cut_off(ops, "start", act=True)
    assert ops.services.resolve_applying() == {digest: "applied"}
    assert status(ops) == "running"


def test_what_cannot_be_told_stays_applying(ops: Ops) -> None:
    start(ops)
    reload = cut_off(ops, "reload", act=False)  # a reload leaves no trace either way
    assert ops.services.resolve_applying() == {}
    assert ops.store.applying("service") == [reload]
    assert ops.store.journal_state(reload) == "applying"


def test_a_restart_by_someone_else_long_after_is_not_taken_for_ours(ops: Ops) -> None:
    start(ops)
    digest = cut_off(ops, "restart", act=True, began=time.time() - 3600)
    assert ops.services.resolve_applying() == {}
    assert ops.store.journal_state(digest) == "applying"


def test_a_service_that_crashed_is_not_taken_for_a_stop(ops: Ops) -> None:
    pid = start(ops)
    digest = cut_off(ops, "stop", act=False)
    os.killpg(pid, signal.SIGKILL)
    deadline = time.monotonic() + 10
    while status(ops) == "running" and time.monotonic() < deadline:  # the kill lands
        time.sleep(0.02)
    assert status(ops) == "failed"
    assert ops.services.resolve_applying() == {}
    assert ops.store.journal_state(digest) == "applying"
