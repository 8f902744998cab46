"""Real parameter files in tmp_path, one sample per format, and a policy that allows them."""

from __future__ import annotations

import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from agent.params import Backups, ParamsConfig, parse


@dataclass(frozen=True)
class Sample:
    """A file's text, the keys allowed, a change and the exact text it must give."""

    format: str
    text: str
    keys: tuple[str, ...]
    changes: dict[str, Any]
    expected: str


SAMPLES = {
    "ini": Sample("ini", "; app\n[server]\n# the port\nport = 8080\nhost = a\n",
                  ("server.port", "server.host"), {"server.port": 9090},
                  "; app\n[server]\n# the port\nport = 9090\nhost = a\n"),
    "kv": Sample("kv", "# env\nexport PORT=8080\nNAME=\"web\"\n", ("PORT", "NAME"),
                 {"PORT": 9090, "NAME": "api"}, "# env\nexport PORT=9090\nNAME=\"api\"\n"),
    "toml": Sample("toml", "# app\n[server]\nport = 8080  # the port\nhost = \"a\"\n",
                   ("server.port", "server.host"), {"server.port": 9090},
                   "# app\n[server]\nport = 9090  # the port\nhost = \"a\"\n"),
    "json": Sample("json", '{\n  "server": {\n    "port": 8080,\n    "host": "a"\n  }\n}\n',
                   ("server.port", "server.host"), {"server.port": 9090},
                   '{\n  "server": {\n    "port": 9090,\n    "host": "a"\n  }\n}\n'),
    "yaml": Sample("yaml", "# app\nserver:\n  port: 8080  # the port\n  host: a\n",
                   ("server.port", "server.host"), {"server.port": 9090},
                   "# app\nserver:\n  port: 9090  # the port\n  host: a\n"),
}
FORMATS = sorted(SAMPLES)
FAIL = [sys.executable, "-c", "import sys; print('config test failed: bad port'); sys.exit(1)"]


@dataclass(frozen=True)
class World:
    """One allowlisted file ``app`` at ``path``, with its policy table and backups."""

    sample: Sample
    path: Path
    table: dict[str, Any]
    config: ParamsConfig
    backups: Backups


MakeWorld = Callable[..., World]


@pytest.fixture
def make_world(tmp_path: Path) -> MakeWorld:
    """``make_world(fmt, **policy)``: the sample file written 0640 and a policy for it."""
    def make(fmt: str, **policy: Any) -> World:
        sample = SAMPLES[fmt]
        directory = tmp_path / "etc"
        directory.mkdir(exist_ok=True)
        path = directory / f"app.{fmt}"
        path.write_text(sample.text)
        path.chmod(0o640)
        entry = {"name": "app", "path": str(path), "format": fmt, "keys": list(sample.keys),
                 **policy}
        table = {"files": [entry]}
        return World(sample, path, table, parse(table), Backups(tmp_path / "backups"))
    return make
