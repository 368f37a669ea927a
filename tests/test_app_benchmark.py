"""The app benchmark's soak mode (``app_benchmark --soak N``) on synthetic numbers: no server, no browser. The
least-squares growth, the targets met or not, the report's shape, and its RESULTS.md section and README line
through ``tools.summary`` (``--check`` included)."""
import json
import os
import shutil

import pytest

from flowers_core.bench import app_benchmark as bench
from flowers_core.results.common import Figure, to_markdown
from flowers_core.results.document import README
from flowers_core.results.latency import soak_section
from flowers_core.shipped import paths

STEPS = {"open": 1.0, "classify": 1.2, "explain_gradcam": 9.0, "compare": 3.0, "latency_run": 5.0}


def _visit(i: int, rss: float, errors=()) -> dict:
    lime = (i + 1) % bench.LIME_EVERY == 0
    steps = dict(STEPS, **({"explain_lime": 30.0} if lime else {}))
    return {"photo": f"image_{i:05d}.jpg", "lime": lime, "steps_s": steps, "total_s": sum(steps.values()),
            "errors": list(errors), "seen": {}, "rss_mb": rss, "loadavg_1m": 1.0}


def _summary(rss: list[float], vmhwm: float = 1400.0, idle: float | None = None, visits=None) -> dict:
    visits = visits or [_visit(i, r) for i, r in enumerate(rss)]
    return bench.soak_summary(visits, vmhwm_mb=vmhwm, idle_rss_mb=rss[min(5, len(rss)) - 1] if idle is None else idle,
                              idle_s=120.0, torch_after_first_classify=False, torch_at_end=True)


def test_growth_is_the_least_squares_slope_after_the_fifth_visitor():
    warmup = [500.0, 900.0, 1200.0, 1250.0, 1300.0]  # the models load: left out
    after = [1300.0 + 0.25 * k + (0.5 if k % 2 else -0.5) for k in range(1, 21)]  # +0.25 MB/visitor, with noise
    assert bench.growth_per_visitor(warmup + after) == pytest.approx(0.25, abs=0.02)
    assert bench.growth_per_visitor(warmup + [1300.0, 1310.0]) == pytest.approx(10.0)
    assert bench.growth_per_visitor(warmup + [1300.0]) is None  # one point after the 5th: no slope
    assert bench.growth_per_visitor([1.0, 2.0, 3.0]) is None
    assert bench.growth_per_visitor([1.0, 2.0, 4.0], after=0) == pytest.approx(1.5)
    assert bench.growth_per_visitor(warmup + [1300.0, None, 1302.0]) == pytest.approx(1.0)  # a missing one skipped


def test_targets_met_missed_or_not_measurable():
    flat = [1000.0] * 5 + [1000.0 + 0.1 * k for k in range(1, 11)]
    ok = _summary(flat, vmhwm=1500.0, idle=1050.0)["meets_target"]
    assert ok == {"growth_mb_per_visitor": True, "server_vmhwm_mb": True, "idle_rss_delta_mb": True}
    creeping = [1000.0] * 5 + [1000.0 + 2.0 * k for k in range(1, 11)]
    bad = _summary(creeping, vmhwm=1600.0, idle=1150.0)["meets_target"]
    assert bad == {"growth_mb_per_visitor": False, "server_vmhwm_mb": False, "idle_rss_delta_mb": False}
    assert _summary(flat, idle=880.0)["meets_target"]["idle_rss_delta_mb"] is False  # 120 MB below counts too
    few = _summary([900.0, 1000.0, 1010.0])  # 3 visitors: no growth; idle against the last visitor
    assert few["growth_mb_per_visitor"] is None and few["meets_target"]["growth_mb_per_visitor"] is None
    assert few["reference_visitor"] == 3 and few["idle_rss_delta_mb"] == 0.0
    assert bench.soak_checks(0.5, 1536.0, -100.0) == {"growth_mb_per_visitor": True, "server_vmhwm_mb": True,
                                                      "idle_rss_delta_mb": True}  # the targets are inclusive


def test_the_report_counts_visitors_answered_and_records_failed_steps(tmp_path):
    visits = [_visit(i, 1000.0 + i) for i in range(10)]
    visits[6] = _visit(6, 1006.0, errors=[{"step": "explain_gradcam", "error": "TimeoutError: 300000 ms"}])
    del visits[6]["steps_s"]["compare"], visits[6]["steps_s"]["latency_run"]  # the visitor ended at its failed step
    visits[7]["steps_s"].pop("latency_run")  # a step missing without an error is not an answer either
    s = _summary([v["rss_mb"] for v in visits], visits=visits)
    assert s["visitors"] == 10 and s["visitors_answered"] == 8
    assert s["failed_steps"] == [{"visitor": 7, "step": "explain_gradcam", "error": "TimeoutError: 300000 ms"}]
    assert s["step_s"]["explain_lime"] == {"visitors": 2, "median": 30.0, "max": 30.0}  # the 5th and 10th
    assert s["step_s"]["compare"]["visitors"] == 9
    assert list(s["step_s"]) == [k for k in bench.TOUR_STEPS if k in s["step_s"]]  # in the tour's order
    assert s["rss_after_visitor_mb"] == [v["rss_mb"] for v in visits]
    assert s["growth_mb_per_visitor"] == pytest.approx(1.0)
    assert s["torch_mapped"] == {"after_first_classify": False, "at_end": True}
    assert set(s) >= {"server_vmhwm_mb", "idle_rss_mb", "idle_rss_delta_mb", "reference_rss_mb", "targets"}
    assert bench.answered(_visit(0, 1.0)) and not bench.answered({**_visit(4, 1.0), "steps_s": STEPS})  # LIME missing
    json.dumps(s)  # written as JSON
    paths.APP_SOAK.write(s, root=tmp_path)
    text = "\n".join(to_markdown(soak_section(tmp_path)))
    assert "| 8 of 10" in text and "**not met**" in text
    assert "1 step(s) failed or timed out (each ended its visitor's tour): visitor 7, explain_gradcam: TimeoutError" in text


def _report(root, n: int = 12) -> dict:
    rss = [600.0, 1200.0, 1300.0, 1320.0, 1330.0] + [1330.0 + 0.2 * k for k in range(1, n - 4)]
    result = _summary(rss, vmhwm=1450.0, idle=1340.0)
    result |= {"malloc_arena_max": 2, "photos": "Flowers-102 test split (819 photos)", "method": "synthetic",
               "machine": {"cpu_model": "Test CPU", "cpus": 2, "python": "3.11.7", "loadavg_before": [0.5, 0.4, 0.3],
                           "loadavg_after": [1.5, 1.0, 0.5]}, "date": "2026-12-08T00:00:00+00:00"}
    paths.APP_SOAK.write(result, root=root)
    plot = bench.write_soak_plot(result, paths.artifacts_dir(root) / paths.APP_SOAK_PLOT)
    assert plot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and plot.stat().st_size < 60_000
    return result


def test_the_section_shows_the_table_the_waits_and_the_plot(tmp_path):
    assert "Soak not measured yet" in "\n".join(to_markdown(soak_section(tmp_path)))
    _report(tmp_path)
    blocks = soak_section(tmp_path)
    assert any(isinstance(b, Figure) for b in blocks)
    text = "\n".join(to_markdown(blocks))
    assert "## The app over many visitors (`python -m flowers_core.bench.app_benchmark --soak 200`)" in text
    assert "| visitors who got every answer" in text and "12 of 12" in text
    assert "+0.20 MB" in text and "≤ 0.5 MB" in text and "1450 MB" in text and "+10 MB" in text
    assert "not met" not in text and "failed" not in text  # every target met, every step done on these numbers
    assert "| LIME (every 5th)" in text and "MALLOC_ARENA_MAX=2" in text and "Test CPU" in text
    assert f"![The server's RSS after each of the 12 visitors]({os.path.relpath(tmp_path, paths.REPO_ROOT)}" in text


def test_tools_summary_renders_the_soak_and_check_accepts_it(tmp_path):
    """``tools.summary`` over the committed artifacts plus a synthetic soak report: RESULTS.md gains the soak's
    section after the crowd's, the README's memory line the soak's figures, and ``--check`` then passes."""
    from tools.summary import main

    root = tmp_path / "artifacts"
    (root / "reports").mkdir(parents=True)
    committed = paths.artifacts_dir(None)
    for entry in committed.iterdir():  # the committed artifacts, linked, not copied
        if entry.name != "reports":
            (root / entry.name).symlink_to(entry)
    for entry in (committed / "reports").iterdir():
        if entry.name not in ("app_soak.json", "app_soak.png"):
            (root / "reports" / entry.name).symlink_to(entry)
    _report(root, n=20)
    results, readme = tmp_path / "RESULTS.md", shutil.copy(README, tmp_path / "README.md")
    args = ["--artifacts", str(root), "--output", str(results), "--readme", str(readme)]
    main(args)
    main(["--check", *args])  # what it wrote is what the artifacts give
    text = results.read_text()
    assert text.index("## The app under a crowd") < text.index("## The app over many visitors")
    assert "app_soak.png)" in text
    line = next(ln for ln in readme.read_text().splitlines() if ln.startswith("The app:"))
    assert "Over 20 visitors one after another (20 got every answer) memory grew +0.20 MB per visitor after the 5th;" in line
    assert "peak (VmHWM) was 1450 MB, and 1340 MB stayed resident after 120 s idle." in line


def test_the_report_page_draws_the_section_and_its_plot(tmp_path):
    from streamlit.testing.v1 import AppTest

    def page(root):
        from flowers_core.app.widgets import show_section
        from flowers_core.results.latency import soak_section

        show_section(soak_section, root, expanded=True)

    _report(tmp_path)
    at = AppTest.from_function(page, args=(str(tmp_path),), default_timeout=60).run()
    assert not at.exception
    assert at.expander[0].label.startswith("The app over many visitors")
    assert len(at.dataframe) == 2 and len(at.get("image")) == 1  # the measures, the waits; the plot
