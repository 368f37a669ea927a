"""Memory the server gives back: a free host restarts an app that goes over its limit, and a Python server that
runs numpy, onnxruntime and (on demand) torch in many threads keeps what they free in the C allocator's per-thread
arenas (glibc), so its resident set only grows.

``limit_arenas`` caps glibc's arenas (``mallopt(M_ARENA_MAX)``, as the ``MALLOC_ARENA_MAX`` variable would, but from
inside the process: a host rarely lets an app set its environment); ``give_back`` returns the free pages of every
arena to the system (``malloc_trim(0)``) after each heavy job. Both do nothing where the C library is not glibc."""
from __future__ import annotations

import ctypes
import ctypes.util
import functools
import logging
import os

log = logging.getLogger("flowers_app")
M_ARENA_MAX = -8  # glibc's mallopt parameter (malloc.h)
ARENAS = 2  # one per core of a free host: threads share them instead of keeping one each
ARENAS_ENV = "FLOWERS_MALLOC_ARENAS"  # "0" leaves glibc's default (8 per core), for the soak's comparison


@functools.lru_cache(maxsize=1)
def _libc():
    name = ctypes.util.find_library("c")
    try:
        libc = ctypes.CDLL(name or "libc.so.6")
        return libc if hasattr(libc, "malloc_trim") else None
    except OSError:
        return None


@functools.lru_cache(maxsize=None)
def limit_arenas(arenas: int | None = None) -> bool:
    """Cap glibc's malloc arenas at ``arenas`` (default ``ARENAS``, or ``$FLOWERS_MALLOC_ARENAS``; 0: leave the
    default), once per process (``app.py`` runs at every page); True when the cap was set."""
    arenas = int(os.environ.get(ARENAS_ENV, ARENAS)) if arenas is None else arenas
    libc = _libc()
    if not arenas or libc is None:
        return False
    return bool(libc.mallopt(M_ARENA_MAX, int(arenas)))


def give_back() -> bool:
    """Return the allocator's free memory to the system (``malloc_trim(0)``); True when some was returned."""
    libc = _libc()
    return bool(libc.malloc_trim(0)) if libc is not None else False
