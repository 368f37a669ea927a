"""The Latency page: a live measurement, and the app's path timed stage by stage."""
from __future__ import annotations

import pytest

from _app import assert_clean, open_page
from flowers_core.results import common


def test_live_latency(artifacts_root, use):
    use(artifacts_root)
    at = open_page("app_pages/latency.py")
    name = next(m for m in ("student", "level1", "level2", "level3") if common.has_weights(m, artifacts_root))
    at.multiselect(key="lat_models").set_value([name]).run()
    at.slider(key="lat_iters").set_value(5).run()
    at.button(key="lat_run").click().run()
    assert_clean(at)
    assert at.dataframe, "live results are shown"
    said = " ".join(m.value for m in at.markdown)
    assert "5 timed runs per model" in said and "warm-up runs that are left out" in said and "threads" in said
    live = at.table[0].value
    assert "slowest 1 in 10 (ms)" in live.columns and "slowest 1 in 100 (ms)" not in live.columns, "no p99 of 5 runs"
    assert any("too few" in c.value for c in at.caption)


def test_the_apps_path_is_timed_stage_by_stage(artifacts_root, use):
    from flowers_core.serve import stages

    use(artifacts_root)
    at = open_page("app_pages/latency.py")
    if not common.has_weights("student_int8", artifacts_root):
        pytest.skip("no INT8 student in these artifacts")
    at.select_slider(key="stage_runs").set_value(16).run()
    at.button(key="stage_run").click().run()
    assert_clean(at)
    assert any("Live: 16 runs" in m.value for m in at.markdown)
    frame = next(t.value for t in at.table if "median here (ms)" in t.value.columns)
    assert list(frame.index) == [*stages.STAGES, "total"]
    assert all(float(v) >= 0 for v in frame["median here (ms)"])
