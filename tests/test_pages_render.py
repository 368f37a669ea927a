"""Every page through ``streamlit.testing.v1.AppTest``: it renders on the artifacts, on an empty artifacts folder and
on a manifest whose files are missing or mismatched: messages, never exceptions."""
from __future__ import annotations

import pytest

from _app import PAGES, assert_clean, open_page, partial_copy


@pytest.mark.parametrize("page", PAGES)
def test_page_renders(page, artifacts_root, use):
    use(artifacts_root)
    at = open_page(page)
    assert_clean(at)
    assert at.title, "every page has a title"


@pytest.mark.parametrize("page", PAGES)
def test_page_renders_without_any_artifacts(page, tmp_path, use):
    use(tmp_path)
    at = open_page(page)
    assert_clean(at)
    assert at.info or at.warning, "a page without artifacts says what is missing"


@pytest.mark.parametrize("page", PAGES)
def test_pages_without_student_and_ensemble(page, artifacts_root, tmp_path, use):
    use(partial_copy(artifacts_root, tmp_path / "a", drop=("student", "student_int8", "ensemble")))
    at = open_page(page)
    assert_clean(at)


@pytest.mark.parametrize("page", ["app_pages/classify.py", "app_pages/compare.py", "app_pages/explain.py", "app_pages/latency.py"])
def test_pages_with_weight_files_missing(page, artifacts_root, tmp_path, use):
    use(partial_copy(artifacts_root, tmp_path / "b", missing_dirs=("models",)))
    at = open_page(page)
    assert_clean(at)
    assert at.info or at.warning


def test_mismatched_weights_give_a_message(artifacts_root, tmp_path, use):
    def swap(manifest):  # level1's entry (linear head) pointing at level3's weights (attention head)
        strat = manifest["models"]["stratified"]
        strat["level1"]["weights"] = strat["level3"]["weights"]
        strat["level1"]["onnx"] = {**strat["level1"]["onnx"], "file": strat["level3"]["onnx"]["file"]}  # its twin too
    use(partial_copy(artifacts_root, tmp_path / "c", edit=swap))
    at = open_page("app_pages/compare.py")
    assert_clean(at)
    assert any("level1" in i.value.lower() or "L1" in i.value for i in at.info)
