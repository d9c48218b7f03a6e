"""Memory that large payloads used goes back to the system once they are done.

glibc's malloc serves a large allocation with its own mmap, returned on free, but it raises that
threshold to the size of each large block freed (up to 32 MiB). After one 10 MB message, the next
ones are carved from the heap, which is rarely given back: a daemon that met a few large messages
kept tens of MB for good. Fixing the threshold keeps large blocks on mmap.
"""

from __future__ import annotations

import ctypes
import logging
from typing import Final

log = logging.getLogger("rsigma.daemon")

#: mallopt's parameter number for the mmap threshold (glibc's malloc.h).
M_MMAP_THRESHOLD: Final = -3
#: Blocks this large and larger are mapped on their own and unmapped on free.
MMAP_THRESHOLD_BYTES: Final = 1 << 20


def return_large_blocks() -> None:
    """Fix glibc's mmap threshold; elsewhere (musl, macOS) there is nothing to do."""
    mallopt = getattr(ctypes.CDLL(None), "mallopt", None)  # the C library the interpreter runs on
    if mallopt is None:
        return
    if mallopt(M_MMAP_THRESHOLD, MMAP_THRESHOLD_BYTES) != 1:
        log.warning("mallopt(M_MMAP_THRESHOLD) refused; large payloads may keep their memory")
