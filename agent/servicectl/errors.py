"""Why a service action cannot be previewed or applied.

::

    ServiceError
    ├── ServicesConfigInvalid   the customer's [[services.allow]] breaks a rule (also a ValueError)
    ├── UnknownService          the name is not allowlisted
    ├── ActionNotAllowed        the action is not among the service's allowed actions
    ├── SystemdUnavailable      systemd is not the running init here, or systemctl is missing
    ├── StateChanged            the service is no longer in the state the preview saw
    └── ActionFailed            the action ran and the service did not reach the requested state
"""

from __future__ import annotations


class ServiceError(Exception):
    """Base of every error of the service-control engine."""


class ServicesConfigInvalid(ServiceError, ValueError):
    """The [[services.allow]] policy is invalid; the message names the entry and key."""


class UnknownService(ServiceError):
    """No allowlisted service has that name."""


class ActionNotAllowed(ServiceError):
    """The customer does not allow this action on this service (or it is not an action)."""


class SystemdUnavailable(ServiceError):
    """systemd cannot be driven on this host."""


class StateChanged(ServiceError):
    """The service's state differs from the preview's; nothing was done."""


class ActionFailed(ServiceError):
    """The action failed or was not verified within its time; the message says what was seen."""
