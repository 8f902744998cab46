"""The cyclic garbage collector in an rmctl process.

Starting, rmctl makes a few hundred thousand objects that live until it exits: modules,
the command tree and, for a command that reaches the controller, the client stack (grpc,
protobuf, cryptography). Collections walk them again and again while they load and once
more at exit, and free nothing: together about a seventh of a short command's wall time.
So :func:`starting` makes collections rare; once a command's modules are loaded and its
work begins, :func:`working` moves what starting made out of the collector's sight
(``gc.freeze``) and puts the usual thresholds back; :func:`exiting` does the same for
everything alive at the end, which the exit frees at once. A command that never calls
:func:`working` still collects, in larger batches. Both are no-ops in a process where
:func:`starting` was not called (tests that run commands in-process).
"""

from __future__ import annotations

import gc

# Net new container objects between two collections of the youngest generation while
# rmctl starts (the interpreter's default is 700).
STARTING_THRESHOLD = 50_000

_usual: tuple[int, int, int] | None = None  # the thresholds to put back, while starting
_managed = False  # starting() was called: this process is rmctl's


def starting() -> None:
    """Make collections rare until :func:`working`."""
    global _usual, _managed
    if not _managed:
        _managed = True
        _usual = gc.get_threshold()
        gc.set_threshold(STARTING_THRESHOLD, *_usual[1:])


def working() -> None:
    """The command's modules are loaded: hide what exists from the collector, and collect
    as usual from here on."""
    global _usual
    if _usual is not None:
        gc.freeze()
        gc.set_threshold(*_usual)
        _usual = None


def exiting() -> None:
    """The process ends: spare the interpreter's shutdown its walks over what is alive."""
    if _managed:
        working()  # the usual thresholds, should the caller go on
        gc.freeze()
