"""`rsigma engine daemon`: load the rules once (exit 2 on failure), then run the streaming runtime."""

from __future__ import annotations

import logging
import sys
from pathlib import Path
from typing import Any

import typer

from rsigma.daemon.config import DaemonConfig
from rsigma.errors import ConfigError
from rsigma.evaluator import Evaluator, RuleSummary
from rsigma.exit_codes import EXIT_CONFIG_ERROR, EXIT_FAILURE
from rsigma.loading import RuleLoadFailed
from rsigma.nats.auth import NatsAuth, NatsAuthUsageError, nats_auth_from_flags

log = logging.getLogger("rsigma.daemon")


def start_daemon(config: DaemonConfig, log_format: str) -> int:
    """Run the daemon; logging must be set up (`setup_logging`). Returns the exit code.

    With a matcher pool, the rules are loaded in a throwaway process (`workers/loader.py`): the matchers
    compile their own, and the supervisor keeps only their summary. With `--cluster` the supervisor
    compiles them itself, to apply the hits of the partitions it owns: one build gives its correlation
    engine and the summary the matchers must match, so both are the same rules."""
    evaluator: Evaluator | None = None
    try:
        if config.workers and config.cluster is None:
            from workers.loader import RuleLoaderDied, load_summary

            try:
                rules: RuleSummary = load_summary(config.build_evaluator, log_format, config.log_level)
            except RuleLoaderDied as e:
                return startup_failed(log_format, EXIT_FAILURE, str(e))
        else:
            evaluator = config.build_evaluator()
            rules = evaluator.summary()
    except RuleLoadFailed as e:
        return startup_failed(log_format, e.exit_code, *e.problems)
    # Imported here, not at the top: the runtime brings aiohttp, nats-py and the pool (0.4 s), which
    # every other command (`engine eval`, `rule validate`, `--version`) would pay for on each call.
    from rsigma.daemon.runtime import run_daemon
    from workers.pool import PoolError

    try:
        return run_daemon(config, rules, evaluator)
    except (ConfigError, PoolError) as e:  # PoolError here: a matcher could not start at all
        return startup_failed(log_format, EXIT_CONFIG_ERROR, str(e))


def startup_failed(log_format: str, code: int, *problems: str) -> int:
    """Report why the daemon cannot start and return its exit code: with JSON logs one `critical`
    record (whoever reads the daemon's log as JSON lines sees the reason too), with text logs the
    `error: ...` lines a terminal user expects."""
    if log_format == "json":
        log.critical("; ".join(problems), extra={"exit_code": code})
    else:
        for problem in problems:
            print(f"error: {problem}", file=sys.stderr)
    return code


def nats_auth_flags(
    ctx: Any,
    *,
    creds: Path | None,
    token: str | None,
    user: str | None,
    password: str | None,
    nkey: str | None,
    tls_cert: Path | None,
    tls_key: Path | None,
    tls_ca: Path | None,
    require_tls: bool,
) -> NatsAuth:
    """The NATS authentication flags as one `NatsAuth`; flags that do not go together exit 2.

    Values from environment variables take part in the checks; the message says which came from one
    (`ctx`, the command's `typer.Context`, knows where each value came from).
    """
    params = {
        "creds": "nats_creds",
        "token": "nats_token",
        "user": "nats_user",
        "password": "nats_password",
        "nkey_seed": "nats_nkey",
    }
    from_env = set()
    if ctx is not None:
        from_env = {f for f, p in params.items() if _source(ctx, p) == "ENVIRONMENT"}
    try:
        return nats_auth_from_flags(
            creds=creds,
            token=token,
            user=user,
            password=password,
            nkey_seed=nkey,
            tls_cert=tls_cert,
            tls_key=tls_key,
            tls_ca=tls_ca,
            require_tls=require_tls,
            from_env=from_env,
        )
    except NatsAuthUsageError as e:
        raise typer.BadParameter(str(e)) from None


def _source(ctx: Any, param: str) -> str | None:
    """Where a parameter's value came from: COMMANDLINE, ENVIRONMENT, DEFAULT, ..."""
    return getattr(ctx.get_parameter_source(param), "name", None)
