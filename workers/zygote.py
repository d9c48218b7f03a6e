"""The matchers' compiled rules, built once in multiprocessing's forkserver and shared by the matchers
forked from it.

The pool starts its matchers with the "forkserver" start method: a fresh, single-threaded interpreter
(the supervisor, which has threads, is never forked) imports this module before it forks any matcher.
Importing it there compiles the rules the pool named in `VARIABLE` (its pickled `build_evaluator`), and
`load_evaluator`'s `gc.freeze()` keeps the cyclic collector from writing to them: a forked matcher
shares their pages with its siblings until it writes to one (a refcount, a cache). On SigmaHQ a
forked matcher held about 60 MB of its own after 3,000 events, against about 140 MB compiled alone.

A matcher takes the template only if it was built the way the matcher's pool builds (`take`: the same
`build_evaluator`, so the same rule paths, pipelines, routing and correlation options) and is the running
rules (by fingerprint); otherwise (another pool of this process, the files changed since, a reload
since, the template did not compile) it compiles its own, as before. The forkserver outlives a pool:
a second pool in one process (the tests start many) forks from the first one's server.
"""

from __future__ import annotations

import base64
import multiprocessing
import os
import pickle
from collections.abc import Callable
from multiprocessing import forkserver
from typing import Final

from rsigma.evaluator import Evaluator
from rsigma.logs import setup_logging

#: The environment variable through which the pool hands its `build_evaluator` to the forkserver.
VARIABLE: Final = "RSIGMA_MATCHER_TEMPLATE"

_template: Evaluator | None = None
#: The `build_evaluator` the template was built with.
_built_by: Callable[[], Evaluator] | None = None


def start_forkserver(
    build: Callable[[], Evaluator], preload: list[str], log_format: str, log_level: str
) -> None:
    """Start the forkserver (once per process: later calls find it running) with the rules it compiles,
    logging as the matchers do. It returns before they are compiled; the first matcher forked waits."""
    multiprocessing.set_forkserver_preload(preload)
    recipe = pickle.dumps((build, log_format, log_level))
    os.environ[VARIABLE] = base64.b64encode(recipe).decode("ascii")
    try:
        forkserver.ensure_running()  # the server inherits the environment as it is now
    finally:
        del os.environ[VARIABLE]


def take(build: Callable[[], Evaluator], fingerprint: str) -> Evaluator | None:
    """The template, if `build` made it and it is the rules with this fingerprint; a process takes it
    once. The fingerprint alone names the rule set, not the options it was built with."""
    global _template
    template, _template = _template, None
    if template is not None and build == _built_by and template.fingerprint() == fingerprint:
        return template
    return None


def _compile() -> tuple[Evaluator | None, Callable[[], Evaluator] | None]:
    """The rules `start_forkserver` named, loaded as a matcher loads them (its warnings and the rule
    cache's hit are logged), and how; or None: nothing named, or they failed (each matcher then compiles
    its own and reports the error itself)."""
    data = os.environ.pop(VARIABLE, None)
    if not data:
        return None, None
    try:
        build, log_format, log_level = pickle.loads(base64.b64decode(data))
        setup_logging(log_format, log_level)
        return build(), build
    except Exception:
        return None, None


_template, _built_by = _compile()
