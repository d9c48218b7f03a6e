"""`rsigma engine daemon`: load the rules once (exit 2 on failure), then run the streaming runtime."""

from __future__ import annotations

import sys

from rsigma.cli.common import EXIT_RULE_ERROR, RuleLoadFailed
from rsigma.daemon.config import DaemonConfig
from rsigma.daemon.logs import setup_logging
from rsigma.daemon.runtime import run_daemon
from rsigma.daemon.sinks import ConfigError

#: Startup failures other than usage and rules (state database, sinks, API address).
EXIT_CONFIG_ERROR = 3


def start_daemon(config: DaemonConfig, log_format: str) -> int:
    setup_logging(log_format)
    try:
        evaluator = config.build_evaluator()
    except RuleLoadFailed as e:
        print(e, file=sys.stderr)
        return EXIT_RULE_ERROR
    try:
        return run_daemon(config, evaluator)
    except ConfigError as e:
        print(f"error: {e}", file=sys.stderr)
        return EXIT_CONFIG_ERROR
