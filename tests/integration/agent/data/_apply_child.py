"""Child process of the crash tests: applies one consented change, SIGKILLed at a point.

Reads one JSON object on stdin: source, home, digest, now, point, approver (base64 of
the raw Ed25519 public key), ctx. Verifies and consumes the consent as the agent does.
"""

from __future__ import annotations

import base64
import json
import os
import signal
import sys
from pathlib import Path

import permissions as p
from agent.changes import ChangeStore
from agent.context import OperationContext
from agent.data.ops import DataOperations
from agent.data.policy import DataConfig, DataSourcePolicy, TablePolicy
from tests.integration.agent.data.conftest import Trust, run_to_end


def main() -> None:
    job = json.loads(sys.stdin.read())
    fields = job["source"]
    fields["tables"] = tuple(TablePolicy(t["name"], tuple(t["columns"]), tuple(t["masked"]))
                             for t in fields["tables"])
    key = p.load_public_key(base64.b64decode(job["approver"]))
    point = job["point"]

    def checkpoint(name: str) -> None:
        if name == point:
            os.kill(os.getpid(), signal.SIGKILL)

    store = ChangeStore(Path(job["home"]) / "changes.db")
    ops = DataOperations(DataConfig((DataSourcePolicy(**fields),)), store,
                         Trust({p.key_id(key): key}), lambda: float(job["now"]),
                         checkpoint=checkpoint)
    run_to_end(ops.prepare_apply({"digest": job["digest"]}, OperationContext(**job["ctx"])))


if __name__ == "__main__":
    main()
