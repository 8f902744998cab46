"""Parameter changes through the real controller and agent processes and both CLIs.

preview -> the customer reviews the diff and consents to the digest (rmagent changes,
approve-change) -> apply -> the file changed exactly -> undo (its own preview, consent
and apply) -> the file is back. A secret next to the changed key never leaves the host.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from typing import Any

from tests.integration.e2e.conftest import E2E, one_error_line

SECRET = "planted-e2e-7d41c9"  # noqa: S105 - a test value that must stay on the host
APP = f"""# application settings
[server]
port = 8080
workers = 4
db_password = {SECRET}
"""


def _params(path: str, check: str) -> str:
    return f"""[[params.files]]
name = "app"
path = "{path}"
format = "ini"
keys = ["server.port", "server.workers"]
validate = ["{sys.executable}", "{check}"]
"""


def _consent_and_apply(e2e: E2E, digest: str) -> dict[str, Any]:
    d = e2e.d
    listed = {c["digest"]: c for c in d.json(d.rmagent("changes", "--json"))}
    assert listed[digest]["kind"] == "config"
    assert SECRET in listed[digest]["diff"]  # the customer's review is unredacted
    shown = d.rmagent("changes").stdout
    assert "config change" in shown and digest in shown
    assert d.json(d.rmagent("approve-change", digest[:24], "--yes", "--json"))["digest"] == digest
    applied: dict[str, Any] = d.json(d.engineer("config", "apply", digest, "--json"))
    return applied


def test_preview_consent_apply_undo(deployment_factory: Callable[..., E2E]) -> None:
    e2e = deployment_factory()
    d = e2e.d
    app, check = d.root / "app.ini", d.root / "check.py"
    app.write_text(APP)
    check.write_text(f"import sys\nsys.exit(0 if 'port' in open({str(app)!r}).read() else 1)\n")
    d.enable_changes(_params(str(app), str(check)))
    e2e.grant_session(scopes=("config.write",))

    preview = d.json(d.engineer("config", "preview", "app", "server.port=9090", "--json"))
    digest = preview["digest"]
    assert preview["changes"] == [{"key": "server.port", "old": "8080", "new": "9090"}]
    assert "-port = 8080\n+port = 9090\n" in preview["diff"]
    assert SECRET not in preview["diff"]
    assert app.read_text() == APP  # a preview changes nothing
    readable = d.engineer("config", "preview", "app", "server.port=9090")
    assert "+port = 9090" in readable.stdout and "rmagent approve-change" in readable.stdout

    refused = d.engineer("config", "apply", digest, check=False)
    assert "permission denied" in one_error_line(refused)  # no consent yet
    assert app.read_text() == APP
    assert _consent_and_apply(e2e, digest)["status"] == "applied"
    assert app.read_text() == APP.replace("port = 8080", "port = 9090")

    undo = d.json(d.engineer("config", "undo", digest, "--json"))
    assert undo["undo_of"] == digest and "+port = 8080" in undo["diff"]
    assert _consent_and_apply(e2e, undo["digest"])["status"] == "applied"
    assert app.read_text() == APP

    bad = d.engineer("config", "preview", "app", "server.db_password=x", check=False)
    assert "not an allowlisted key" in one_error_line(bad)
    for path in d.controller_home.rglob("*"):
        if path.is_file():
            assert SECRET.encode() not in path.read_bytes(), path
