"""What the browser tests share: the artifacts the app under test reads."""
from __future__ import annotations

import os
from pathlib import Path

import pytest

from flowers_core import artifacts as art


@pytest.fixture(scope="module")
def artifacts_root(request) -> Path:
    """$FLOWERS_ARTIFACTS, else the committed artifacts when they hold models, else the tiny trained ones."""
    if os.environ.get("FLOWERS_ARTIFACTS"):
        return Path(os.environ["FLOWERS_ARTIFACTS"])
    if art.read_manifest(art.artifacts_dir()).get("models"):
        return art.artifacts_dir()
    return request.getfixturevalue("trained_artifacts")
