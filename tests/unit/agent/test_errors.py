"""What a caller learns of an agent error: its status code and words."""

from __future__ import annotations

import grpc
import pytest

from agent.data.errors import ChangeNotFound, DataUnavailable, PlanDrifted
from agent.errors import AgentError, OperationFailed, status_of


@pytest.mark.parametrize(("error", "code"), [
    # The state things are in: no fault of the agent's, and said as it is.
    (PlanDrifted("rows changed since the preview: nothing was changed"),
     grpc.StatusCode.FAILED_PRECONDITION),
    (ChangeNotFound("change sha256:ab is applied, not pending"),
     grpc.StatusCode.FAILED_PRECONDITION),
    # An operation that ran and failed.
    (DataUnavailable("the data source cannot be reached"), grpc.StatusCode.INTERNAL),
    (OperationFailed("operation failed: output is not JSON"), grpc.StatusCode.INTERNAL),
])
def test_an_operation_s_failure_keeps_its_words_and_says_whose_it_is(
        error: AgentError, code: grpc.StatusCode) -> None:
    assert status_of(error) == (code, str(error))
