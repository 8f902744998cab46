"""Who exists: customers, enrolled agents and people, and the agents' approver keys."""

from __future__ import annotations

from collections.abc import Iterable, Mapping

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from controller.errors import AlreadyExists
from controller.store.records import AgentRecord, Customer, Principal, dump, load
from controller.store.schema import agents, approver_keys, customers, join_tokens, principals


def add_customer(conn: Connection, customer: Customer) -> None:
    """Insert ``customer``; AlreadyExists if its id is taken."""
    if get_customer(conn, customer.customer_id) is not None:
        raise AlreadyExists(f"customer {customer.customer_id} already exists")
    conn.execute(customers.insert().values(dump(customer)))


def get_customer(conn: Connection, customer_id: str) -> Customer | None:
    row = conn.execute(customers.select().where(customers.c.customer_id == customer_id)).first()
    return None if row is None else load(Customer, row)


def list_customers(conn: Connection) -> list[Customer]:
    rows = conn.execute(customers.select().order_by(customers.c.customer_id))
    return [load(Customer, r) for r in rows]


def save_agent(conn: Connection, agent: AgentRecord) -> None:
    """Insert or replace the agent row (a re-enrolled agent keeps its id and history)."""
    values = dump(agent)
    updated = conn.execute(
        agents.update().where(agents.c.agent_id == agent.agent_id).values(values)
    ).rowcount
    if not updated:
        conn.execute(agents.insert().values(values))


def get_agent(conn: Connection, agent_id: str) -> AgentRecord | None:
    row = conn.execute(agents.select().where(agents.c.agent_id == agent_id)).first()
    return None if row is None else load(AgentRecord, row)


def list_agents(conn: Connection, customer_id: str = "") -> list[AgentRecord]:
    query = agents.select().order_by(agents.c.agent_id)
    if customer_id:
        query = query.where(agents.c.customer_id == customer_id)
    return [load(AgentRecord, r) for r in conn.execute(query)]


def touch_agent(conn: Connection, agent_id: str, address: str, now: float) -> None:
    """Record a heartbeat: when the agent was last heard from and where it listens."""
    conn.execute(agents.update().where(agents.c.agent_id == agent_id)
                 .values(address=address, last_seen=now))


def touch_agents(conn: Connection, agent_ids: list[str], now: float) -> None:
    """Record that the dial-out agents ``agent_ids`` held their stream at ``now``."""
    if agent_ids:
        conn.execute(agents.update().where(agents.c.agent_id.in_(agent_ids))
                     .values(last_seen=now))


def replace_approver_keys(conn: Connection, agent_id: str, keys: Mapping[str, bytes],
                          now: float, names: Mapping[str, str] | None = None) -> None:
    """Make ``keys`` (key id -> raw public key) the agent's reported approver keys, with
    the ``names`` (key id -> name) its customer gave them."""
    conn.execute(approver_keys.delete().where(approver_keys.c.agent_id == agent_id))
    if keys:
        conn.execute(approver_keys.insert(), [
            {"agent_id": agent_id, "key_id": kid, "public_key": raw, "reported_at": now,
             "name": (names or {}).get(kid, "")}
            for kid, raw in sorted(keys.items())
        ])


def approver_names(conn: Connection, agent_ids: Iterable[str]) -> dict[tuple[str, str], str]:
    """(agent id, key id) -> the name the agent reports for that approver key, if any."""
    query = sa.select(approver_keys.c.agent_id, approver_keys.c.key_id, approver_keys.c.name) \
        .where(approver_keys.c.agent_id.in_(sorted(set(agent_ids))), approver_keys.c.name != "")
    return {(str(a), str(k)): str(n) for a, k, n in conn.execute(query)}


def get_approver_keys(conn: Connection, agent_id: str) -> dict[str, bytes]:
    """Key id -> raw public key, as last reported by the agent."""
    query = sa.select(approver_keys.c.key_id, approver_keys.c.public_key) \
        .where(approver_keys.c.agent_id == agent_id)
    return {kid: bytes(raw) for kid, raw in conn.execute(query)}


def save_principal(conn: Connection, principal: Principal) -> None:
    """Insert or replace an engineer or auditor (a later login may certify a new key)."""
    values = dump(principal)
    where = sa.and_(principals.c.role == principal.role, principals.c.name == principal.name)
    if not conn.execute(principals.update().where(where).values(values)).rowcount:
        conn.execute(principals.insert().values(values))


def engineer_known(conn: Connection, name: str) -> bool:
    """Whether ``name`` is an engineer here: logged in, or added (a login token issued)."""
    logged_in = sa.select(principals.c.name).where(principals.c.role == "engineer",
                                                   principals.c.name == name)
    added = sa.select(join_tokens.c.subject).where(join_tokens.c.role == "engineer",
                                                   join_tokens.c.subject == name)
    return conn.execute(logged_in.union_all(added).limit(1)).first() is not None


def list_principals(conn: Connection) -> list[Principal]:
    rows = conn.execute(principals.select().order_by(principals.c.role, principals.c.name))
    return [load(Principal, r) for r in rows]
