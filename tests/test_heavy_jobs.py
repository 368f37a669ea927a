"""The app's bound on heavy work: one job at a time in the server, a note for whoever waits, and
explanations computed once (flowers_core.app.ui)."""
from __future__ import annotations

import threading

import pytest

from flowers_core.app import ui


class Note:
    """Stands in for ``st.empty()``: records what the waiting visitor is shown."""

    def __init__(self, shown: list):
        self.shown = shown

    def info(self, text, icon=None):
        self.shown.append(text)

    def empty(self):
        self.shown.append(None)


@pytest.fixture
def shown(monkeypatch) -> list:
    seen: list = []
    monkeypatch.setattr(ui.st, "empty", lambda: Note(seen))
    return seen


def test_one_heavy_job_at_a_time(shown):
    order, inside, go_on = [], threading.Event(), threading.Event()

    def first():
        with ui.one_heavy_job():
            inside.set()
            go_on.wait(10)
            order.append("first")

    t = threading.Thread(target=first)
    t.start()
    assert inside.wait(10)
    threading.Timer(0.3, go_on.set).start()
    with ui.one_heavy_job("wait for it"):
        order.append("second")
    t.join()
    assert order == ["first", "second"]  # the second job ran only once the first was over
    assert shown == ["wait for it", None]  # its visitor was told, and the note went away


def test_no_note_without_a_wait_and_nested_jobs_do_not_deadlock(shown):
    with ui.one_heavy_job(), ui.one_heavy_job():  # a latency run loads its model under the same bound
        pass
    assert shown == []


def test_an_explanation_is_computed_once(monkeypatch, shown):
    calls = []

    def compute(photo, name, method, target, root, mtime, num_samples=150, progress=None):
        calls.append((photo, method))
        return f"explanation {len(calls)}"

    monkeypatch.setattr(ui, "explanation", compute)
    monkeypatch.setattr(ui, "_EXPLANATIONS", type(ui._EXPLANATIONS)())
    first = ui.explain_cached(b"photo", "student", "Grad-CAM", 3)
    assert ui.explain_cached(b"photo", "student", "Grad-CAM", 3) == first
    ui.explain_cached(b"photo", "student", "Grad-CAM++", 3)
    assert calls == [(b"photo", "Grad-CAM"), (b"photo", "Grad-CAM++")]
