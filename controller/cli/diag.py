"""Diagnostics on a customer host, run as signed operations in a session."""

from __future__ import annotations

import enum
import time
from typing import Annotated, Any

import typer

from controller.cli import _diag_render as render
from controller.cli._app import Options, command, group
from controller.cli._operation import AgentOpt, CaseOpt, SessionOpt, run_operation
from rmaint.cli import OneLineUsage

diag_app = group("diag")
connect_app = typer.Typer(
    help="Check from the agent's host that a target answers (allowlisted in the customer's "
         "[diag] connect_allow).", no_args_is_help=True, cls=OneLineUsage)
diag_app.add_typer(connect_app, name="connect")

TimeoutOpt = Annotated[float, typer.Option(
    min=0.1, max=10, help="Seconds the whole check may take on the agent.")]
PortArg = Annotated[int, typer.Argument(min=1, max=65535, help="TCP port.",
                                        show_default=False)]


class By(enum.StrEnum):
    cpu = "cpu"
    memory = "memory"


def _run(opts: Options, operation: str, params: dict[str, Any], show: Any,
         where: tuple[str, str, str]) -> None:
    run_operation(opts, operation, params, show, where)


@command(diag_app, "system")
def diag_system(opts: Options, session: SessionOpt = "", case: CaseOpt = "",
                agent: AgentOpt = "") -> None:
    """Host, OS, uptime, CPU, load, memory and swap."""
    _run(opts, "diag.system", {}, render.render_fields, (session, case, agent))


@command(diag_app, "cpu")
def diag_cpu(
    opts: Options,
    interval: Annotated[float, typer.Option(
        min=0.1, max=5, help="Seconds to measure CPU use over.")] = 0.5,
    session: SessionOpt = "", case: CaseOpt = "", agent: AgentOpt = "",
) -> None:
    """CPU use overall and per core, load, frequency and time split."""
    _run(opts, "diag.cpu", {"interval": interval}, render.render_cpu, (session, case, agent))


@command(diag_app, "memory")
def diag_memory(opts: Options, session: SessionOpt = "", case: CaseOpt = "",
                agent: AgentOpt = "") -> None:
    """Memory and swap: total, used, free, available."""
    _run(opts, "diag.memory", {}, render.render_memory, (session, case, agent))


@command(diag_app, "disks")
def diag_disks(opts: Options, session: SessionOpt = "", case: CaseOpt = "",
               agent: AgentOpt = "") -> None:
    """Mounted filesystems: size, use, free space and inodes; disk I/O counters."""
    _run(opts, "diag.disks", {}, render.render_disks, (session, case, agent))


@command(diag_app, "network")
def diag_network(opts: Options, session: SessionOpt = "", case: CaseOpt = "",
                 agent: AgentOpt = "") -> None:
    """Interfaces with addresses and traffic, listening sockets, connections by state."""
    _run(opts, "diag.network", {}, render.render_network, (session, case, agent))


@command(diag_app, "processes")
def diag_processes(
    opts: Options,
    by: Annotated[By, typer.Option(help="Sort by CPU or memory use.")] = By.cpu,
    limit: Annotated[int, typer.Option(min=1, max=100, help="How many processes.")] = 10,
    interval: Annotated[float, typer.Option(
        min=0, max=10, help="Seconds to sample CPU use over.")] = 0.5,
    session: SessionOpt = "", case: CaseOpt = "", agent: AgentOpt = "",
) -> None:
    """The top processes by CPU or memory, command lines redacted on the agent."""
    params = {"by": by.value, "limit": limit, "interval": interval}
    _run(opts, "diag.processes", params, render.render_processes, (session, case, agent))


@command(diag_app, "process")
def diag_process(
    opts: Options,
    pid: Annotated[int, typer.Argument(min=1, max=2**31 - 1, help="The process id.",
                                       show_default=False)],
    session: SessionOpt = "", case: CaseOpt = "", agent: AgentOpt = "",
) -> None:
    """One process in detail: identity, memory, CPU time, threads, files, connections;
    its command line redacted and its environment's values withheld on the agent."""
    _run(opts, "diag.process", {"pid": pid}, render.render_process, (session, case, agent))


@command(diag_app, "services")
def diag_services(
    opts: Options,
    failed: Annotated[bool, typer.Option("--failed", help="Only failed units.")] = False,
    session: SessionOpt = "", case: CaseOpt = "", agent: AgentOpt = "",
) -> None:
    """systemd service units and their states."""
    _run(opts, "diag.services", {"failed_only": failed}, render.render_services,
         (session, case, agent))


@command(diag_app, "clock")
def diag_clock(opts: Options, session: SessionOpt = "", case: CaseOpt = "",
               agent: AgentOpt = "") -> None:
    """The agent's time and time zone, and its offset from this machine's clock (agent
    minus this machine, including the time the request takes to reach the agent)."""
    params = {"controller_time": round(time.time(), 3)}
    _run(opts, "diag.clock", params, render.render_clock, (session, case, agent))


@command(diag_app, "database")
def diag_database(
    opts: Options,
    name: Annotated[str, typer.Argument(
        help="A data source configured by the customer ([[diag.data_sources]] in "
             "agent.toml).", show_default=False)],
    session: SessionOpt = "", case: CaseOpt = "", agent: AgentOpt = "",
) -> None:
    """Check one of the customer's data sources (PostgreSQL or SQLite): reachable, version,
    size, latency; on PostgreSQL also queries running over 5 s and lock waits."""
    _run(opts, "diag.database", {"name": name}, render.render_database,
         (session, case, agent))


@command(connect_app, "tcp")
def connect_tcp(
    opts: Options,
    host: Annotated[str, typer.Argument(help="Host name or IP address.", show_default=False)],
    port: PortArg,
    timeout: TimeoutOpt = 5.0,
    session: SessionOpt = "", case: CaseOpt = "", agent: AgentOpt = "",
) -> None:
    """Open a TCP connection to HOST PORT: connected or why not, and how fast."""
    params = {"check": "tcp", "host": host, "port": port, "timeout": timeout}
    _run(opts, "diag.connect", params, render.render_connect, (session, case, agent))


@command(connect_app, "dns")
def connect_dns(
    opts: Options,
    name: Annotated[str, typer.Argument(help="Host name to resolve.", show_default=False)],
    timeout: TimeoutOpt = 5.0,
    session: SessionOpt = "", case: CaseOpt = "", agent: AgentOpt = "",
) -> None:
    """Resolve NAME with the agent host's resolver: its addresses, and how fast."""
    params = {"check": "dns", "name": name, "timeout": timeout}
    _run(opts, "diag.connect", params, render.render_connect, (session, case, agent))


@command(connect_app, "http")
def connect_http(
    opts: Options,
    url: Annotated[str, typer.Argument(help="http:// or https:// URL.", show_default=False)],
    insecure: Annotated[bool, typer.Option(
        "--insecure", help="Do not verify the server's certificate.")] = False,
    timeout: TimeoutOpt = 5.0,
    session: SessionOpt = "", case: CaseOpt = "", agent: AgentOpt = "",
) -> None:
    """GET URL: status, redirects and latency (the body is never read)."""
    params = {"check": "http", "url": url, "verify": not insecure, "timeout": timeout}
    _run(opts, "diag.connect", params, render.render_connect, (session, case, agent))


@command(connect_app, "tls")
def connect_tls(
    opts: Options,
    host: Annotated[str, typer.Argument(help="Host name or IP address.", show_default=False)],
    port: PortArg,
    server_name: Annotated[str, typer.Option(
        "--server-name", help="Name to send (SNI) and verify; default HOST.")] = "",
    timeout: TimeoutOpt = 5.0,
    session: SessionOpt = "", case: CaseOpt = "", agent: AgentOpt = "",
) -> None:
    """TLS handshake with HOST PORT: the certificate, its expiry, and whether it verifies."""
    params: dict[str, Any] = {"check": "tls", "host": host, "port": port, "timeout": timeout}
    if server_name:
        params["server_name"] = server_name
    _run(opts, "diag.connect", params, render.render_connect, (session, case, agent))


WATCH_METRICS = ("cpu", "memory", "load", "disk", "network", "processes")


@command(diag_app, "watch")
def diag_watch(
    opts: Options,
    metrics: Annotated[str, typer.Option(
        help=f"Comma-separated metrics to sample: {', '.join(WATCH_METRICS)}.")]
        = "cpu,memory,load",
    every: Annotated[int, typer.Option(min=1, max=3600, help="Seconds between samples.")] = 5,
    duration: Annotated[int, typer.Option(
        "--for", min=1, max=86400, help="Seconds to watch (at least --every).")] = 60,
    top: Annotated[int, typer.Option(
        min=1, max=50, help="Processes per sample (metric processes).")] = 5,
    session: SessionOpt = "", case: CaseOpt = "", agent: AgentOpt = "",
) -> None:
    """Sample metrics on the agent every N seconds for M seconds: a live table, or with
    --json one JSON line per sample as it arrives; the receipt binds every sample."""
    from controller.cli._watch import watch

    chosen = [m.strip() for m in metrics.split(",") if m.strip()]
    unknown = [m for m in chosen if m not in WATCH_METRICS]
    if not chosen or unknown or len(set(chosen)) != len(chosen):
        raise typer.BadParameter(f"give distinct metrics of {', '.join(WATCH_METRICS)}",
                                 param_hint="--metrics")
    if duration < every:
        raise typer.BadParameter("must be at least --every", param_hint="--for")
    params = {"metrics": chosen, "every": every, "for": duration, "top": top}
    watch(opts, params, (session, case, agent))
