"""Interactive login through the SSH gateway next to a direct OpenSSH login to a local sshd.

One deployment (``demo.deployment.Deployment``: controller with the gateway, agent with a
``[shell]`` table) in a temporary directory. Both paths are driven by the same real
``ssh -tt`` client with the same key and measured in the same run:

* throughput: ``cat`` of a base64 text file (PTY output, so both pay the same line
  discipline), bytes per second until an end marker arrives;
* keystroke echo: one byte written to a running ``cat`` and the time until its echo
  comes back, over many keystrokes (p50, p99).

Targets: gateway throughput >= 0.3x sshd; added echo latency (gateway p50 - sshd p50)
<= 2 ms. When no sshd is installed, that is said, and the gateway's own figures are
printed alone.
"""

from __future__ import annotations

import base64
import getpass
import json
import os
import secrets
import select
import shutil
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from cryptography.hazmat.primitives import serialization

from bench._stats import Latency
from demo.deployment import Deployment, free_port, port_open, wait_until

SSHD = "/usr/sbin/sshd"
PAYLOAD_MIB = 16
KEYSTROKES = 300
TARGET_THROUGHPUT = 0.3
TARGET_ADDED_MS = 2.0


@dataclass(frozen=True)
class Figures:
    name: str
    mib_per_s: float
    echo: Latency


class Terminal:
    """``ssh -tt`` on pipes; reads with a deadline."""

    def __init__(self, argv: list[str]) -> None:
        self.proc = subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                     stderr=subprocess.DEVNULL, bufsize=0)
        assert self.proc.stdin is not None and self.proc.stdout is not None
        self._in, self._out = self.proc.stdin, self.proc.stdout.fileno()

    def send(self, data: bytes) -> None:
        self._in.write(data)

    def until(self, marker: bytes, timeout: float = 120.0) -> int:
        """Read until ``marker`` arrives; the bytes read."""
        seen, tail, deadline = 0, b"", time.monotonic() + timeout
        while marker not in tail:
            ready, _, _ = select.select([self._out], [], [], max(0.0, deadline - time.monotonic()))
            if not ready:
                raise TimeoutError(f"no {marker!r} within {timeout}s")
            chunk = os.read(self._out, 1 << 20)
            if not chunk:
                raise EOFError("ssh ended")
            seen += len(chunk)
            tail = (tail + chunk)[-(len(marker) + 64):]
        return seen

    def close(self) -> None:
        self.proc.kill()
        self.proc.wait()


def measure(name: str, argv: list[str], payload: Path) -> Figures:
    term = Terminal(argv)
    try:
        term.send(b"stty -echoctl; echo READY-$((1+1))\n")
        term.until(b"READY-2", 30)
        start = time.perf_counter()
        term.send(f"cat {payload}; echo END-$((1+1))\n".encode())
        seen = term.until(b"END-2")
        mib_per_s = seen / (1 << 20) / (time.perf_counter() - start)
        term.send(b"cat\n")
        time.sleep(0.3)  # cat is reading
        samples = []
        for i in range(KEYSTROKES):
            key = bytes([97 + i % 26])
            start = time.perf_counter()
            term.send(key)
            term.until(key, 10)
            samples.append((time.perf_counter() - start) * 1000)
        term.send(b"\x03exit\n")
        return Figures(name, mib_per_s, Latency(name, tuple(samples), 0.0))
    finally:
        term.close()


def ssh_argv(port: int, key: Path, known_hosts: Path, user: str) -> list[str]:
    return ["ssh", "-tt", "-p", str(port), "-o", "BatchMode=yes", "-o", "IdentitiesOnly=yes",
            "-o", "IdentityAgent=none", "-o", f"UserKnownHostsFile={known_hosts}",
            "-o", "StrictHostKeyChecking=yes", "-o", "GlobalKnownHostsFile=/dev/null",
            "-o", "LogLevel=ERROR", "-i", str(key), "-l", user, "127.0.0.1"]


def gateway_login(d: Deployment, port: int, known_hosts: Path) -> list[str]:
    """A fresh session under a shell grant, and the ``rmctl ssh --print`` command for it."""
    case_id = d.open_case("gateway benchmark")
    grant_id = d.grant_access(case_id, scopes=("shell",))
    session = d.json(d.engineer("session", "open", "--case", case_id, "--agent", "web-1",
                                "--grant", grant_id, "--json"))
    done = d.engineer("ssh", "--gateway", f"127.0.0.1:{port}", "--known-hosts",
                      str(known_hosts), "--session", str(session["session_id"]), "--print",
                      "--json")
    argv: list[str] = json.loads(done.stdout)
    return argv


def start_sshd(folder: Path, key: Path) -> tuple[subprocess.Popen[bytes], int, Path] | None:
    """A private sshd on a free port accepting ``key`` for the current user, or None."""
    if not Path(SSHD).exists():
        return None
    host_key = folder / "sshd_host_key"
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(host_key)],
                   check=True)
    private = serialization.load_pem_private_key(key.read_bytes(), None)
    public = private.public_key().public_bytes(serialization.Encoding.OpenSSH,
                                               serialization.PublicFormat.OpenSSH)
    (folder / "authorized_keys").write_bytes(public + b"\n")
    port = free_port()
    config = folder / "sshd_config"
    config.write_text(
        f"Port {port}\nListenAddress 127.0.0.1\nHostKey {host_key}\n"
        f"AuthorizedKeysFile {folder / 'authorized_keys'}\nPidFile {folder / 'sshd.pid'}\n"
        "PasswordAuthentication no\nKbdInteractiveAuthentication no\nUsePAM no\n"
        "StrictModes no\nPermitRootLogin prohibit-password\n")
    Path("/run/sshd").mkdir(exist_ok=True)
    proc = subprocess.Popen([SSHD, "-D", "-e", "-f", str(config)], stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    wait_until(lambda: port_open(port), "sshd to listen")
    public_host = (folder / "sshd_host_key.pub").read_text().split()
    known = folder / "sshd_known_hosts"
    known.write_text(f"[127.0.0.1]:{port} {public_host[0]} {public_host[1]}\n")
    return proc, port, known


def report(gateway: Figures, sshd: Figures | None) -> None:
    print(f"{'path':<26}{'MiB/s':>10}{'echo p50 ms':>14}{'echo p99 ms':>14}")
    for row in (sshd, gateway):
        if row is not None:
            print(f"{row.name:<26}{row.mib_per_s:>10.1f}{row.echo.p50:>14.3f}{row.echo.p99:>14.3f}")
    if sshd is None:
        print(f"sshd: not installed ({SSHD} missing), no peer to compare with: "
              "install openssh-server for the ratios")
        return
    ratio = gateway.mib_per_s / sshd.mib_per_s
    added = gateway.echo.p50 - sshd.echo.p50
    print(f"throughput gateway / sshd: {ratio:.2f}x (target >= {TARGET_THROUGHPUT}x: "
          f"{'met' if ratio >= TARGET_THROUGHPUT else 'NOT met'})")
    print(f"added echo latency p50: {added:+.3f} ms (target <= {TARGET_ADDED_MS} ms: "
          f"{'met' if added <= TARGET_ADDED_MS else 'NOT met'})")


def main() -> None:
    folder = Path(tempfile.mkdtemp(prefix="rmaint-bench-gateway-"))
    d = Deployment(folder / "deployment")
    sshd = None
    try:
        d.standard_setup()
        port = d.enable_shell(user=getpass.getuser())
        known = folder / "gateway_known_hosts"
        known.write_text(d.json(d.rmctl("gateway-key", "--json"))["known_hosts"] + "\n")
        payload = folder / "payload.txt"
        payload.write_bytes(base64.encodebytes(secrets.token_bytes(PAYLOAD_MIB * 3 << 18)))
        key = d.engineer_home / "identity.key"
        sshd = start_sshd(folder, key)
        peer = None
        if sshd is not None:
            peer = measure("direct OpenSSH (sshd)", ssh_argv(sshd[1], key, sshd[2],
                                                              getpass.getuser()), payload)
        gateway = measure("rmaint gateway", gateway_login(d, port, known), payload)
        report(gateway, peer)
    finally:
        if sshd is not None:
            sshd[0].terminate()
            sshd[0].wait()
        d.stop()
        shutil.rmtree(folder, ignore_errors=True)


if __name__ == "__main__":
    main()
