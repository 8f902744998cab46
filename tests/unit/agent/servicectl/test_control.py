"""Which actions need consent, what counts as done, and what the digest binds."""

from __future__ import annotations

import pytest

from agent.servicectl import ActionNotAllowed, ServiceState, needs_consent
from agent.servicectl._control import digest, reached


def test_only_stop_and_restart_need_consent() -> None:
    assert [a for a in ("status", "start", "stop", "restart", "reload") if needs_consent(a)] == \
        ["stop", "restart"]
    with pytest.raises(ActionNotAllowed):
        needs_consent("kill")


def test_the_digest_binds_name_action_state_and_pid() -> None:
    running = ServiceState("running", 10, since=1.0)
    base = digest("web", "stop", running)
    assert base.startswith("sha256:") and len(base) == 71  # the form change consents sign
    assert base == digest("web", "stop", ServiceState("running", 10, since=2.0, detail="x"))
    assert len({base, digest("web", "restart", running), digest("db", "stop", running),
                digest("web", "stop", ServiceState("running", 11)),
                digest("web", "stop", ServiceState("stopped"))}) == 5


@pytest.mark.parametrize(("action", "before", "now", "done"), [
    ("stop", ServiceState("running", 1), ServiceState("stopped"), True),
    ("stop", ServiceState("running", 1), ServiceState("failed"), True),
    ("stop", ServiceState("running", 1), ServiceState("stopping", 1), False),
    ("start", ServiceState("stopped"), ServiceState("running", 2), True),
    ("start", ServiceState("stopped"), ServiceState("starting"), False),
    ("restart", ServiceState("running", 1), ServiceState("running", 1), False),
    ("restart", ServiceState("running", 1), ServiceState("running", 2), True),
    ("restart", ServiceState("failed"), ServiceState("running", 2), True),
    ("reload", ServiceState("running", 1), ServiceState("running", 1), True),
    ("reload", ServiceState("running", 1), ServiceState("running", 3), False),
    ("reload", ServiceState("running", 1), ServiceState("stopped"), False),
])
def test_what_counts_as_done(action: str, before: ServiceState, now: ServiceState,
                             done: bool) -> None:
    assert reached(action, before, now) is done
