"""INI and key=value editing: only the changed value's text moves; hostile values refused."""

from __future__ import annotations

import configparser

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from agent.params import ChangeRejected
from agent.params._lines import edit, read

INI = """; the application
name = demo

[server]
# where it listens
port = 8080
host: 0.0.0.0

[log]
level=info
"""

KV = """# environment
export PORT=8080
NAME="web"
TITLE='hello'
net.ipv4.ip_forward = 0
"""

_WORD = st.from_regex(r"[a-z][a-z0-9_]{0,8}", fullmatch=True)
_VALUE = st.from_regex(r"[A-Za-z]([A-Za-z0-9_ ./@:-]{0,20}[A-Za-z0-9_./@:-])?",
                       fullmatch=True)
# Unquoted in a key=value file, which a shell may source: plain words only.
_KV_VALUE = st.from_regex(r"[A-Za-z][A-Za-z0-9_./@:-]{0,20}", fullmatch=True)


def test_ini_changes_only_the_values() -> None:
    after, old, new = edit("ini", INI, {"server.port": 9090, "log.level": "debug", "name": "x"})
    assert old == {"server.port": "8080", "log.level": "info", "name": "demo"}
    assert new == {"server.port": "9090", "log.level": "debug", "name": "x"}
    assert after == INI.replace("8080", "9090").replace("=info", "=debug") \
        .replace("name = demo", "name = x")


def test_ini_keeps_separators_spacing_and_crlf() -> None:
    text = "[s]\r\nkey :  1  \r\nother=2\r\n"
    after, _, _ = edit("ini", text, {"s.key": 3})
    assert after == "[s]\r\nkey :  3  \r\nother=2\r\n"


def test_kv_keeps_export_and_quotes() -> None:
    after, old, _ = edit("kv", KV, {"PORT": 81, "NAME": "api", "TITLE": "bye",
                                    "net.ipv4.ip_forward": 1})
    assert old == {"PORT": "8080", "NAME": "web", "TITLE": "hello", "net.ipv4.ip_forward": "0"}
    assert after == KV.replace("8080", "81").replace('"web"', '"api"') \
        .replace("'hello'", "'bye'").replace("= 0", "= 1")


@pytest.mark.parametrize("value", ["a\nb", "a\rb", "a\x00b", "x" * 5000, " padded", "tab\x0bv",
                                   "a\u2028b"[:1] + "\x1b[31m"])
def test_values_that_would_leave_their_line_are_refused(value: str) -> None:
    for fmt, key in (("ini", "log.level"), ("kv", "NAME")):
        with pytest.raises(ChangeRejected):
            edit(fmt, INI if fmt == "ini" else KV, {key: value})


def test_quoted_values_refuse_their_quote() -> None:
    with pytest.raises(ChangeRejected, match="quoted value"):
        edit("kv", KV, {"NAME": 'a"; rm -rf /; "'})
    with pytest.raises(ChangeRejected, match="quoted value"):
        edit("kv", KV, {"TITLE": "it's"})


@pytest.mark.parametrize(("key", "value"), [
    ("NAME", "web$(touch /tmp/pwned)"), ("NAME", "`id`"), ("NAME", "${HOME}"),
    ("PORT", "8080;id"), ("PORT", "80 81"), ("PORT", "$(id)"), ("PORT", "a|b"),
])
def test_kv_values_a_sourcing_shell_would_expand_or_run_are_refused(key: str,
                                                                    value: str) -> None:
    with pytest.raises(ChangeRejected, match="shell sourcing the file"):
        edit("kv", KV.replace("export PORT=8080", "export PORT=web"), {key: value})


def test_kv_keeps_what_a_shell_reads_as_text() -> None:
    after, _, _ = edit("kv", KV, {"NAME": "web 2 (blue) #1", "TITLE": "costs $5 & `more`"})
    assert 'NAME="web 2 (blue) #1"' in after and "TITLE='costs $5 & `more`'" in after
    # INI files are not sourced: only their line rules apply.
    assert "$(x)" in edit("ini", INI, {"log.level": "$(x)"})[0]


def test_integers_stay_integers() -> None:
    with pytest.raises(ChangeRejected, match="expected an integer"):
        edit("ini", INI, {"server.port": "http"})
    with pytest.raises(ChangeRejected, match="string, number or boolean"):
        edit("ini", INI, {"log.level": ["debug"]})
    assert edit("ini", INI, {"server.port": "-1"})[2] == {"server.port": "-1"}
    assert edit("ini", INI, {"log.level": True})[2] == {"log.level": "true"}


@pytest.mark.parametrize(("fmt", "text", "key", "message"), [
    ("ini", INI, "server.missing", "no such key"),
    ("ini", INI, "port", "no such key"),             # not outside its section
    ("ini", INI, "log.port", "no such key"),
    ("ini", "[a]\nk=1\n[a]\nk=2\n", "a.k", "appears 2 times"),
    ("ini", "[a]\nk=1\n  continued\n", "a.k", "multi-line"),
    ("ini", "[a]\n# k=1\n;k=2\n", "a.k", "no such key"),  # commented out
    ("kv", KV, "PORT ", "no such key"),
    ("kv", "A=1\nA=2\n", "A", "appears 2 times"),
    ("kv", "#A=1\n", "A", "no such key"),
])
def test_missing_ambiguous_and_commented_keys_are_refused(fmt: str, text: str, key: str,
                                                           message: str) -> None:
    with pytest.raises(ChangeRejected, match=message):
        edit(fmt, text, {key: "1"})


def test_only_newline_ends_a_line() -> None:
    text = "A=1\x0cB=2\nC=3\n"  # a form feed is not a line break for the readers of this file
    assert read("kv", text, "A") == "1\x0cB=2"
    with pytest.raises(ChangeRejected):
        read("kv", text, "B")


@st.composite
def ini_documents(draw: st.DrawFn) -> tuple[str, list[tuple[str, str, str]]]:
    sections = draw(st.lists(_WORD, min_size=1, max_size=4, unique=True))
    lines, entries = [], []
    for section in sections:
        lines.append(f"[{section}]")
        for key in draw(st.lists(_WORD, min_size=1, max_size=4, unique=True)):
            if draw(st.booleans()):
                lines.append(draw(st.sampled_from(["# note", "; note", ""])))
            value = draw(_VALUE)
            lines.append(f"{key}{draw(st.sampled_from(['=', ' = ', ': ']))}{value}")
            entries.append((section, key, value))
    return "\n".join(lines) + "\n", entries


@settings(deadline=None)
@given(ini_documents(), st.data())
def test_ini_edit_reads_back_and_moves_nothing_else(doc: tuple[str, list[tuple[str, str, str]]],
                                                    data: st.DataObject) -> None:
    text, entries = doc
    section, key, value = data.draw(st.sampled_from(entries))
    new = data.draw(_VALUE)
    assert edit("ini", text, {f"{section}.{key}": value})[0] == text  # same value: same text
    after, _, _ = edit("ini", text, {f"{section}.{key}": new})
    parser = configparser.ConfigParser(interpolation=None)
    parser.optionxform = str  # type: ignore[assignment,method-assign]  # keep key case
    parser.read_string(after)
    assert parser[section][key] == new
    changed = [i for i, (a, b) in enumerate(zip(text.split("\n"), after.split("\n"), strict=True))
               if a != b]
    assert len(changed) <= 1


@settings(deadline=None)
@given(st.lists(st.tuples(_WORD.map(str.upper), _KV_VALUE), min_size=1, max_size=6,
                unique_by=lambda e: e[0]), st.data())
def test_kv_edit_reads_back_and_moves_nothing_else(entries: list[tuple[str, str]],
                                                   data: st.DataObject) -> None:
    text = "# generated\n" + "".join(f"{k}={v}\n" for k, v in entries)
    key, _ = data.draw(st.sampled_from(entries))
    new = data.draw(_KV_VALUE)
    after, _, _ = edit("kv", text, {key: new})
    assert read("kv", after, key) == new
    assert [read("kv", after, k) for k, _ in entries if k != key] == \
        [v for k, v in entries if k != key]


@settings(deadline=None)
@given(st.text(max_size=60))
def test_hostile_values_are_refused_or_stay_on_their_line(value: str) -> None:
    try:
        after, _, _ = edit("kv", KV, {"PORT": value})
    except ChangeRejected:
        return
    assert after.count("\n") == KV.count("\n")
    assert read("kv", after, "PORT") == value and read("kv", after, "NAME") == "web"
