"""TOML, JSON and YAML editing: comments and layout kept, types kept, hostile text inert."""

from __future__ import annotations

import json
import tomllib
from io import StringIO
from typing import Any

import pytest
import tomlkit
from hypothesis import assume, given, settings
from hypothesis import strategies as st
from ruamel.yaml import YAML
from ruamel.yaml.error import YAMLError

from agent.params import ChangeRejected, FileRefused
from agent.params._trees import edit, verify

TOML = """# the application
title = "demo"   # shown in the header

[server]
port = 8080  # the port
ratio = 0.5
debug = false
started = 2024-01-01

[server.tls]
enabled = true
"""

YAML_TEXT = """# the application
server:
  port: 8080   # the port
  name: 'web'
  debug: false
  list:
    - 1
    - 2
log: {level: info}
"""

JSON_TEXT = '{\n    "server": {\n        "port": 8080,\n        "ratio": 0.5,\n        "on": true\n    },\n' \
            '    "name": "x"\n}\n'

_KEY = st.from_regex(r"[a-z][a-z0-9_]{0,8}", fullmatch=True)
_TEXT = st.text(st.characters(exclude_characters="\x00"), max_size=30)
_SCALAR = st.one_of(st.booleans(), st.integers(-2**40, 2**40),
                    st.floats(allow_nan=False, allow_infinity=False), _TEXT)
_DOCS = st.dictionaries(_KEY, st.one_of(_SCALAR, st.dictionaries(_KEY, _SCALAR, max_size=4)),
                        min_size=1, max_size=5)


def _yaml_load(text: str) -> Any:
    return YAML(typ="safe", pure=True).load(text)


def test_toml_keeps_comments_and_layout() -> None:
    after, old, new = edit("toml", TOML, {"server.port": 9090, "server.tls.enabled": False,
                                          "title": "prod"})
    assert old == {"server.port": 8080, "server.tls.enabled": True, "title": "demo"}
    assert new == {"server.port": 9090, "server.tls.enabled": False, "title": "prod"}
    assert after == TOML.replace("8080", "9090").replace("enabled = true", "enabled = false") \
        .replace('"demo"', '"prod"')


def test_yaml_keeps_comments_quotes_and_flow_style() -> None:
    after, _, _ = edit("yaml", YAML_TEXT, {"server.port": 81, "server.name": "api",
                                           "log.level": "debug"})
    # ruamel keeps a comment in its column, so a shorter value pads up to it
    assert after == YAML_TEXT.replace("8080   #", "81     #").replace("'web'", "'api'") \
        .replace("level: info", "level: debug")


def test_json_keeps_its_indentation() -> None:
    after, _, _ = edit("json", JSON_TEXT, {"server.port": 81, "server.ratio": 1})
    assert after == JSON_TEXT.replace("8080", "81").replace("0.5", "1.0")
    assert json.loads(edit("json", '{"a":1}', {"a": 2})[0]) == {"a": 2}


@pytest.mark.parametrize(("fmt", "text", "key", "value", "message"), [
    ("toml", TOML, "server.port", "8081", "expected an integer, got a string"),
    ("toml", TOML, "server.port", True, "expected an integer, got a boolean"),
    ("toml", TOML, "server.debug", 0, "expected a boolean, got an integer"),
    ("toml", TOML, "server.ratio", "1", "expected a number"),
    ("toml", TOML, "server.ratio", float("nan"), "finite"),
    ("toml", TOML, "server.started", "2025-01-01", "not a single value"),
    ("toml", TOML, "server", 1, "not a single value"),
    ("toml", TOML, "server.tls.missing", 1, "no such key"),
    ("toml", TOML, "title.x", 1, "no such key"),
    ("yaml", YAML_TEXT, "server.list", 1, "not a single value"),
    ("yaml", YAML_TEXT, "server.port", None, "string, number or boolean"),
    ("json", JSON_TEXT, "server.on", "yes", "expected a boolean"),
    ("json", JSON_TEXT, "name", "a\x00b", "without NUL"),
    ("json", JSON_TEXT, "name", "x" * 5000, "at most 4096"),
])
def test_wrong_types_and_missing_keys_are_refused(fmt: str, text: str, key: str, value: Any,
                                                  message: str) -> None:
    with pytest.raises(ChangeRejected, match=message):
        edit(fmt, text, {key: value})


@pytest.mark.parametrize(("fmt", "text"), [
    ("json", '{"a": 1, "a": 2}'), ("json", '{"a": NaN}'), ("json", "{"),
    ("toml", "a = "), ("yaml", "a: [1"), ("toml", "a = 1\na = 2\n"),
])
def test_unparsable_files_are_refused(fmt: str, text: str) -> None:
    with pytest.raises(FileRefused):
        edit(fmt, text, {"a": 1})


@settings(deadline=None)
@given(_DOCS, st.data())
def test_toml_round_trip(doc: dict[str, Any], data: st.DataObject) -> None:
    text = "# header\n" + tomlkit.dumps(doc)
    key = _pick(doc, data)
    new = data.draw(_same_kind(_get(doc, key)))
    assert edit("toml", text, {key: _get(doc, key)})[0] == text
    after, _, values = edit("toml", text, {key: new})
    verify("toml", text, after, values)
    assert after.startswith("# header\n")
    assert tomllib.loads(after) == _with(doc, key, new)


@settings(deadline=None)
@given(_DOCS, st.data())
def test_json_round_trip(doc: dict[str, Any], data: st.DataObject) -> None:
    text = json.dumps(doc, indent=2) + "\n"
    key = _pick(doc, data)
    new = data.draw(_same_kind(_get(doc, key)))
    assert edit("json", text, {key: _get(doc, key)})[0] == json.dumps(doc, indent=2,
                                                                       ensure_ascii=False) + "\n"
    after, _, values = edit("json", text, {key: new})
    verify("json", text, after, values)
    assert json.loads(after) == _with(doc, key, new)


@settings(deadline=None)
@given(_DOCS, st.data())
def test_yaml_round_trip(doc: dict[str, Any], data: st.DataObject) -> None:
    out = StringIO()
    YAML(typ="safe", pure=True).dump(doc, out)
    text = "# header\n" + out.getvalue()
    try:  # the dumper can write what no YAML parser reads back (e.g. {a: ?0})
        _yaml_load(text)
    except YAMLError:
        assume(False)
    key = _pick(doc, data)
    new = data.draw(_same_kind(_get(doc, key)))
    after, _, values = edit("yaml", text, {key: new})
    try:
        verify("yaml", text, after, values)
    except ChangeRejected as exc:  # ruamel may rewrite a float's digits: refused, never written
        assert "would alter values" in str(exc)
        return
    assert after.startswith("# header\n")
    # compared with what the text means: YAML itself may not keep every character of ``doc``
    assert _yaml_load(after) == _with(_yaml_load(text), key, new)


def test_a_writer_that_alters_other_values_is_caught() -> None:
    text = "a: 6.02661335405961e+16\nb: 1\n"
    after, _, values = edit("yaml", text, {"b": 2})
    if after != text.replace("b: 1", "b: 2"):  # this ruamel.yaml drops a digit of "a"
        with pytest.raises(ChangeRejected, match="would alter values"):
            verify("yaml", text, after, values)
    with pytest.raises(ChangeRejected, match="would alter values"):
        verify("yaml", text, text.replace("a: 6", "a: 7").replace("b: 1", "b: 2"), values)


def _pick(doc: dict[str, Any], data: st.DataObject) -> str:
    keys = [k for k, v in doc.items() if not isinstance(v, dict)]
    keys += [f"{k}.{s}" for k, v in doc.items() if isinstance(v, dict) for s in v]
    assume(keys)
    return data.draw(st.sampled_from(sorted(keys)))


def _get(doc: dict[str, Any], key: str) -> Any:
    node: Any = doc
    for part in key.split("."):
        node = node[part]
    return node


def _with(doc: dict[str, Any], key: str, value: Any) -> dict[str, Any]:
    copy: dict[str, Any] = json.loads(json.dumps(doc))
    *path, last = key.split(".")
    node = copy
    for part in path:
        node = node[part]
    node[last] = float(value) if isinstance(_get(doc, key), float) else value
    return copy


def _same_kind(value: Any) -> st.SearchStrategy[Any]:
    if isinstance(value, bool):
        return st.booleans()
    if isinstance(value, int):
        return st.integers(-2**40, 2**40)
    if isinstance(value, float):
        return st.floats(allow_nan=False, allow_infinity=False)
    return _TEXT
