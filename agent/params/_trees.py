"""Editing TOML, JSON and YAML documents in place by dotted key paths.

TOML goes through ``tomlkit`` and YAML through ``ruamel.yaml``'s round-trip mode, so
comments, order and layout outside the changed values stay as written. JSON has no
comments: it is re-serialised with the indentation it was written with. Both libraries
load on first use of their format: an idle agent never edits a file and need not hold them.
"""

from __future__ import annotations

import io
import json
import re
import tomllib
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from agent.params._values import Values, checked, plain
from agent.params.errors import ChangeRejected, FileRefused

if TYPE_CHECKING:
    from ruamel.yaml import YAML


def load(fmt: str, text: str) -> Any:
    """The document tree of ``text``; FileRefused if it does not parse."""
    try:
        if fmt == "toml":
            import tomlkit
            return tomlkit.parse(text)
        if fmt == "json":
            return json.loads(text, object_pairs_hook=_no_duplicates, parse_constant=_no_constant)
        return _yaml(text).load(text)
    except _parse_errors(fmt) as exc:
        raise FileRefused("unparsable", f"the file is not valid {fmt.upper()}: "
                          f"{str(exc).splitlines()[0][:200] if str(exc) else ''}") from exc


def edit(fmt: str, text: str, changes: Mapping[str, Any]) -> tuple[str, Values, Values]:
    """``text`` with ``changes`` made, the old value of each key and its new value."""
    tree = load(fmt, text)
    old: Values = {}
    new: Values = {}
    for key, value in changes.items():
        parent, last = _parent(tree, key)
        new[key] = checked(key, parent[last], value)
        old[key] = plain(parent[last])
        parent[last] = new[key]
    return dump(fmt, tree, text), old, new


def verify(fmt: str, before: str, after: str, new: Values) -> None:
    """ChangeRejected unless ``after``, read by a strict independent parser, is ``before``
    with exactly the values in ``new`` changed. Round-trip writers can reformat what they
    were not asked to touch (a float's digits, say); such an edit is refused."""
    expected, actual = _plain(fmt, before), _plain(fmt, after)
    for key, value in new.items():
        parent, last = _parent(expected, key)
        parent[last] = value
    if actual != expected:
        raise ChangeRejected(f"the {fmt.upper()} writer would alter values that were not asked "
                             "to change; refusing the change")


def _plain(fmt: str, text: str) -> Any:
    errors: tuple[type[Exception], ...] = (tomllib.TOMLDecodeError, *_parse_errors(fmt))
    try:
        if fmt == "toml":
            return tomllib.loads(text)
        if fmt == "json":
            return json.loads(text)
        from ruamel.yaml import YAML
        return YAML(typ="safe", pure=True).load(text)
    except errors as exc:
        raise ChangeRejected(f"the edited {fmt.upper()} does not parse") from exc


def _parse_errors(fmt: str) -> tuple[type[Exception], ...]:
    """What the format's parser raises for a text it cannot read (evaluated on failure only)."""
    if fmt == "toml":
        from tomlkit.exceptions import TOMLKitError
        return TOMLKitError, ValueError
    if fmt == "yaml":
        from ruamel.yaml.error import YAMLError
        return YAMLError, ValueError
    return (ValueError,)


def dump(fmt: str, tree: Any, original: str) -> str:
    if fmt == "toml":
        import tomlkit
        return tomlkit.dumps(tree)
    if fmt == "json":
        return _dump_json(tree, original)
    out = io.StringIO()
    _yaml(original).dump(tree, out)
    return out.getvalue()


def _parent(tree: Any, key: str) -> tuple[Any, str]:
    *path, last = key.split(".")
    node = tree
    for part in path:
        node = node.get(part) if isinstance(node, Mapping) else None
    if not isinstance(node, Mapping) or last not in node:
        raise ChangeRejected(f"{key}: the file has no such key")
    return node, last


def _dump_json(tree: Any, original: str) -> str:
    indent = _json_indent(original)
    text = json.dumps(tree, indent=indent, ensure_ascii=False, allow_nan=False)
    return text + "\n" if original.endswith("\n") else text


def _json_indent(original: str) -> int | str | None:
    match = re.search(r"\n([ \t]+)\S", original)
    if match is None:
        return None
    whitespace = match.group(1)
    return len(whitespace) if set(whitespace) == {" "} else whitespace


def _yaml(text: str) -> YAML:
    """A round-trip YAML that writes lists indented the way ``text`` does."""
    from ruamel.yaml import YAML
    yaml = YAML(typ="rt")
    yaml.preserve_quotes = True
    yaml.width = 4096  # never fold a long line that was not folded
    indent, offset = _yaml_indent(text)
    yaml.indent(mapping=indent, sequence=offset + 2, offset=offset)
    return yaml


def _yaml_indent(text: str) -> tuple[int, int]:
    """(mapping indent, dash offset) of ``text``, guessed from its first nested lines."""
    mapping = re.search(r"^[^\s#-][^\n]*:[ \t]*(?:#[^\n]*)?\n(?:[ \t]*(?:#[^\n]*)?\n)*"
                        r"( +)[^\s#-]", text, re.MULTILINE)
    dash = re.search(r"^( *)[^\s#-][^\n]*:[ \t]*\n( *)- ", text, re.MULTILINE)
    indent = len(mapping.group(1)) if mapping else 2
    offset = max(0, len(dash.group(2)) - len(dash.group(1))) if dash else 0
    return indent, offset


def _no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    result = dict(pairs)
    if len(result) != len(pairs):
        raise ValueError("an object has a duplicate key")
    return result


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")
