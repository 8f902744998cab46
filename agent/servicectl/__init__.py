"""Service control (scope ``service.control``): status, start, stop, restart and reload of
customer-allowlisted services, each result verified.

- ``status(config, name) -> dict``: ``state`` (running, stopped, failed, or starting /
  stopping in between), ``pid``, ``since`` (Unix time, when known), ``detail``.
- ``needs_consent(action) -> bool``: stop and restart need change consent.
- ``preview(config, name, action) -> ServicePreview``: current state, expected state and
  the ``digest`` over ``{"kind": "service.control", name, action, current}``.
- ``apply(config, preview) -> dict``: refuses if the state moved since the preview, acts,
  and polls until the service is really in the requested state.

Every call takes an optional ``Host`` (clock, sleep, the systemctl runner). Backends:
``systemd`` (``_systemd``, through ``systemctl``) and ``process`` (``_process``, a
process the agent supervises). The functions block: call them in a worker thread.
"""

from agent.servicectl._control import (
    Host,
    ServicePreview,
    apply,
    needs_consent,
    preview,
    reached,
    status,
)
from agent.servicectl.errors import (
    ActionFailed,
    ActionNotAllowed,
    ServiceError,
    ServicesConfigInvalid,
    StateChanged,
    SystemdUnavailable,
    UnknownService,
)
from agent.servicectl.policy import ServiceRule, ServicesConfig, parse, to_toml
from agent.servicectl.state import STOPPED, ServiceState

__all__ = ["STOPPED", "ActionFailed", "ActionNotAllowed", "Host", "ServiceError", "ServicePreview",
           "ServiceRule", "ServiceState", "ServicesConfig", "ServicesConfigInvalid",
           "StateChanged", "SystemdUnavailable", "UnknownService", "apply", "needs_consent",
           "parse", "preview", "reached", "status", "to_toml"]
