"""Frozen-trunk feature caching: run the frozen stages once per view and keep the result.

On 2 CPU cores the frozen early stages cost ~90% of a forward pass; caching their output for the
eval view and a few pre-augmented views makes each training epoch of the late stages ~30× cheaper
and lets every level (and the student) reuse the same cache.
"""
from __future__ import annotations

import hashlib
import time
from pathlib import Path
from typing import Callable

import numpy as np
import torch

from .data import default_cache_dir
from .models import FlowerNet
from .transforms import augment_batch, eval_view, train_augment


def parse_view(view: str) -> tuple[str, int]:
    """A cached view's name, e.g. ``strong2`` -> (``strong``, 2): the view (``eval`` or an augmentation preset)
    and its seed (0 when none is given)."""
    name = view.rstrip("0123456789")
    return name, int(view[len(name):] or 0)


def view_batch(squares: torch.Tensor, model: FlowerNet, view: str) -> torch.Tensor:
    """``eval`` -> the validated centre crop; ``strong`` -> the level-2 augmentation."""
    pre = model.preprocess
    if view == "eval":
        return eval_view(pre, squares)
    return augment_batch(squares, train_augment(view, pre))


@torch.inference_mode()
def trunk_features(model: FlowerNet, squares: torch.Tensor, view: str = "eval", seed: int = 0,
                   batch_size: int = 16, cache_dir: Path | None = None, tag: str = "",
                   trunk: Callable[[torch.Tensor], torch.Tensor] | None = None, trunk_name: str = "") -> torch.Tensor:
    """fp16 features of the frozen trunk for every square, cached on disk by content key.

    ``trunk`` replaces the model's own frozen stages (e.g. ``quantise.quantised_trunk``: the INT8 file's
    trunk), ``trunk_name`` names it in the cache key and the file name.
    Small batches are ~2× faster here: the 112×112 activations of a batch of 64 overflow the caches.
    """
    if (trunk is None) != (not trunk_name):
        raise ValueError("a replacement trunk needs a name for its cache, and only a replacement trunk has one")
    cache_dir = Path(cache_dir) if cache_dir is not None else default_cache_dir()
    # the model's own trunk keeps the key it always had, so existing caches stay valid
    key = hashlib.sha1((f"{model.arch}|{model.frozen_stages}|{view}|{seed}|{tuple(squares.shape)}|{tag}"
                        + (f"|{trunk_name}" if trunk_name else "")).encode()).hexdigest()[:12]
    name = f"{model.arch}_s{model.frozen_stages}{'_' + trunk_name if trunk_name else ''}"
    path = cache_dir / "features" / f"{name}_{view}{seed}_{key}.npy"
    if path.is_file():
        return torch.from_numpy(np.load(path))
    trunk = trunk or model.trunk().eval().to(memory_format=torch.channels_last)
    torch.manual_seed(seed)
    out, t0 = None, time.time()
    for start in range(0, len(squares), batch_size):
        x = view_batch(squares[start: start + batch_size], model, view).contiguous(memory_format=torch.channels_last)
        f = trunk(x).to(torch.float16)
        if out is None:
            out = torch.empty((len(squares), *f.shape[1:]), dtype=torch.float16)
        out[start: start + len(f)] = f
    print(f"[features] {name} trunk {view}{seed}: {len(squares)} images in {time.time() - t0:.0f}s "
          f"({len(squares) / max(1e-9, time.time() - t0):.1f} img/s)", flush=True)
    path.parent.mkdir(parents=True, exist_ok=True)
    np.save(path, out.numpy())
    return out
