"""The matchers' compiled rules, built once in multiprocessing's forkserver and shared by the matchers
forked from it.

The pool starts its matchers with the "forkserver" start method: a fresh, single-threaded interpreter
(the supervisor, which has threads, is never forked) imports this module before it forks any matcher.
Importing it there compiles the rules the pool named in `VARIABLE` (its pickled `build_evaluator`), and
`load_evaluator`'s `gc.freeze()` keeps the cyclic collector from writing to them: a forked matcher
shares their pages with its siblings until it writes to one (a refcount, a cache). On SigmaHQ a
forked matcher held about 60 MB of its own after 3,000 events, against about 140 MB compiled alone.

A matcher takes the template only if it is the running rules (`take`, by fingerprint); otherwise (the
files changed since, a reload since, the template did not compile) it compiles its own, as before.
"""

from __future__ import annotations

import base64
import logging
import multiprocessing
import os
import pickle
from collections.abc import Callable
from multiprocessing import forkserver
from typing import Final

from rsigma.evaluator import Evaluator

#: The environment variable through which the pool hands its `build_evaluator` to the forkserver.
VARIABLE: Final = "RSIGMA_MATCHER_TEMPLATE"

_template: Evaluator | None = None


def start_forkserver(build: Callable[[], Evaluator], preload: list[str]) -> None:
    """Start the forkserver (once per process: later calls find it running) with the rules it compiles.
    It returns before they are compiled; the first matcher forked waits for them."""
    multiprocessing.set_forkserver_preload(preload)
    os.environ[VARIABLE] = base64.b64encode(pickle.dumps(build)).decode("ascii")
    try:
        forkserver.ensure_running()  # the server inherits the environment as it is now
    finally:
        del os.environ[VARIABLE]


def take(fingerprint: str) -> Evaluator | None:
    """The template, if it is the rules with this fingerprint; a process takes it once."""
    global _template
    template, _template = _template, None
    if template is not None and template.fingerprint() == fingerprint:
        return template
    return None


def _compile() -> Evaluator | None:
    """The rules `start_forkserver` named, or None (nothing named, or they failed: each matcher then compiles
    its own and reports the error itself). Its warnings are the loader's and the matchers' to log."""
    data = os.environ.pop(VARIABLE, None)
    if not data:
        return None
    root = logging.getLogger()
    handlers = root.handlers[:]
    root.handlers[:] = [logging.NullHandler()]
    try:
        return pickle.loads(base64.b64decode(data))()  # type: ignore[no-any-return]
    except Exception:
        return None
    finally:
        root.handlers[:] = handlers


_template = _compile()
