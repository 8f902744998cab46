"""Errors of data correction, as leaves of the agent's tree (see :mod:`agent.errors`).

    InvalidParams
    └── InvalidPlan          a query or plan the allowlist, catalog or data do not allow
    OperationFailed
    ├── DataUnavailable      the data source cannot be reached or read
    └── NotPossibleNow
        ├── PlanDrifted      the rows are no longer as previewed: nothing was changed
        └── ChangeNotFound   no change with that digest in the state asked for (pending,
                             unexpired, applied) or its data source is no longer configured
    Refused
    └── ChangeNotConsented   no valid, unused change consent for the digest

Messages are safe to show the engineer: they never carry credentials or masked values.
"""

from __future__ import annotations

from agent.errors import InvalidParams, NotPossibleNow, OperationFailed, Refused


class InvalidPlan(InvalidParams):
    """The query or plan names what is not allowed, or does not fit the data."""


class DataUnavailable(OperationFailed):
    """The data source cannot be reached or its catalog read."""


class PlanDrifted(NotPossibleNow):
    """The rows changed since the preview: the change was not applied."""


class ChangeNotFound(NotPossibleNow):
    """No stored change has that digest."""


class ChangeNotConsented(Refused):
    """The change has no valid, unused consent; ``reason`` says why, for the audit."""

    def __init__(self, reason: str) -> None:
        super().__init__("change-not-consented", reason)
