"""Benchmarks that record timings wait for a quiet machine, or refuse, and say which."""
from __future__ import annotations

import pytest

from flowers_core.bench import quiet


def test_waits_for_the_load_to_fall():
    loads = iter([3.0, 2.0, 0.8])
    slept = []
    state = quiet.wait_until_quiet(0.5, 60, 5, load=lambda: next(loads), sleep=slept.append, cores=2)
    assert state == {"quiet": True, "load_before": 0.8, "limit": 1.0, "waited_s": 10}
    assert slept == [5, 5]


def test_refuses_a_busy_machine_unless_asked():
    state = quiet.wait_until_quiet(0.5, 10, 5, load=lambda: 4.0, sleep=lambda s: None, cores=2)
    assert not state["quiet"] and state["waited_s"] == 10
    with pytest.raises(SystemExit, match="not recording"):
        quiet.refuse_if_busy(state, busy_ok=False)
    quiet.refuse_if_busy(state, busy_ok=True)  # recorded, marked
