"""The app's bound on heavy work: one job at a time in the server, a note for whoever waits, and
explanations computed once (flowers_core.app.resources, flowers_core.app.explanations)."""
from __future__ import annotations

import contextlib
import threading
import time
from types import SimpleNamespace

import pytest

from flowers_core.app import explanations, resources


class Note:
    """Stands in for ``st.empty()`` (and the fixture below for ``st.spinner``): records what a visitor is shown."""

    def __init__(self, shown: list):
        self.shown = shown

    def info(self, text, icon=None):
        self.shown.append(text)

    def progress(self, value, text=""):
        self.shown.append(text)

    def empty(self):
        self.shown.append(None)


@pytest.fixture
def shown(monkeypatch) -> list:
    seen: list = []

    @contextlib.contextmanager
    def spinner(text, **kwargs):
        seen.append(text)
        yield
        seen.append(None)

    monkeypatch.setattr(resources.st, "empty", lambda: Note(seen))
    monkeypatch.setattr(resources.st, "spinner", spinner)
    return seen


def test_one_heavy_job_at_a_time(shown):
    order, inside, go_on = [], threading.Event(), threading.Event()

    def first():
        with resources.one_heavy_job():
            inside.set()
            go_on.wait(10)
            order.append("first")

    t = threading.Thread(target=first)
    t.start()
    assert inside.wait(10)
    threading.Timer(0.3, go_on.set).start()
    with resources.one_heavy_job("wait for it"):
        order.append("second")
    t.join()
    assert order == ["first", "second"]  # the second job ran only once the first was over
    assert shown == ["wait for it", None]  # its visitor was told, and the note went away


def test_no_note_without_a_wait_and_nested_jobs_do_not_deadlock(shown):
    with resources.one_heavy_job(), resources.one_heavy_job():  # a latency run loads its model under the same bound
        pass
    assert shown == []


@pytest.fixture
def counted(monkeypatch) -> list:
    """explanations.explanation replaced by a slow stand-in that records its calls; a fresh, empty explanation cache."""
    calls: list = []

    def compute(model, photo, method, target, num_samples=150, progress=None):
        calls.append((photo, method))
        for i in range(1, 4):
            time.sleep(0.1)
            if progress:
                progress(i, 3)
        return f"explanation {len(calls)}"

    monkeypatch.setattr(explanations, "explanation", compute)
    monkeypatch.setattr(explanations, "_predictor", lambda *a: SimpleNamespace(model=None))
    monkeypatch.setattr(explanations, "_EXPLANATIONS", type(explanations._EXPLANATIONS)())
    return calls


def test_an_explanation_is_computed_once(counted, shown):
    first = explanations.explain_cached(b"photo", "student", "Grad-CAM", 3)
    assert explanations.explain_cached(b"photo", "student", "Grad-CAM", 3) == first
    explanations.explain_cached(b"photo", "student", "Grad-CAM++", 3)
    assert counted == [(b"photo", "Grad-CAM"), (b"photo", "Grad-CAM++")]


def test_visitors_asking_at_once_share_one_job(counted, shown):
    results = []
    threads = [threading.Thread(target=lambda: results.append(explanations.explain_cached(b"p", "student", "LIME", 1, 3)))
               for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert counted == [(b"p", "LIME")] and results == ["explanation 1"] * 3
    assert any(str(text).startswith("LIME: tried") for text in shown)  # the progress the visitors saw
