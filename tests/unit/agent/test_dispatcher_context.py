"""Operations that need their context get the verified one; refusals raised while running
leave as refusals, recorded as such."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import pytest

from agent.catalogue import OperationSpec
from agent.context import OperationContext
from agent.errors import InvalidParams, Refused
from tests.unit.agent.conftest import RigFactory


def _spec(seen: list[OperationContext], error: Exception | None = None) -> OperationSpec:
    def prepare(params: Mapping[str, Any], context: OperationContext) -> Callable[[], Any]:
        async def run() -> dict[str, Any]:
            seen.append(context)
            if error is not None:
                raise error
            return {"ok": True}
        return run

    def without_context(params: Mapping[str, Any]) -> Callable[[], Any]:
        raise InvalidParams("needs its context")

    return OperationSpec("test.ctx", "diag.read", False, 5.0, 4096, without_context, prepare)


async def test_operation_receives_the_verified_context(make_rig: RigFactory) -> None:
    seen: list[OperationContext] = []
    rig = make_rig(extra={"test.ctx": _spec(seen)})
    await rig.dispatcher.execute(rig.world.op(operation="test.ctx"))
    grant = rig.world.grant
    assert seen == [OperationContext(agent_id="web-1", grant_id=grant.grant_id,
                                     case_id=grant.case_id, session_id="S-1", seq=1,
                                     engineer=grant.engineer,
                                     engineer_key_id=grant.engineer_key_id,
                                     scopes=tuple(grant.scopes))]


async def test_refusal_while_running_is_recorded_and_raised(make_rig: RigFactory) -> None:
    rig = make_rig(extra={"test.ctx": _spec([], Refused("change-not-consented", "no-consent"))})
    with pytest.raises(Refused):
        await rig.dispatcher.execute(rig.world.op(operation="test.ctx"))
    result = rig.log.entries()[-1]
    assert (result.kind, result.outcome) == ("result", "denied")
    assert "no-consent" in (result.detail or "")
