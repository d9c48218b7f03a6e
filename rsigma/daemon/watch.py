"""Reload on file changes: the rule and pipeline files (the files the loader reads) are polled for a
changed modification time or size (polling works on every filesystem, network and container mounts
included)."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable
from pathlib import Path

from rsigma.rules.loader import rule_files

Stamps = dict[Path, tuple[int, int]]


class FileWatcher:
    def __init__(self, paths: tuple[Path, ...], interval_s: float) -> None:
        self.paths = paths
        self.interval_s = interval_s
        self.seen: Stamps = self.stamps() if self.enabled else {}  # before "daemon started" is logged

    @property
    def enabled(self) -> bool:
        return bool(self.paths) and self.interval_s > 0

    def stamps(self) -> Stamps:
        stamps: Stamps = {}
        for root in self.paths:
            for p in rule_files(root):
                with contextlib.suppress(OSError):  # removed between the listing and the stat
                    st = p.stat()
                    stamps[p] = (st.st_mtime_ns, st.st_size)
        return stamps

    async def run(self, reload: Callable[[str], Awaitable[bool]]) -> None:
        """Poll until cancelled; call `reload` after each change."""
        while True:
            await asyncio.sleep(self.interval_s)
            now = await asyncio.to_thread(self.stamps)
            if now != self.seen:
                self.seen = now
                await reload("file change")
