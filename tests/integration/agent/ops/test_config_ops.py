"""config.preview / config.apply / config.undo over a real INI file and change store."""

from __future__ import annotations

import json
from dataclasses import replace

import pytest
from cryptography.hazmat.primitives.asymmetric import ed25519

from agent import params
from agent.data.errors import ChangeNotConsented, ChangeNotFound
from agent.errors import InvalidParams
from tests.integration.agent.ops.conftest import APP_INI, CTX, Ops

SECRET = "hunter2-planted-secret"  # noqa: S105 - a planted test value


def preview(ops: Ops, **changes: object) -> dict[str, object]:
    return ops.run("config.preview", {"file": "app", "changes": changes})


def test_preview_shows_changes_and_redacted_diff_and_touches_nothing(ops: Ops) -> None:
    result = preview(ops, **{"server.workers": 8})
    assert result["changes"] == [{"key": "server.workers", "old": "4", "new": "8"}]
    assert "-workers = 4\n+workers = 8\n" in str(result["diff"])
    assert SECRET not in json.dumps(result) and result["redactions"] == 1
    assert ops.app.read_text() == APP_INI
    stored = ops.store.preview(str(result["digest"]))
    assert stored is not None and stored.kind == "config" and SECRET in stored.plan["diff"]


def test_apply_needs_consent_then_changes_exactly_the_key(ops: Ops) -> None:
    digest = str(preview(ops, **{"server.workers": 8})["digest"])
    with pytest.raises(ChangeNotConsented) as refused:
        ops.run("config.apply", {"digest": digest})
    assert refused.value.detail == "no-consent" and ops.app.read_text() == APP_INI
    ops.consent(digest)
    result = ops.run("config.apply", {"digest": digest})
    assert result["status"] == "applied" and result["validation"]["exit_code"] == 0
    assert SECRET not in json.dumps(result)
    assert ops.app.read_text() == APP_INI.replace("workers = 4", "workers = 8")
    record = ops.store.journal_record(digest)
    assert record is not None and record["backup"]  # the agent path stays local
    assert "backup" not in result
    with pytest.raises(ChangeNotFound):  # never twice
        ops.run("config.apply", {"digest": digest})


@pytest.mark.parametrize("fault", ["reused", "expired", "other-digest", "unpinned",
                                   "other-grant"])
def test_apply_refuses_bad_consents(ops: Ops, fault: str) -> None:
    digest = str(preview(ops, **{"log.level": "debug"})["digest"])
    if fault == "reused":
        ops.consent(digest)
        ops.store.consume(ops.store.consents(digest)[0].consent_id, ops.clock())
    elif fault == "expired":
        ops.consent(digest, seconds=60)
        ops.clock.now += 120
    elif fault == "other-digest":
        ops.consent("sha256:" + "0" * 64)
    elif fault == "unpinned":
        ops.consent(digest, key=ed25519.Ed25519PrivateKey.generate())
    else:
        ops.consent(digest, ctx=replace(CTX, grant_id="G-2"))
    with pytest.raises(ChangeNotConsented):
        ops.run("config.apply", {"digest": digest})
    assert ops.app.read_text() == APP_INI


def test_validation_failure_restores_the_file(ops: Ops) -> None:
    digest = str(preview(ops, **{"server.workers": 99})["digest"])
    ops.consent(digest)
    result = ops.run("config.apply", {"digest": digest})
    assert result["status"] == "validation-failed" and result["restored"] is True
    assert result["validation"]["exit_code"] == 3
    assert "workers 99" in result["validation"]["output"]
    assert SECRET not in json.dumps(result) and result["validation"]["redactions"] >= 1
    assert ops.app.read_text() == APP_INI
    assert ops.store.preview(digest).status == "aborted"  # type: ignore[union-attr]


def test_undo_is_its_own_previewed_and_consented_change(ops: Ops) -> None:
    digest = str(preview(ops, **{"server.port": 9090})["digest"])
    ops.consent(digest)
    ops.run("config.apply", {"digest": digest})
    undo = ops.run("config.undo", {"digest": digest})
    assert undo["undo_of"] == digest and undo["digest"] != digest
    assert undo["changes"] == [{"key": "server.port", "old": "9090", "new": "8080"}]
    assert "-port = 9090\n+port = 8080\n" in str(undo["diff"])
    with pytest.raises(ChangeNotConsented):
        ops.run("config.apply", {"digest": undo["digest"]})
    ops.consent(str(undo["digest"]))
    applied = ops.run("config.apply", {"digest": undo["digest"]})
    assert applied["status"] == "applied" and applied["undo_of"] == digest
    assert ops.app.read_text() == APP_INI
    with pytest.raises(ChangeNotFound):  # an undo is not undone; preview the change again
        ops.run("config.undo", {"digest": undo["digest"]})


def test_a_change_undone_can_be_made_again_and_undone_again(ops: Ops) -> None:
    # Every preview is its own change: the same port change after its undo is a new one.
    digests = []
    for _ in range(2):
        digest = str(preview(ops, **{"server.port": 9090})["digest"])
        ops.consent(digest)
        assert ops.run("config.apply", {"digest": digest})["status"] == "applied"
        undo = str(ops.run("config.undo", {"digest": digest})["digest"])
        ops.consent(undo)
        assert ops.run("config.apply", {"digest": undo})["status"] == "applied"
        digests += [digest, undo]
    assert len(set(digests)) == 4 and ops.app.read_text() == APP_INI


def test_undo_refused_with_three_way_view_when_the_file_changed(ops: Ops) -> None:
    digest = str(preview(ops, **{"server.port": 9090})["digest"])
    ops.consent(digest)
    ops.run("config.apply", {"digest": digest})
    changed = ops.app.read_text().replace("level = info", "level = warn")
    ops.app.write_text(changed)
    refused = ops.run("config.undo", {"digest": digest})
    assert refused["status"] == "refused"
    view = refused["view"]
    assert view["current_sha256"] not in (view["before_sha256"], view["after_sha256"])
    assert "+level = warn" in view["diff_after_to_current"]
    assert SECRET not in json.dumps(refused)
    assert ops.app.read_text() == changed


def test_undo_apply_refused_when_the_file_changed_after_its_preview(ops: Ops) -> None:
    digest = str(preview(ops, **{"server.port": 9090})["digest"])
    ops.consent(digest)
    ops.run("config.apply", {"digest": digest})
    undo = str(ops.run("config.undo", {"digest": digest})["digest"])
    ops.consent(undo)
    ops.app.write_text(ops.app.read_text() + "; edited by hand\n")
    refused = ops.run("config.apply", {"digest": undo})
    assert refused["status"] == "refused" and "changed since" in refused["reason"]
    view = refused["view"]
    assert "+; edited by hand" in view["diff_after_to_current"]
    assert SECRET not in json.dumps(refused)
    assert ops.app.read_text().endswith("; edited by hand\n")
    assert ops.store.preview(undo).status == "aborted"  # type: ignore[union-attr]


def test_apply_refused_when_the_file_changed_since_the_preview(ops: Ops) -> None:
    digest = str(preview(ops, **{"server.port": 9090})["digest"])
    ops.consent(digest)
    edited = APP_INI.replace("level = info", "level = warn")
    ops.app.write_text(edited)
    refused = ops.run("config.apply", {"digest": digest})
    assert refused["status"] == "refused" and "nothing was changed" in refused["reason"]
    assert ops.app.read_text() == edited


@pytest.mark.parametrize(("raw", "message"), [
    ({"file": "app", "changes": {"server.secret": "x"}}, "not an allowlisted key"),
    ({"file": "nope", "changes": {"server.port": 1}}, "nope"),
    ({"file": "app", "changes": {"server.port": "not-a-number"}}, "expected an integer"),
])
def test_bad_input_is_refused_clearly(ops: Ops, raw: dict[str, object], message: str) -> None:
    with pytest.raises(InvalidParams, match=message):
        ops.run("config.preview", raw)
    assert ops.app.read_text() == APP_INI


def test_malformed_params_are_invalid(ops: Ops) -> None:
    with pytest.raises(InvalidParams):
        ops.run("config.preview", {"file": "app", "changes": ["server.port"]})
    with pytest.raises(InvalidParams):
        ops.run("config.apply", {"digest": "sha256:xyz"})


def test_a_data_digest_is_not_a_config_change(ops: Ops) -> None:
    digest = str(preview(ops, **{"server.port": 9090})["digest"])
    ops.consent(digest)
    with pytest.raises(ChangeNotFound):
        ops.run("service.apply", {"digest": digest})
    assert ops.app.read_text() == APP_INI


def _cut_off_apply(ops: Ops, make_change: bool) -> str:
    """An apply whose journal entry was opened and never closed (the agent died)."""
    digest = str(preview(ops, **{"server.port": 9090})["digest"])
    ops.store.journal_begin(digest, [], ops.clock())
    if make_change:
        stored = ops.store.preview(digest)
        assert stored is not None
        params.apply(ops.param_config(), params.ParamPreview.from_dict(stored.plan),
                     params.Backups(ops.home / "bk"))
    return digest


def test_recovery_closes_an_apply_that_reached_the_file(ops: Ops) -> None:
    digest = _cut_off_apply(ops, make_change=True)
    assert ops.params.resolve_applying() == {digest: "applied"}
    assert ops.store.applying("config") == []
    undo = ops.run("config.undo", {"digest": digest})  # the recovered record serves undo
    ops.consent(str(undo["digest"]))
    assert ops.run("config.apply", {"digest": undo["digest"]})["status"] == "applied"
    assert ops.app.read_text() == APP_INI


def test_recovery_aborts_an_apply_that_never_reached_the_file(ops: Ops) -> None:
    digest = _cut_off_apply(ops, make_change=False)
    assert ops.params.resolve_applying() == {digest: "aborted"}
    assert ops.app.read_text() == APP_INI


def test_recovery_leaves_a_file_in_neither_state_for_the_customer(ops: Ops) -> None:
    digest = _cut_off_apply(ops, make_change=False)
    ops.app.write_text(APP_INI + "; a third text\n")
    assert ops.params.resolve_applying() == {}
    assert ops.store.applying("config") == [digest]
