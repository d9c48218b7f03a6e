"""The rule cache: a parsed and indexed rule set kept on disk, so that a restart, a reload or a matcher
process of the pool skips parsing the rule files and building the witnesses.

An entry is an `EngineImage` (the rule set after pipelines, which rules and filters compiled, the load
errors and warnings, the witnesses), pickled. Its key hashes everything the image depends on: each
rule file's path and bytes (the very bytes then parsed on a miss), each pipeline's path and text, the
rsigma version, the Python version and the size and time of every module of the installed rsigma
package (an upgrade or an edited checkout misses). Nothing else changes the image: routing, the
correlation options and --match-detail are applied after it.

Pickle runs code on load, so nothing is trusted blindly: the directory and each entry must belong to
this user and be writable by no one else, and an entry must carry the format's magic and version, its
own key, and a checksum over its payload. An entry that fails any check is reported (naming the file
and why) and rebuilt; a directory that fails is reported and not used.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import pickle
import stat
import struct
import sys
import tempfile
import time
from collections.abc import Callable, Iterable
from functools import cache
from pathlib import Path
from typing import Final

import rsigma
from rsigma.engine.engine import EngineImage
from rsigma.gc_pause import gc_paused
from rsigma.rules.loader import RuleSource

FORMAT_VERSION: Final = 1
MAGIC: Final = b"rsigma rule cache\n"
SUFFIX: Final = ".rules"
#: Entries kept per directory: the most recently used (a few rule sets, or versions of one).
MAX_ENTRIES: Final = 8
#: A temporary file this old was left by a process that died while storing: removed when pruning.
STALE_TMP_S: Final = 3600.0

_HEADER = struct.Struct(f">{len(MAGIC)}sH32s32sQ")  # magic, format, key, checksum, payload length


def default_dir() -> Path | None:
    """`$XDG_CACHE_HOME/rsigma/rules`, else `~/.cache/rsigma/rules`: the XDG place for data that can be
    rebuilt at any time, which backups skip and which a user may delete. None for a user without a
    home directory (a container's numeric user): then there is no cache unless one is named."""
    base = os.environ.get("XDG_CACHE_HOME")
    if not base:
        try:
            base = str(Path.home() / ".cache")
        except (RuntimeError, KeyError):
            return None
    return Path(base) / "rsigma" / "rules"


@cache
def code_fingerprint() -> bytes:
    """The rsigma version, the Python version and the size and mtime of each rsigma module: the code
    that parsed and compiled an entry, which must be the code that reads it."""
    digest = hashlib.blake2b(digest_size=32)
    digest.update(f"rsigma {rsigma.__version__}\0python {sys.version}\0".encode())
    package = Path(rsigma.__file__).parent
    for module in sorted(package.rglob("*.py")):
        st = module.stat()
        digest.update(f"{module.relative_to(package)}\0{st.st_size}\0{st.st_mtime_ns}\n".encode())
    return digest.digest()


def cache_key(sources: Iterable[RuleSource], pipelines: Iterable[tuple[Path, str]]) -> str:
    """The key of the rule set `sources` make after `pipelines` (path and text of each)."""
    digest = hashlib.blake2b(digest_size=32)
    digest.update(struct.pack(">H", FORMAT_VERSION))
    digest.update(code_fingerprint())
    for path, text in pipelines:
        data = text.encode()
        digest.update(b"pipeline\0%s\0%d\0" % (os.fsencode(path), len(data)))
        digest.update(data)
    for source in sources:
        digest.update(b"rules\0%s\0%d\0" % (os.fsencode(source.path), source.counted))
        if source.data is None:
            digest.update(b"unread\0%s\0" % (source.problem or "").encode())
        else:
            digest.update(b"%d\0" % len(source.data))
            digest.update(source.data)
    return digest.hexdigest()


class RuleCache:
    """One cache directory. `warn` takes each problem (an unusable directory, a rejected entry, a
    failed write); none of them stops a load, which then parses and compiles as without a cache."""

    def __init__(self, directory: Path, warn: Callable[[str], None], max_entries: int = MAX_ENTRIES) -> None:
        self.directory = directory
        self.warn = warn
        self.max_entries = max_entries
        self._usable: bool | None = None

    def entry(self, key: str) -> Path:
        return self.directory / f"{key}{SUFFIX}"

    def usable(self) -> bool:
        """The directory exists (it is made, private, if not), is ours and no one else can write in it."""
        if self._usable is None:
            problem = self._directory_problem()
            if problem:
                self.warn(f"rule cache {self.directory}: {problem}; loading without it")
            self._usable = problem is None
        return self._usable

    def _directory_problem(self) -> str | None:
        try:
            self.directory.mkdir(mode=0o700, parents=True, exist_ok=True)
            st = os.stat(self.directory)
        except OSError as e:
            return f"cannot create it: {e.strerror or e}"
        if not stat.S_ISDIR(st.st_mode):
            return "not a directory"
        return _ownership_problem(st, "directory")

    def load(self, key: str) -> EngineImage | None:
        """The entry for `key`, or None: absent, or rejected (with a warning; it is then rebuilt)."""
        if not self.usable():
            return None
        path = self.entry(key)
        try:
            fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW)
        except FileNotFoundError:
            return None
        except OSError as e:
            return self._reject(path, f"cannot be opened ({e.strerror or e})")
        with os.fdopen(fd, "rb") as f:
            problem = _ownership_problem(os.fstat(fd), "file")
            if problem:
                return self._reject(path, problem)
            data = f.read()
        image, problem = _decode(data, key)
        if image is None:
            return self._reject(path, problem)
        # Recently used: pruning keeps it (in a read-only cache, pruning goes by when it was stored).
        with contextlib.suppress(OSError):
            os.utime(path)
        return image

    def _reject(self, path: Path, why: str | None) -> None:
        self.warn(f"rule cache entry {path} {why}; ignoring it and loading the rules afresh")
        return None

    def store(self, key: str, image: EngineImage) -> Path | None:
        """Write the entry for `key` atomically (a temporary file renamed into place), then keep the
        `max_entries` most recently used. A failure is reported and leaves the cache as it was."""
        if not self.usable():
            return None
        payload = pickle.dumps(image, protocol=pickle.HIGHEST_PROTOCOL)
        checksum = hashlib.blake2b(payload, digest_size=32).digest()
        header = _HEADER.pack(MAGIC, FORMAT_VERSION, bytes.fromhex(key), checksum, len(payload))
        path = self.entry(key)
        try:
            fd, tmp = tempfile.mkstemp(dir=self.directory, prefix=".", suffix=".tmp")
            try:
                with os.fdopen(fd, "wb") as f:
                    f.write(header)
                    f.write(payload)
                os.replace(tmp, path)
            except BaseException:
                os.unlink(tmp)
                raise
        except OSError as e:
            self.warn(f"rule cache {self.directory}: cannot store {path.name}: {e.strerror or e}")
            return None
        self._prune(keep=path)
        return path

    def _prune(self, keep: Path) -> None:
        now = time.time()
        entries = []
        for p in self.directory.iterdir():
            try:
                st = p.lstat()
            except OSError:
                continue  # another process pruned it
            if p.name.endswith(SUFFIX):
                entries.append((st.st_mtime, p))
            elif p.name.startswith(".") and p.name.endswith(".tmp") and now - st.st_mtime > STALE_TMP_S:
                p.unlink(missing_ok=True)
        entries.sort(reverse=True)
        for _, p in entries[self.max_entries :]:
            if p != keep:
                p.unlink(missing_ok=True)


def _ownership_problem(st: os.stat_result, what: str) -> str | None:
    """Why pickles from this file or directory cannot be trusted: another owner, or others may write."""
    if st.st_uid != os.getuid():
        return f"is owned by uid {st.st_uid}, not by this user (uid {os.getuid()})"
    if st.st_mode & (stat.S_IWGRP | stat.S_IWOTH):
        return (
            f"is group- or world-writable (mode {stat.S_IMODE(st.st_mode):o}): whoever can write the"
            f" {what} could make this process run their code; chmod go-w it"
        )
    return None


def _decode(data: bytes, key: str) -> tuple[EngineImage | None, str | None]:
    """The image in an entry's bytes, or why there is none."""
    if len(data) < _HEADER.size:
        return None, f"is truncated ({len(data)} bytes, shorter than its header)"
    magic, version, stored_key, checksum, length = _HEADER.unpack_from(data)
    if magic != MAGIC:
        return None, "is not an rsigma rule cache entry"
    if version != FORMAT_VERSION:
        return None, f"has format version {version}, this rsigma reads {FORMAT_VERSION}"
    if stored_key.hex() != key:
        return None, "holds another key than its name says"
    payload = memoryview(data)[_HEADER.size :]
    if len(payload) != length:
        return None, f"is truncated ({len(payload)} of {length} payload bytes)"
    if hashlib.blake2b(payload, digest_size=32).digest() != checksum:
        return None, "is damaged (checksum mismatch)"
    try:
        with gc_paused():  # every object unpickled survives: collections would rescan them for nothing
            image = pickle.loads(payload)
    except Exception as e:  # a checksummed payload this code cannot read: rebuilt like any other
        return None, f"cannot be read ({type(e).__name__}: {e})"
    if not isinstance(image, EngineImage):
        return None, f"holds a {type(image).__name__}, not a rule set"
    return image, None
