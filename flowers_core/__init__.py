"""Flowers-102: data, models, training loop, evaluation, export and inference shared by
``train/`` and the Streamlit app."""

import sys as _sys

if "streamlit" in _sys.modules:  # a Streamlit page imports the library: a deep link opened first on a cold server
    from .app import deep_link as _deep_link  # noqa: F401  is handed to app.py now, before any heavy import
