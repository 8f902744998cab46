"""Typed async client of the controller, for rmctl and for scripts.

    config     ClientConfig, load_config(home): the [client] section of <home>/rmctl.toml
    api        ControllerClient: one mTLS channel, one method per RPC
    engineer   signed access requests and operations, session state with sequence numbers
    workflow   EngineerWorkflow: request access, open/close sessions, run checked operations
    login      login(home, token): enroll this home's identity key (import from the module)
    errors     the exception tree and the one gRPC status table

Names are loaded on first use so that importing this package stays cheap (no grpc) for
commands that never reach the network.
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "ClientConfig": "config", "load_config": "config", "default_home": "config",
    "ControllerClient": "api",
    "SessionState": "engineer", "SessionStore": "engineer", "sign_access_request": "engineer",
    "sign_operation": "engineer", "new_request_id": "engineer",
    "EngineerWorkflow": "workflow", "OperationResult": "workflow", "OpenedSession": "workflow",
    "LoggedIn": "login",
    "ClientError": "errors", "ConfigError": "errors", "SessionStateError": "errors",
    "InputError": "errors", "LoginError": "errors", "BadAnswer": "errors", "RpcError": "errors",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(f"{__name__}.{module}"), name)
