"""`rsigma engine daemon`: load the rules once (exit 2 on failure), then run the streaming runtime."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import typer

from rsigma.daemon.config import DaemonConfig
from rsigma.daemon.runtime import run_daemon
from rsigma.errors import ConfigError
from rsigma.exit_codes import EXIT_CONFIG_ERROR, EXIT_RULE_ERROR
from rsigma.loading import RuleLoadFailed
from rsigma.logs import setup_logging
from rsigma.nats.auth import NatsAuth, NatsAuthUsageError, nats_auth_from_flags
from workers.pool import PoolError


def start_daemon(config: DaemonConfig, log_format: str) -> int:
    setup_logging(log_format)
    try:
        evaluator = config.build_evaluator()
    except RuleLoadFailed as e:
        print(e, file=sys.stderr)
        return EXIT_RULE_ERROR
    try:
        return run_daemon(config, evaluator)
    except (ConfigError, PoolError) as e:  # PoolError here: a matcher could not start at all
        print(f"error: {e}", file=sys.stderr)
        return EXIT_CONFIG_ERROR


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
