"""The Report page: the levels table under both protocols."""
from __future__ import annotations

from _app import assert_clean, open_page


def test_report_protocols(artifacts_root, use):
    use(artifacts_root)
    at = open_page("app_pages/report.py")
    assert_clean(at)
    assert at.dataframe, "the levels table is shown"
    at.radio(key="rep_protocol").set_value("official").run()
    assert_clean(at)
