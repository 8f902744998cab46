"""Running the customer's validation command: argv only, no shell, bounded time and output."""

from __future__ import annotations

import os
import signal
import subprocess
import tempfile
from typing import Any

MAX_OUTPUT = 8192
_ENV = {"PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "LANG": "C", "LC_ALL": "C"}


def run(argv: tuple[str, ...], timeout: float) -> dict[str, Any]:
    """Run ``argv``; its exit code, whether it timed out, and the last 8 KiB of its output.

    The command runs in its own session so that a timeout kills it and its children.
    """
    with tempfile.TemporaryFile() as output:
        try:
            proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=output,
                                    stderr=subprocess.STDOUT, env=_ENV, start_new_session=True)
        except OSError as exc:
            return {"argv": list(argv), "exit_code": None, "timed_out": False,
                    "output": f"cannot run the validation command: {exc.strerror}"}
        timed_out = _wait(proc, timeout)
        return {"argv": list(argv), "exit_code": proc.returncode, "timed_out": timed_out,
                "output": _tail(output)}


def passed(result: dict[str, Any]) -> bool:
    return result["exit_code"] == 0 and not result["timed_out"]


def _wait(proc: subprocess.Popen[bytes], timeout: float) -> bool:
    try:
        proc.wait(timeout)
        return False
    except subprocess.TimeoutExpired:
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        proc.wait()
        return True


def _tail(output: Any) -> str:
    size = output.seek(0, os.SEEK_END)
    output.seek(max(0, size - MAX_OUTPUT))
    text: str = output.read().decode("utf-8", errors="replace")
    return text
