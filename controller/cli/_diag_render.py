"""Readable tables of diagnostic results.

The agent's catalogue defines the result shapes (see the modules of ``agent.diag``);
field names carry their units, and rendering goes by them so that a field added on the
agent shows up without a change here: ``*_bytes`` in binary units, ``*percent*`` as %,
latencies and durations in ms, ``*_mhz``/``*_mbps`` as such, ``*_at`` as local time (with
the age in labelled lines), uptimes as 3d 4h. Each operation has a renderer that puts
the fields a person looks for first; ``--json`` shows the result exactly as the agent
returned it.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import Any

from controller.cli import _output as out
from rmaint.text import printable

_BYTE_WORDS = {"total", "available", "used", "free", "rss", "vms", "bytes", "size", "shared",
               "buffers", "cached"}
_EPOCH_2001 = 1_000_000_000
_MAX_TEXT = 120
# Display order of known fields (the agent sends canonical JSON, sorted by key); a field
# matches exactly or as the prefix of a group ("memory" for memory.total), the longest
# group winning. Others follow, long command lines last.
_ORDER = ("hostname", "os", "platform", "release", "kernel", "machine", "boot_time", "uptime",
          "cpu", "load", "memory", "swap", "mountpoint", "device", "fstype", "total", "used",
          "free", "available", "percent", "inodes_percent", "pid", "ppid", "name", "user",
          "cpu_percent", "memory_rss", "memory_percent", "status")
_LAST = ("cmdline", "command", "args")
# Shown apart (the redaction note) or only in --json.
_NOT_SHOWN = {"redactions"}
# Unit suffixes dropped from labels: the values carry their units.
_UNIT_SUFFIXES = ("_bytes", "_seconds", "_at", "_mhz", "_mbps")
Row = dict[str, Any]
Column = tuple[str, str]  # field, heading


def _rank(key: str) -> int:
    name = key.lower()
    if name in _ORDER:
        return _ORDER.index(name)
    if name in _LAST:
        return len(_ORDER) + 1
    groups = [g for g in _ORDER if name.startswith((g + "_", g + "."))]
    if groups:
        return _ORDER.index(max(groups, key=len))
    return len(_ORDER)


def ordered(keys: list[str]) -> list[str]:
    """Known fields first, in a reading order; unknown ones as sent; command lines last."""
    return sorted(keys, key=_rank)


def label(key: str) -> str:
    parts = key.split(".")
    last = parts[-1]
    for suffix in _UNIT_SUFFIXES:
        if last.endswith(suffix) and last != suffix.lstrip("_"):
            last = last.removesuffix(suffix)
            break
    if last.endswith("_percent") and last != "percent":
        last = last.removesuffix("_percent") + " %"
    text = " ".join([*parts[:-1], last]).replace("_", " ")
    return text[:1].upper() + text[1:]


def cell(key: str, value: Any) -> str:
    """``value`` of field ``key`` (possibly dotted) for a person."""
    name = key.lower().rsplit(".", 1)[-1]
    if value is None:
        return "-"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, int | float):
        return _number(name, value)
    if isinstance(value, list):
        if all(isinstance(v, int | float) and not isinstance(v, bool) for v in value):
            return " ".join(f"{v:.2f}" if isinstance(v, float) else str(v) for v in value)
        return _clip(", ".join(cell(name, v) for v in value))
    if isinstance(value, dict):
        return _clip(json.dumps(value, separators=(",", ":"), ensure_ascii=False))
    return _clip(safe(str(value)))


def _clip(text: str) -> str:
    # Tables are for reading; --json has the whole value.
    return text if len(text) <= _MAX_TEXT else text[:_MAX_TEXT - 1] + "…"


def safe(text: str) -> str:
    """``text`` as :func:`rmaint.text.printable` shows it, as the agent sends log lines:
    whatever an agent sends, no terminal escape reaches the screen."""
    return printable(text)


def _number(name: str, value: float) -> str:
    if "percent" in name:
        return out.percent(value)
    if name.startswith("inodes_"):
        return str(value)
    if name.endswith("_mhz"):
        return f"{value:.0f} MHz"
    if name.endswith("_mbps"):
        return f"{value:g} Mb/s"
    if name == "mtu_bytes":
        return f"{value} B"
    if name.endswith("_seconds"):
        return _seconds(name, value)
    if (name.endswith(("_time", "_at")) or name in {"time", "boot", "started"}) \
            and value > _EPOCH_2001:
        return out.when(value)
    if name.rsplit("_", 1)[-1] in _BYTE_WORDS:
        return out.size(value)
    return f"{value:.2f}" if isinstance(value, float) else str(value)


def _seconds(name: str, value: float) -> str:
    if "latency" in name or "duration" in name:
        return out.millis(value * 1000)
    if name == "utc_offset_seconds":
        sign, rest = ("-" if value < 0 else "+"), abs(int(value))
        return f"UTC{sign}{rest // 3600:02d}:{rest % 3600 // 60:02d}"
    if "offset" in name:
        return f"{value:+.3f} s"
    if "interval" in name or abs(value) < 60:
        return f"{value:.3g} s" if abs(value) < 1 else f"{value:.1f} s"
    return out.span(value)


def age(at: float, now: float | None = None) -> str:
    """How long ago Unix time ``at`` was (``3d 4h ago``), or how far ahead (``in 2h``)."""
    delta = (time.time() if now is None else now) - at
    return f"{out.span(delta)} ago" if delta >= 0 else f"in {out.span(-delta)}"


def _with_age(key: str, value: Any) -> str:
    text = cell(key, value)
    if key.endswith("_at") and isinstance(value, int | float) and value > _EPOCH_2001:
        return f"{text} ({age(value)})"
    return text


def flatten(data: dict[str, Any], prefix: str = "") -> Iterator[tuple[str, Any]]:
    """Nested objects as dotted keys, in the agent's order."""
    for key, value in data.items():
        if isinstance(value, dict) and value:
            yield from flatten(value, f"{prefix}{key}.")
        else:
            yield f"{prefix}{key}", value


def render_fields(result: Any, skip: Iterable[str] = ()) -> None:
    """A result that is one object, as labelled lines (diag.system), but for ``skip``."""
    if not isinstance(result, dict):
        out.note(json.dumps(result, indent=2, ensure_ascii=False))
        return
    hidden = _NOT_SHOWN | set(skip)
    pairs = dict(flatten({k: v for k, v in result.items() if k not in hidden}))
    out.fields((label(k), _with_age(k, pairs[k])) for k in ordered(list(pairs)))


def split_rows(result: Any) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """The result's list of records and its other fields."""
    if isinstance(result, list):
        return [r for r in result if isinstance(r, dict)], {}
    if not isinstance(result, dict):
        return [], {"result": result}
    lists = [k for k, v in result.items() if isinstance(v, list)
             and all(isinstance(r, dict) for r in v)]
    if not lists:
        return [], result
    rows_key = lists[0]
    return result[rows_key], {k: v for k, v in result.items() if k != rows_key}


def render_rows(title: str, result: Any) -> None:
    """A result that is a list of records, as one table, in the generic reading order."""
    rows, other = split_rows(result)
    if other:
        out.fields((label(k), cell(k, v)) for k, v in flatten(other) if k not in _NOT_SHOWN)
    records_table(title, rows)


def records_table(title: str, rows: Sequence[Row], columns: Sequence[Column] = (),
                  skip: Iterable[str] = (),
                  formats: dict[str, Callable[[Any], str]] | None = None) -> None:
    """``rows`` as a table: ``columns`` first with their headings, then any other field
    the agent sent (but ``skip``) in the generic order; command lines last."""
    named = [key for key, _ in columns]
    extra: list[str] = []
    for row in rows:
        extra += [k for k in row if k not in named and k not in extra and k not in skip
                  and not isinstance(row[k], list | dict)]
    last = [k for k in ordered(extra) if k in _LAST]
    keys = named + [k for k in ordered(extra) if k not in _LAST] + last
    headings = dict(columns)
    shown = formats or {}

    def show(key: str, row: Row) -> str:
        value = row.get(key)
        return shown[key](value) if key in shown and value is not None else cell(key, value)

    out.table(title, [headings.get(k) or label(k) for k in keys],
              ([show(k, row) for k in keys] for row in rows))


def _rows(result: Any, key: str) -> list[Row]:
    value = result.get(key) if isinstance(result, dict) else None
    return [r for r in value if isinstance(r, dict)] if isinstance(value, list) else []


def _truncated(result: dict[str, Any], key: str, what: str) -> None:
    if result.get(f"{key}_truncated"):
        out.note(f"(more {what} on the agent than shown)")


def _failure(result: Any) -> bool:
    """Show a result that says the check or read could not be done; True if it did."""
    if not isinstance(result, dict):
        return False
    if result.get("available") is False:
        out.note(f"not available: {safe(str(result.get('reason') or 'no reason given'))}")
        return True
    if "error" in result and "message" in result:  # files.*, logs.* refusals
        out.note(f"{safe(str(result['error']))}: {safe(str(result['message']))}")
        return True
    return False


# -- diag.* ---------------------------------------------------------------------------------


def render_cpu(result: Any) -> None:
    if not isinstance(result, dict):
        return render_fields(result)
    loads = [result.get(f"load_average_{m}m") for m in (1, 5, 15)]
    freq = result.get("frequency") or {}
    split = result.get("times_percent") or {}
    stats = result.get("stats") or {}
    pairs = [
        ("CPU use", f"{cell('percent', result.get('percent'))} over "
                    f"{cell('interval_seconds', result.get('interval_seconds'))}"),
        ("Cores", f"{result.get('logical_count')} logical, "
                  f"{result.get('physical_count') or '-'} physical"),
        ("Load average", " ".join(cell("load", v) for v in loads) + " (1, 5, 15 min)"),
    ]
    if freq:
        pairs.append(("Frequency", f"{cell('current_mhz', freq.get('current_mhz'))} (min "
                                   f"{cell('min_mhz', freq.get('min_mhz'))}, max "
                                   f"{cell('max_mhz', freq.get('max_mhz'))})"))
    busy = [(k.removesuffix("_percent"), v) for k, v in split.items()
            if isinstance(v, int | float) and v]
    if busy:
        pairs.append(("Time split", ", ".join(f"{k} {out.percent(v)}" for k, v in busy)))
    pairs += [(label(k), cell(k, v)) for k, v in stats.items()]
    out.fields(pairs)
    cores = result.get("per_core_percent") or []
    mhz = result.get("per_core_frequency_mhz") or []
    out.table("Per core", ["Core", "Use %", "Frequency"], (
        [str(i), cell("percent", use), cell("current_mhz", mhz[i]) if i < len(mhz) else "-"]
        for i, use in enumerate(cores)))


def render_memory(result: Any) -> None:
    if not isinstance(result, dict):
        return render_fields(result)
    columns = [("total_bytes", "Total"), ("used_bytes", "Used"), ("free_bytes", "Free"),
               ("available_bytes", "Available"), ("percent", "Use %")]
    rows = []
    for name in ("memory", "swap"):
        part = result.get(name)
        if isinstance(part, dict):
            rows.append({"kind": name.capitalize(), **part})
    records_table("Memory", rows, [("kind", ""), *columns])


def render_disks(result: Any) -> None:
    if not isinstance(result, dict):
        return render_rows("Filesystems", result)
    records_table("Filesystems", _rows(result, "filesystems"), [
        ("mountpoint", "Mountpoint"), ("device", "Device"), ("fstype", "Type"),
        ("total_bytes", "Size"), ("used_bytes", "Used"), ("free_bytes", "Free"),
        ("percent", "Use %"), ("inodes_percent", "Inodes %")],
        skip=("inodes_total", "inodes_used", "inodes_free", "options"))
    _truncated(result, "filesystems", "filesystems")
    records_table("Disk I/O since boot", _rows(result, "io_counters"), [
        ("disk", "Disk"), ("reads", "Reads"), ("writes", "Writes"), ("read_bytes", "Read"),
        ("written_bytes", "Written"), ("read_time_seconds", "Read time"),
        ("write_time_seconds", "Write time"), ("busy_time_seconds", "Busy")])


def render_processes(result: Any) -> None:
    if not isinstance(result, dict):
        return render_rows("Processes", result)
    rows = _rows(result, "processes")
    out.note(f"Top {len(rows)} of {result.get('matched_processes', '?')} matching processes "
             f"({result.get('total_processes', '?')} in all) by {result.get('by', '?')}, "
             f"CPU use over {cell('interval_seconds', result.get('interval_seconds'))}")
    records_table("Processes", rows, [
        ("pid", "PID"), ("ppid", "PPID"), ("user", "User"), ("name", "Name"),
        ("cpu_percent", "CPU %"), ("memory_rss_bytes", "RSS"), ("memory_percent", "Mem %"),
        ("status", "Status"), ("threads", "Threads"), ("started_at", "Running for"),
        ("cmdline", "Command")], formats={"started_at": lambda at: age(at).removesuffix(" ago")})


def render_process(result: Any) -> None:
    if isinstance(result, dict) and result.get("exists") is False:
        out.note(f"no process {result.get('pid')} on the agent")
        return
    if not isinstance(result, dict):
        return render_fields(result)
    skip = ("threads", "environment_keys", "environment_keys_truncated",
            "environment_values_withheld", "exists", "cmdline")
    first = ("pid", "ppid", "name", "user", "status", "started_at", "nice", "exe", "cwd",
             "memory_percent", "memory", "cpu_times", "num_threads")
    rest = {k: v for k, v in result.items() if k not in skip and k not in _NOT_SHOWN}
    pairs = dict(flatten({**{k: rest.pop(k) for k in first if k in rest}, **rest}))
    out.fields((label(k), _with_age(k, v)) for k, v in pairs.items())
    keys = result.get("environment_keys")
    if keys is not None:
        more = ", …" if result.get("environment_keys_truncated") else ""
        out.fields([("Environment", f"{result.get('environment_values_withheld', 0)} "
                                    "variables, values withheld"),
                    ("Variable names", cell("names", keys) + more)])
    out.fields([("Command", safe(str(result.get("cmdline") or "-")))])
    records_table("Threads (most CPU time first)", _rows(result, "threads"), [
        ("id", "Thread"), ("user_seconds", "User"), ("system_seconds", "System")])


def render_network(result: Any) -> None:
    if not isinstance(result, dict):
        return render_fields(result)
    interfaces = []
    for row in _rows(result, "interfaces"):
        addresses = [a for a in row.get("addresses") or [] if isinstance(a, dict)]
        interfaces.append({**row, "addresses": ", ".join(
            str(a.get("address")) for a in addresses if a.get("family") != "link") or "-",
            "mac": ", ".join(str(a.get("address")) for a in addresses
                             if a.get("family") == "link") or None})
    records_table("Interfaces", interfaces, [
        ("name", "Interface"), ("is_up", "Up"), ("addresses", "Addresses"), ("mac", "MAC"),
        ("speed_mbps", "Speed"), ("mtu_bytes", "MTU"), ("received_bytes", "Received"),
        ("sent_bytes", "Sent"), ("errors_in", "Errors in"), ("errors_out", "Errors out"),
        ("drops_in", "Drops in"), ("drops_out", "Drops out")],
        skip=("received_packets", "sent_packets", "duplex"))
    _truncated(result, "interfaces", "interfaces")
    records_table("Listening", _rows(result, "listening"), [
        ("protocol", "Protocol"), ("address", "Address"), ("port", "Port"), ("pid", "PID"),
        ("process", "Process")])
    _truncated(result, "listening", "listening sockets")
    states = result.get("tcp_connections_by_state") or {}
    out.fields([
        ("TCP connections", f"{result.get('tcp_connections', 0)}" + (
            " (" + ", ".join(f"{safe(str(k))} {v}" for k, v in states.items()) + ")"
            if states else "")),
        ("UDP sockets", str(result.get("udp_sockets", 0)))])


def render_services(result: Any) -> None:
    if _failure(result) or not isinstance(result, dict):
        return
    states = result.get("units_by_active_state") or {}
    units = _rows(result, "units")
    failed = [u for u in units if u.get("active") == "failed"]
    records_table("Services", units, [
        ("unit", "Unit"), ("load", "Load"), ("active", "Active"), ("sub", "Sub"),
        ("description", "Description")])
    _truncated(result, "units", "units")
    out.fields([
        ("Units", f"{result.get('total_units', len(units))} services: " + ", ".join(
            f"{safe(str(k))} {v}" for k, v in states.items())),
        ("Failed", ", ".join(safe(str(u.get("unit"))) for u in failed) or "none shown")])


def render_clock(result: Any) -> None:
    if not isinstance(result, dict):
        return render_fields(result)
    at = result.get("agent_time_at")
    zone = f"{safe(str(result.get('timezone')))} ({safe(str(result.get('timezone_abbreviation')))}"
    pairs = [
        ("Agent time (this machine's zone)", cell("agent_time_at", at)),
        ("Agent time (UTC)", safe(str(result.get("agent_time_utc")))),
        ("Agent time zone", f"{zone}, {cell('utc_offset_seconds', result.get('utc_offset_seconds'))})"),
        ("Agent monotonic clock", cell("monotonic_seconds", result.get("monotonic_seconds"))),
        ("This machine's time sent", cell("controller_time_at",
                                          result.get("controller_time_at"))),
    ]
    offset = result.get("offset_seconds")
    if isinstance(offset, int | float):
        ahead = "agent ahead" if offset > 0 else "agent behind" if offset < 0 else "in step"
        pairs.append(("Offset (agent minus this machine)",
                      f"{offset:+.3f} s ({ahead}; includes the time the request took "
                      "to reach the agent)"))
    else:
        pairs.append(("Offset (agent minus this machine)", "-"))
    out.fields(pairs)


# -- diag.connect ---------------------------------------------------------------------------


def render_connect(result: Any) -> None:
    if not isinstance(result, dict):
        return render_fields(result)
    check = result.get("check")
    target = (f"{result.get('host')}:{result.get('port')}" if check in ("tcp", "tls")
              else result.get("name") if check == "dns" else result.get("url"))
    error = result.get("error")
    if error:
        outcome = f"failed: {safe(str(error))}"
    elif check == "tcp":
        outcome = "connected" if result.get("connected") else "not connected"
    elif check == "dns":
        outcome = "resolved" if result.get("resolved") else "not resolved"
    elif check == "http":
        outcome = f"HTTP {result.get('status')} {safe(str(result.get('reason') or ''))}".strip()
    else:
        outcome = ("handshake, certificate verified" if result.get("verified") else
                   f"handshake, certificate NOT verified: "
                   f"{safe(str(result.get('verify_error')))}")
    pairs = [("Check", f"{check} {safe(str(target))}"), ("Result", outcome)]
    if result.get("latency_seconds") is not None:
        pairs.append(("Latency", cell("latency_seconds", result["latency_seconds"])))
    if check == "tls" and "not_after_at" in result:
        not_after = result["not_after_at"]
        expiry = ("EXPIRED " + age(not_after) if result.get("expired")
                  else "expires " + age(not_after))
        pairs.append(("Valid until", f"{cell('not_after_at', not_after)} ({expiry})"))
    for index, hop in enumerate(_rows(result, "redirects"), 1):
        pairs.append((f"Redirect {index}", f"{hop.get('status')} to "
                                           f"{safe(str(hop.get('location')))}"))
    done = {"check", "host", "port", "name", "url", "error", "connected", "resolved",
            "status", "reason", "verified", "verify_error", "latency_seconds",
            "not_after_at", "expires_in_seconds", "expired", "redirects", "handshake"}
    rest = {k: v for k, v in result.items() if k not in done and k not in _NOT_SHOWN}
    pairs += [(label(k), _with_age(k, v)) for k, v in rest.items()]
    out.fields(pairs)


# -- diag.database --------------------------------------------------------------------------


def render_database(result: Any) -> None:
    if not isinstance(result, dict):
        return render_fields(result)
    error = result.get("error")
    outcome = (f"unreachable: {safe(str(error))}" if error or not result.get("reachable")
               else "reachable")
    pairs = [("Data source", f"{safe(str(result.get('name')))} "
                             f"({safe(str(result.get('engine')))})"),
             ("Result", outcome)]
    for key in ("version", "size_bytes", "latency_seconds"):
        if result.get(key) is not None:
            pairs.append((label(key), cell(key, result[key])))
    done = {"name", "engine", "reachable", "error", "version", "size_bytes",
            "latency_seconds", "long_running_queries", "lock_waits"}
    pairs += [(label(k), _with_age(k, v)) for k, v in result.items()
              if k not in done and k not in _NOT_SHOWN]
    out.fields(pairs)
    seconds = {"duration_seconds": lambda v: f"{v:.1f} s"}
    for key, title, columns in (
            ("long_running_queries", "Queries running longer than 5 s",
             [("pid", "PID"), ("state", "State"), ("duration_seconds", "Running for"),
              ("query", "Query")]),
            ("lock_waits", "Waiting for a lock",
             [("pid", "PID"), ("wait_event_type", "Wait type"), ("wait_event", "Event"),
              ("duration_seconds", "Waiting for")])):
        if isinstance(result.get(key), list):
            rows = [{k: safe(v) if isinstance(v, str) else v for k, v in row.items()}
                    for row in _rows(result, key)]
            if rows:
                records_table(title, rows, columns, formats=seconds)
            else:
                out.note(f"{title}: none")


# -- logs.* ---------------------------------------------------------------------------------


def _source(result: dict[str, Any]) -> str:
    if "unit" in result:
        return f"unit {safe(str(result['unit']))}"
    return safe(str(result.get("path", "?")))


def _log_lines(lines: Iterable[Any]) -> None:
    for line in lines:
        out.note(safe(str(line)))


def _log_notes(result: dict[str, Any]) -> None:
    if result.get("lines_cut"):
        out.note(f"({result['lines_cut']} long lines cut)")
    if result.get("lines_dropped_for_size"):
        out.note(f"({result['lines_dropped_for_size']} oldest lines left out to keep "
                 "the result small)")


def render_tail(result: Any) -> None:
    if _failure(result) or not isinstance(result, dict):
        return
    size = f", {out.size(result['size_bytes'])}" if "size_bytes" in result else ""
    out.note(f"== last {result.get('line_count', 0)} lines of {_source(result)}{size}")
    _log_lines(result.get("lines") or [])
    _log_notes(result)


def render_search(result: Any) -> None:
    if _failure(result) or not isinstance(result, dict):
        return
    matches = _rows(result, "matches")
    how = [w for w, on in (("regex", result.get("regex")),
                           ("ignoring case", result.get("ignore_case"))) if on]
    found = result.get("match_count", len(matches))
    scanned = result.get("scanned_lines")
    out.note(f"== {found} matching lines for {json.dumps(result.get('pattern'))}"
             + (f" ({', '.join(how)})" if how else "")
             + f" in {_source(result)}"
             + (f", {scanned} lines searched" if scanned is not None else "")
             + (f"; the most recent {len(matches)} shown" if len(matches) < found else ""))
    _log_lines(m.get("line", "") for m in matches)
    if result.get("complete") is False:
        out.note("(incomplete: the search ran out of time on the agent; "
                 "older lines were not all searched)")
    _log_notes(result)


# -- files.* --------------------------------------------------------------------------------


def render_stat(result: Any) -> None:
    if _failure(result) or not isinstance(result, dict):
        return
    pairs = [("Path", safe(str(result.get("path"))))]
    if result.get("real_path") not in (None, result.get("path")):
        pairs.append(("Real path", safe(str(result.get("real_path")))))
    pairs += [
        ("Type", safe(str(result.get("type")))),
        ("Size", f"{cell('size_bytes', result.get('size_bytes'))} "
                 f"({result.get('size_bytes')} bytes)"),
        ("Permissions", f"{safe(str(result.get('permissions')))} ({result.get('mode')})"),
        ("Owner", f"{safe(str(result.get('owner') or '?'))} ({result.get('uid')})"),
        ("Group", f"{safe(str(result.get('group') or '?'))} ({result.get('gid')})"),
    ]
    for key in ("modified_at", "changed_at", "accessed_at"):
        if key in result:
            pairs.append((label(key), _with_age(key, result[key])))
    done = {"path", "real_path", "type", "size_bytes", "permissions", "mode", "owner", "uid",
            "group", "gid", "modified_at", "changed_at", "accessed_at"}
    pairs += [(label(k), _with_age(k, v)) for k, v in result.items()
              if k not in done and k not in _NOT_SHOWN]
    out.fields(pairs)


def render_hash(result: Any) -> None:
    if _failure(result) or not isinstance(result, dict):
        return
    pairs = [("Path", safe(str(result.get("path"))))]
    if result.get("real_path") not in (None, result.get("path")):
        pairs.append(("Real path", safe(str(result.get("real_path")))))
    pairs += [("SHA-256", safe(str(result.get("sha256")))),
              ("Size", f"{cell('size_bytes', result.get('size_bytes'))} "
                       f"({result.get('size_bytes')} bytes)"),
              ("Hashed in", cell("duration_seconds", result.get("duration_seconds")))]
    out.fields(pairs)
