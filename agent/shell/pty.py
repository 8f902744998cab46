"""A shell on a pseudo-terminal, as a local user: start, read, write, resize, end.

The child becomes a session leader with the PTY as its controlling terminal through
util-linux ``setsid --ctty`` (so no Python runs between fork and exec in this threaded
daemon). Its process id is its process group id, so ending it signals the whole group.
"""

from __future__ import annotations

import asyncio
import errno
import fcntl
import os
import pwd
import signal
import struct
import subprocess
import termios
from dataclasses import dataclass
from typing import TypeVar

SETSID = "/usr/bin/setsid"
READ_SIZE = 65536
T = TypeVar("T")


@dataclass(frozen=True)
class Account:
    """The local account a shell runs as."""

    name: str
    uid: int
    gid: int
    home: str

    @classmethod
    def lookup(cls, name: str) -> Account:
        """The account ``name``; KeyError if there is none."""
        entry = pwd.getpwnam(name)
        return cls(name, entry.pw_uid, entry.pw_gid, entry.pw_dir)


def set_window(fd: int, cols: int, rows: int) -> None:
    """Tell the terminal on ``fd`` its size (the shell gets SIGWINCH)."""
    cols, rows = (min(max(v, 1), 1000) for v in (cols, rows))
    fcntl.ioctl(fd, termios.TIOCSWINSZ, struct.pack("HHHH", rows, cols, 0, 0))


class PtyShell:
    """A running shell; ``master`` is the non-blocking PTY master."""

    def __init__(self, process: subprocess.Popen[bytes], master: int) -> None:
        self.process = process
        self.master = master

    @classmethod
    def start(cls, account: Account, shell: str, *, term: str, cols: int,
              rows: int) -> PtyShell:
        master, slave = os.openpty()
        try:
            set_window(master, cols, rows)
            process = subprocess.Popen(  # the customer's configured shell
                [SETSID, "--ctty", shell, "-l"], stdin=slave, stdout=slave, stderr=slave,
                cwd=account.home if os.path.isdir(account.home) else "/",
                env=_environment(account, shell, term), close_fds=True,
                user=_drop(account, account.uid), group=_drop(account, account.gid),
                extra_groups=_drop(account, []))
        except BaseException:
            os.close(master)
            raise
        finally:
            os.close(slave)
        os.set_blocking(master, False)
        return cls(process, master)

    def read_now(self, limit: int = READ_SIZE) -> bytes | None:
        """What the shell wrote so far, up to ``limit`` bytes, without waiting: None when
        there is nothing yet, b"" once the terminal is closed (the shell has gone).

        Reads are gathered up to ``limit`` so that a fast writer costs few messages."""
        parts: list[bytes] = []
        size = 0
        while size < limit:
            try:
                chunk = os.read(self.master, limit - size)
            except BlockingIOError:
                break
            except OSError as exc:
                if exc.errno != errno.EIO:  # EIO: every slave side is closed
                    raise
                chunk = b""
            if not chunk:
                if not parts:
                    return b""
                break
            parts.append(chunk)
            size += len(chunk)
        return b"".join(parts) if parts else None

    async def readable(self) -> None:
        """Wait until :meth:`read_now` has something (or the end) to report."""
        loop = asyncio.get_running_loop()
        ready = loop.create_future()
        loop.add_reader(self.master, ready.set_result, None)
        try:
            await ready
        finally:
            loop.remove_reader(self.master)

    async def write(self, data: bytes) -> None:
        loop = asyncio.get_running_loop()
        view = memoryview(data)
        while view:
            try:
                view = view[os.write(self.master, view):]
            except BlockingIOError:
                ready = loop.create_future()
                loop.add_writer(self.master, ready.set_result, None)
                try:
                    await ready
                finally:
                    loop.remove_writer(self.master)

    def resize(self, cols: int, rows: int) -> None:
        set_window(self.master, cols, rows)

    def hang_up(self) -> None:
        """SIGHUP then SIGKILL to the shell's process group: ends it now."""
        for signum in (signal.SIGHUP, signal.SIGKILL):
            try:
                os.killpg(self.process.pid, signum)
            except ProcessLookupError:
                return

    async def wait(self) -> int:
        """The exit status; 128+N when signal N ended it."""
        code = await asyncio.to_thread(self.process.wait)
        return 128 - code if code < 0 else code

    def close(self) -> None:
        os.close(self.master)


def _environment(account: Account, shell: str, term: str) -> dict[str, str]:
    return {"HOME": account.home, "USER": account.name, "LOGNAME": account.name,
            "SHELL": shell, "TERM": term or "dumb",
            "PATH": "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"}


def _drop(account: Account, value: T) -> T | None:
    """``value`` when the agent must switch to ``account``; None when it already runs as it."""
    return None if os.geteuid() == account.uid else value
