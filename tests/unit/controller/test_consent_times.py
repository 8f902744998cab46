"""A change consent's end in the consent log: a UTC time, or the signed number as it is."""

from __future__ import annotations

from controller.services._decisions import _utc


def test_an_end_is_written_as_a_utc_time() -> None:
    assert _utc(1_795_758_350) == "2026-11-27T05:45:50+00:00"


def test_an_end_past_any_date_is_recorded_as_signed_not_refused_with_a_crash() -> None:
    for seconds in (2**62, 10**12, 253_402_300_800):  # the last: 10000-01-01
        assert _utc(seconds) == str(seconds)
