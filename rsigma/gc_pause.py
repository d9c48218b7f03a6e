"""Pause the cyclic garbage collector while building large, long-lived object graphs.

Loading thousands of rules allocates millions of objects that all survive; every generation-2
collection during the build rescans them for nothing (about a third of load time on SigmaHQ).
"""

from __future__ import annotations

import gc
from collections.abc import Iterator
from contextlib import contextmanager


@contextmanager
def gc_paused() -> Iterator[None]:
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()
