"""Commands of the controller's administrator: customers, agents, engineers, auditors."""

from __future__ import annotations

import time
from typing import Annotated, Any

import typer

from controller.cli import _output as out
from controller.cli import _values
from controller.cli._app import Options, command, group
from controller.cli._run import with_client
from controller.cli.install import agent_install
from controller.presence import is_online

customer_app = group("customer")
agent_app = group("agent")
engineer_app = group("engineer")
auditor_app = group("auditor")

TtlOpt = Annotated[str, typer.Option("--ttl", help="How long the join token is valid.",
                                     callback=_values.duration)]


@command(customer_app, "add")
def customer_add(
    opts: Options,
    customer_id: Annotated[str, typer.Argument(metavar="ID", help="Short id, e.g. acme.")],
    name: Annotated[str, typer.Option(help="Display name.")],
    contract_start: Annotated[str, typer.Option(help="First day covered, YYYY-MM-DD.",
                                                callback=_values.date)],
    contract_end: Annotated[str, typer.Option(help="Last day covered, YYYY-MM-DD.",
                                              callback=_values.date)],
) -> None:
    """Add a customer with its service contract."""
    from controller.client.inputs import parse_contract

    start, end = parse_contract(contract_start, contract_end)
    customer = with_client(opts, lambda c: c.add_customer(customer_id, name, start, end))
    if opts.json:
        out.emit_json(out.message_data(customer))
        return
    out.note(f"customer {customer.customer_id} added: {customer.name}, contract "
             f"{customer.contract_start} to {customer.contract_end}")


@command(customer_app, "list")
def customer_list(opts: Options) -> None:
    """List customers."""
    customers = with_client(opts, lambda c: c.list_customers())
    if opts.json:
        out.emit_json(out.messages_data(customers))
        return
    out.table("Customers", ("Customer", "Name", "Contract start", "Contract end"),
              ((c.customer_id, c.name, c.contract_start, c.contract_end) for c in customers))


@command(customer_app, "show")
def customer_show(
    opts: Options,
    customer_id: Annotated[str, typer.Argument(metavar="ID", help="Customer id, e.g. acme.")],
) -> None:
    """The customer's archive: systems, last inspections, cases and how each went, sessions."""
    from controller.cli._archive import show_archive

    reply = with_client(opts, lambda c: c.customer_archive(customer_id))
    if opts.json:
        out.emit_json(out.message_data(reply))
        return
    show_archive(reply)


def _token(opts: Options, role: str, subject: str, ttl: str, customer_id: str = "") -> None:
    from controller.client.inputs import parse_duration

    seconds = parse_duration(ttl, "--ttl")  # these values were checked as parsed (_values)
    reply = with_client(opts, lambda c: c.create_join_token(
        role, subject, customer_id=customer_id, ttl_seconds=seconds))
    if opts.json:
        out.emit_json({"role": role, "subject": subject, "customer_id": customer_id,
                       "token": reply.token, "expires_at": reply.expires_at})
        return
    owner = f" of customer {customer_id}" if customer_id else ""
    out.note(f"join token for {role} {subject}{owner}, single use, valid until "
             f"{out.when(reply.expires_at)}:")
    out.note()
    out.note(f"  {reply.token}")
    out.note()
    if role == "agent":
        out.note("on the customer host, run:")
        out.note(f"  rmagent enroll --token {reply.token}")
        out.note()
        out.note(f"agent {subject} is listed by 'rmctl agent list' once it has enrolled")
    else:
        out.note(f"on the {role}'s own machine, run:")
        out.note(f"  rmctl login --token {reply.token}")


@command(agent_app, "add")
def agent_add(
    opts: Options,
    agent_id: Annotated[str, typer.Argument(metavar="ID", help="Agent id, e.g. web-1.",
                                            callback=_values.agent_id)],
    customer: Annotated[str, typer.Option(help="Customer the agent belongs to.")],
    ttl: TtlOpt = "30m",
) -> None:
    """Create a join token for an agent (use it with 'rmagent enroll --token')."""
    _token(opts, "agent", agent_id, ttl, customer)


command(agent_app, "install")(agent_install)


@command(agent_app, "list")
def agent_list(
    opts: Options,
    customer: Annotated[str, typer.Option(help="Only this customer's agents.")] = "",
) -> None:
    """List enrolled agents: locked (an agent lock is in force: 'rmctl lock list'), else
    online or offline (heard from within the last 30 s: a heartbeat, or an open dial-out
    stream) and when last seen."""
    agents, locked = with_client(opts, lambda c: _agents_and_locks(c, customer))
    now = time.time()
    if opts.json:
        out.emit_json([{**out.message_data(a), "online": is_online(a.last_seen, now),
                        "locked": a.agent_id in locked} for a in agents])
        return
    out.table("Agents", ("Agent", "Customer", "Address", "State", "Enrolled", "Last seen"),
              ((a.agent_id, a.customer_id, a.address or "(dial-out)",
                "locked" if a.agent_id in locked
                else "online" if is_online(a.last_seen, now) else "offline",
                out.when(a.enrolled_at), out.when(a.last_seen)) for a in agents))


async def _agents_and_locks(client: Any, customer: str) -> tuple[list[Any], set[str]]:
    """The agents, and the ids of those an agent lock in force covers."""
    agents = list(await client.list_agents(customer))
    targets = {record.lock.target for record in await client.list_locks(False)}
    return agents, {a.agent_id for a in agents if f"agent:{a.agent_id}" in targets}


@command(engineer_app, "add")
def engineer_add(
    opts: Options, name: Annotated[str, typer.Argument(help="Engineer name, e.g. alice.",
                                                       callback=_values.person_name)],
    ttl: TtlOpt = "30m",
) -> None:
    """Create a join token for an engineer (use it with 'rmctl login --token')."""
    _token(opts, "engineer", name, ttl)


@command(auditor_app, "add")
def auditor_add(
    opts: Options, name: Annotated[str, typer.Argument(help="Auditor name, e.g. carol.",
                                                       callback=_values.person_name)],
    ttl: TtlOpt = "30m",
) -> None:
    """Create a join token for an auditor (use it with 'rmctl login --token')."""
    _token(opts, "auditor", name, ttl)


@command(engineer_app, "list")
def engineer_list(opts: Options) -> None:
    """List enrolled people: engineers and auditors."""
    people = with_client(opts, lambda c: c.list_principals())
    if opts.json:
        out.emit_json(out.messages_data(people))
        return
    out.table("People", ("Role", "Name", "Key", "Enrolled"),
              ((p.role, p.name, p.key_fingerprint, out.when(p.enrolled_at)) for p in people))
