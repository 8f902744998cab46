"""The dial-out reconnection schedule: exponential, capped, fully jittered."""

from __future__ import annotations

import pytest

from agent.dialout import BACKOFF_BASE, BACKOFF_CAP, backoff_delay, dial_options
from pki.identity import Identity


def test_the_ceiling_doubles_from_the_base_up_to_the_cap() -> None:
    ceilings = [backoff_delay(n, lambda: 1.0) for n in range(1, 10)]
    assert ceilings == [0.5, 1.0, 2.0, 4.0, 8.0, 16.0, 30.0, 30.0, 30.0]
    assert (BACKOFF_BASE, BACKOFF_CAP) == (0.5, 30.0)


@pytest.mark.parametrize("draw", [0.0, 0.25, 0.999])
def test_the_delay_is_the_random_draw_times_the_ceiling(draw: float) -> None:
    assert backoff_delay(3, lambda: draw) == pytest.approx(draw * 2.0)
    assert backoff_delay(50, lambda: draw) == pytest.approx(draw * 30.0)


def test_a_very_long_outage_stays_at_the_cap() -> None:
    assert backoff_delay(10_000, lambda: 1.0) == 30.0


def test_the_dial_options_keep_the_controller_check_and_ping_idle_streams() -> None:
    options = dict(dial_options(Identity("example.test", "controller")))
    assert options["grpc.ssl_target_name_override"] == "controller.example.test"
    assert options["grpc.keepalive_time_ms"] == 20_000
    assert options["grpc.keepalive_permit_without_calls"] == 1
    assert options["grpc.http2.max_pings_without_data"] == 0
    assert len(options) == len(dial_options(Identity("example.test", "controller")))
