"""The HTML timeline escapes everything a record holds."""

from __future__ import annotations

from controller.audit.records import OPENED, Event
from controller.audit.report import render
from controller.audit.verify import verify_evidence
from tests.unit.controller.audit._log import MemoryLog, signer


def test_the_timeline_lists_events_and_escapes_their_text() -> None:
    key = signer()
    log = MemoryLog()
    log.append(Event("consent.requested", 0.0, "C-1", "<script>alert(1)</script>",
                     details={"reason": "\"quoted\" & <b>bold</b>"}))
    log.append(Event(OPENED, 60.0, "C-1", "alice", "S-<1>"))
    evidence = log.evidence(key, {"case": "C-1"})
    page = render(evidence, verify_evidence(evidence, key.verifier), "Case <C-1>")
    assert "<script>" not in page and "<b>" not in page
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page and "S-&lt;1&gt;" in page
    assert "Case &lt;C-1&gt;" in page and "1970-01-01 00:01:00" in page
    assert 'class="verified"' in page
