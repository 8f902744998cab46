"""SIGKILL at named points of apply and of its restore: the file is all before or all after.

A child process runs the apply with ``RMAINT_PARAMS_CRASH_AT`` naming the point where it
kills itself; the parent then reads the file, and a later apply of a fresh preview
still works (leftover temporary files are swept).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from agent.params import apply, preview
from agent.params._files import CRASH_ENV
from tests.integration.agent.params.conftest import FAIL, FORMATS, MakeWorld, World

ROOT = Path(__file__).resolve().parents[4]
APPLY_POINTS = ["apply:backup-saved", "apply:after-rendered", "apply:temp-written",
                "apply:temp-synced", "apply:renamed", "apply:directory-synced"]
RESTORE_POINTS = ["apply:validation-failed", "restore:temp-written", "restore:temp-synced",
                  "restore:renamed", "restore:directory-synced"]
_CHILD = """
import json, sys
from pathlib import Path
from agent.params import Backups, ParamPreview, apply, parse
table, shown, backups = json.loads(sys.argv[1])
apply(parse(table), ParamPreview.from_dict(shown), Backups(Path(backups)))
"""


def _apply_in_child(world: World, point: str) -> int:
    shown = preview(world.config, "app", world.sample.changes).to_dict()
    argument = json.dumps([world.table, shown, str(world.backups.root)])
    env = {**os.environ, CRASH_ENV: point, "PYTHONPATH": str(ROOT)}
    done = subprocess.run([sys.executable, "-c", _CHILD, argument], env=env, cwd=ROOT,
                          capture_output=True, timeout=60, check=False)
    return done.returncode


def _temporaries(world: World) -> list[str]:
    return [p.name for p in world.path.parent.iterdir() if p.name.endswith(".tmp")]


@pytest.mark.parametrize("point", APPLY_POINTS)
@pytest.mark.parametrize("fmt", FORMATS)
def test_kill_during_apply_leaves_before_or_after(make_world: MakeWorld, fmt: str,
                                                  point: str) -> None:
    world = make_world(fmt)
    assert _apply_in_child(world, point) == -signal.SIGKILL
    text = world.path.read_text()
    after_rename = point in ("apply:renamed", "apply:directory-synced")
    assert text == (world.sample.expected if after_rename else world.sample.text)
    if not after_rename:  # the agent can go on: a new preview applies, leftovers are swept
        apply(world.config, preview(world.config, "app", world.sample.changes), world.backups)
        assert world.path.read_text() == world.sample.expected
        assert _temporaries(world) == []


@pytest.mark.parametrize("point", RESTORE_POINTS)
def test_kill_while_restoring_after_failed_validation(make_world: MakeWorld, point: str) -> None:
    world = make_world("toml", validate=FAIL)
    assert _apply_in_child(world, point) == -signal.SIGKILL
    restored = point.startswith("restore:renamed") or point == "restore:directory-synced"
    assert world.path.read_text() == (world.sample.text if restored else world.sample.expected)


def test_without_the_seam_the_child_applies(make_world: MakeWorld) -> None:
    world = make_world("yaml")
    assert _apply_in_child(world, "") == 0
    assert world.path.read_text() == world.sample.expected
