"""RESULTS.md is written whole by ``python -m tools.summary`` from the committed artifacts: it must be exactly
what they give, so a benchmark or training run that changed an artifact without regenerating it fails here."""
import shutil
from collections import Counter

from flowers_core.results.document import README, RESULTS, headline, render
from flowers_core.shipped import paths
from tools.summary import main


def test_results_md_is_what_the_committed_artifacts_give():
    assert RESULTS.read_text() == render(), "RESULTS.md is stale: run `python -m tools.summary`"


def test_check_mode_fails_on_a_stale_file_and_changes_nothing(tmp_path):
    stale = tmp_path / "RESULTS.md"
    stale.write_text("# Results\n\nold numbers\n")
    readme = shutil.copy(README, tmp_path / "README.md")  # the repository's own README is not written by a test
    try:
        main(["--check", "--output", str(stale), "--readme", str(readme)])
    except SystemExit as e:
        assert "python -m tools.summary" in str(e)
    else:
        raise AssertionError("--check accepted a stale file")
    assert stale.read_text() == "# Results\n\nold numbers\n"
    main(["--output", str(stale), "--readme", str(readme)])
    main(["--check", "--output", str(stale), "--readme", str(readme)])  # now up to date: no exit


def test_the_headline_reads_the_realworld_report_once(monkeypatch):
    """The README's headline reads realworld.json once and hands it to its stale note and its targets."""
    reads = Counter()
    for method in ("read", "read_or_none"):
        def counted(self, *args, _original=getattr(paths.Report, method), **kwargs):
            reads[self.path] += 1
            return _original(self, *args, **kwargs)
        monkeypatch.setattr(paths.Report, method, counted)
    text = headline()
    assert reads[paths.REALWORLD.path] == 1, reads
    assert text.strip() in README.read_text(), "the headline is the README's: the same words from one read"
