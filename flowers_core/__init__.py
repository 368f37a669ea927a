"""Flowers-102: data, models, training loop, evaluation, export and inference shared by
``train/`` and the Streamlit app.

The package's face, as timm's ``create_model``: ``from flowers_core import open_predictor, Predictor``
(``open_model.open_predictor`` opens a shipped model with the backend its format needs; ``serve.predictor.Predictor``
is what it returns). Both are loaded on first use (PEP 562), so ``import flowers_core`` or any of its small modules
(``flowers_core.shipped.paths``) imports neither torch nor onnxruntime."""
from __future__ import annotations

__all__ = ["Predictor", "open_predictor"]


def __getattr__(name: str):
    # plain imports, not importlib: import-linter sees them (onnxruntime comes with serve.predictor)
    if name == "open_predictor":
        from .open_model import open_predictor as value
    elif name == "Predictor":
        from .serve.predictor import Predictor as value
    else:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    globals()[name] = value  # looked up once
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
