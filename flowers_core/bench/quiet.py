"""Timings are recorded on a quiet machine only: the benchmarks that store timings (``latency``, ``stages``) wait
for the 1-minute load average to fall to ``MAX_LOAD_PER_CORE`` per core and refuse to write when it does not within
``--quiet-wait-s`` (``--busy-ok`` records anyway, marked "not quiet"). The record says which: ``quiet`` in its
environment, with the load before and after and how long it waited."""
from __future__ import annotations

import os
import time
from collections.abc import Callable

MAX_LOAD_PER_CORE = 0.5  # shared cores: above this, another job's work is in the timing
DEFAULT_WAIT_S = 600


def wait_until_quiet(max_per_core: float = MAX_LOAD_PER_CORE, wait_s: float = DEFAULT_WAIT_S, poll_s: float = 10,
                     load: Callable[[], float] = lambda: os.getloadavg()[0], sleep=time.sleep,
                     cores: int | None = None) -> dict:
    """Wait (up to ``wait_s``) until the load average per core is at most ``max_per_core``; what was seen."""
    cores = cores or os.cpu_count() or 1
    limit, waited = max_per_core * cores, 0.0
    seen = load()
    while seen > limit and waited < wait_s:
        sleep(poll_s)
        waited += poll_s
        seen = load()
    return {"quiet": seen <= limit, "load_before": round(seen, 2), "limit": limit, "waited_s": waited}


def refuse_if_busy(state: dict, busy_ok: bool) -> None:
    """SystemExit with the reason when the machine stayed busy and the caller did not accept a busy record."""
    if not state["quiet"] and not busy_ok:
        raise SystemExit(f"not recording: the load average stayed {state['load_before']} after {state['waited_s']:.0f} s "
                         f"(quiet is ≤ {state['limit']:.1f} on this machine); rerun when it is quiet, or pass "
                         "--busy-ok to record it marked 'not quiet'")


def add_arguments(p) -> None:
    p.add_argument("--quiet-wait-s", type=float, default=DEFAULT_WAIT_S,
                   help=f"wait up to this long for a load of ≤ {MAX_LOAD_PER_CORE} per core before timing")
    p.add_argument("--busy-ok", action="store_true", help="record even on a busy machine (marked 'not quiet')")
