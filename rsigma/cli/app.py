"""Commands grouped as RSigma has them (`engine eval`, `engine daemon`, `rule validate`), and `serve`."""

from __future__ import annotations

import inspect
import logging
import os
import sys
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import Annotated, Any

import typer

from rsigma import __version__
from rsigma.cli.daemon import nats_auth_flags, start_daemon, startup_failed
from rsigma.cli.eval import run_eval
from rsigma.cli.settings import config_layers, layers_of, print_dry_run
from rsigma.cli.validate import as_json, as_text, validate
from rsigma.correlation.engine import DEFAULT_MAX_STATE_ENTRIES, CorrelationConfig
from rsigma.correlation.evidence import DEFAULT_MAX_CORRELATION_EVENTS, mode_of
from rsigma.correlation.timestamps import DEFAULT_TIMESTAMP_FIELDS
from rsigma.daemon.config import (
    DEFAULT_API_ADDR,
    DEFAULT_API_MAX_BODY_BYTES,
    DEFAULT_API_READ_TIMEOUT,
    DEFAULT_BATCH_SIZE,
    DEFAULT_BUFFER_SIZE,
    DEFAULT_MAX_EVENT_BYTES,
    DEFAULT_SINK_BATCH_MAX,
    DaemonConfig,
)
from rsigma.daemon.state import Replay, RestoreMode
from rsigma.engine.match_detail import check_level
from rsigma.errors import SigmaError
from rsigma.exit_codes import EXIT_CONFIG_ERROR, EXIT_FAILURE
from rsigma.formats import DEFAULT_FORMAT, FORMATS, InputFormat, input_format
from rsigma.formats.extract import Extraction, InvalidExpression, extractor
from rsigma.loading import EvaluatorSpec, RuleLoadFailed, load_evaluator
from rsigma.logs import log_level as parse_log_level
from rsigma.logs import setup_logging
from rsigma.pipelines import builtin_pipelines
from rsigma.routing.router import builtin_routers
from rsigma.rules.correlation import parse_timespan
from workers.host import default_workers
from workers.watchdog import DEFAULT_MATCHER_TIMEOUT_S

log = logging.getLogger("rsigma.daemon")

app = typer.Typer(
    name="rsigma",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)
engine_app = typer.Typer(help="Evaluate rules on events.", no_args_is_help=True)
rule_app = typer.Typer(help="Work with rule files.", no_args_is_help=True)
app.add_typer(engine_app, name="engine")
app.add_typer(rule_app, name="rule")


def _print_version(value: bool) -> None:
    if value:
        print(f"rsigma {__version__}")
        raise typer.Exit()


@app.callback()
def _top_level(
    version: Annotated[
        bool,
        typer.Option(
            "-V", "--version", is_eager=True, callback=_print_version, help="Print the version and exit."
        ),
    ] = False,
) -> None:
    """Sigma detection engine: evaluate rules on events, validate rules."""


RulesOption = Annotated[
    list[Path],
    typer.Option("-r", "--rules", help="Rule file or directory (recursive); repeatable.", show_default=False),
]


def _duration(value: str | None) -> float | None:
    if value is None:
        return None
    try:
        return float(parse_timespan(value))
    except SigmaError as e:
        raise typer.BadParameter(e.message) from None


def _checked_duration(value: str | None) -> str | None:
    """--suppress refused as soon as it is read (from a flag, a variable or the config file)."""
    _duration(value)
    return value


def _one_of(*choices: str) -> Callable[[str], str]:
    """A callback refusing any other value: options whose values click does not check, so a config
    file's value is checked (and named) the same way as the flag's."""
    expected = f"{', '.join(choices[:-1])} or {choices[-1]}"

    def check(value: str) -> str:
        if value not in choices:
            raise typer.BadParameter(f"{value!r}: expected {expected}")
        return value

    return check


def _input_source(value: str) -> str:
    if value not in ("stdin", "stdin://", "http") and not value.startswith("nats://"):
        raise typer.BadParameter(f"{value!r}: expected stdin, http or nats://host:port/subject")
    return value


def correlation_config(
    timestamp_fields: list[str] | None,
    timestamp_fallback: str,
    suppress: str | None,
    action: str,
    max_state_entries: int,
    event_mode: str = "none",
    max_correlation_events: int = DEFAULT_MAX_CORRELATION_EVENTS,
    max_group_entries: int | None = None,
    log_format: str = "text",
) -> CorrelationConfig:
    """One config from the correlation flags shared by `engine eval` and the daemon. An unknown
    --correlation-event-mode exits 3, as RSigma's does (a JSON record with the daemon's JSON logs)."""
    try:
        mode_of(event_mode)
    except ValueError as e:
        problem = f"--correlation-event-mode: {e}"
        raise typer.Exit(startup_failed(log_format, EXIT_CONFIG_ERROR, problem)) from None
    fields = tuple(timestamp_fields or ()) + tuple(
        f for f in DEFAULT_TIMESTAMP_FIELDS if f not in (timestamp_fields or ())
    )
    return CorrelationConfig(
        timestamp_fields=fields,
        timestamp_fallback=timestamp_fallback,
        suppress=_duration(suppress),
        action=action,
        max_state_entries=max_state_entries,
        event_mode=event_mode,
        max_correlation_events=max_correlation_events,
        max_group_entries=max_group_entries,
    )


PipelineOption = Annotated[
    list[str] | None,
    typer.Option(
        "-p",
        "--pipeline",
        help=f"Processing pipeline: a builtin name ({', '.join(builtin_pipelines())}) or a pySigma pipeline"
        " YAML file; repeatable, applied in priority order.",
        show_default=False,
    ),
]
RoutingOption = Annotated[
    bool,
    typer.Option(
        "--logsource-routing",
        help="Evaluate only the rules whose logsource fits the event"
        f" (builtin maps: {', '.join(builtin_routers())}).",
    ),
]
RoutingMapOption = Annotated[
    list[str] | None,
    typer.Option(
        "--logsource-map",
        help="Routing map instead of the builtin ones: a builtin name or a YAML file; repeatable; implies"
        " --logsource-routing.",
        show_default=False,
    ),
]


def routing_maps(enabled: bool, maps: list[str] | None) -> list[str] | None:
    """The routing maps to load: the given ones, every builtin ([]) when only enabled, or none."""
    return maps or ([] if enabled else None)


TimestampFieldOption = Annotated[
    list[str] | None,
    typer.Option(
        "--timestamp-field",
        help="Event field holding the event time; repeatable, tried before the defaults"
        f" ({', '.join(DEFAULT_TIMESTAMP_FIELDS)}).",
        show_default=False,
    ),
]
FallbackOption = Annotated[
    str,
    typer.Option(
        "--timestamp-fallback",
        callback=_one_of("wallclock", "skip"),
        help="For events without a time: wallclock (now) or skip correlation.",
    ),
]
SuppressOption = Annotated[
    str | None,
    typer.Option(
        "--suppress",
        callback=_checked_duration,
        help="No repeat alert for the same correlation group within this (e.g. 5m).",
        show_default=False,
    ),
]
ActionOption = Annotated[
    str,
    typer.Option(
        "--action",
        callback=_one_of("alert", "reset"),
        help="After a correlation fires: alert (keep the window) or reset it.",
    ),
]
MaxStateOption = Annotated[
    int,
    typer.Option(
        "--max-state-entries", min=1, help="Cap on live (correlation, group) windows; the oldest go first."
    ),
]

EventModeOption = Annotated[
    str,
    typer.Option(
        "--correlation-event-mode",
        envvar="RSIGMA_CORRELATION_EVENT_MODE",
        metavar="none|full|refs",
        help="What correlation results include of their events: none, full (the bodies, as `events`) or"
        " refs (time and id, as `event_refs`); a correlation's rsigma.correlation_event_mode overrides it.",
    ),
]
MaxEventsOption = Annotated[
    int,
    typer.Option(
        "--max-correlation-events",
        min=1,
        help="Events a correlation group keeps for its results at most (the most recent), with"
        " --correlation-event-mode full or refs.",
    ),
]
MaxGroupEntriesOption = Annotated[
    int | None,
    typer.Option(
        "--max-group-entries",
        min=1,
        help="Cap on the entries of each correlation group's window; the oldest go first (default:"
        " unbounded).",
        show_default=False,
    ),
]

NoDetectionsOption = Annotated[
    bool,
    typer.Option(
        "--no-detections",
        help="RSigma's switch to hide the detections of rules a correlation references without"
        " `generate: true`; here they are always hidden (the Sigma default), so it changes nothing.",
    ),
]


def match_detail_flag(level: str) -> str:
    """The --match-detail level; another value is a usage error (exit 2), as in RSigma; in a config file,
    exit 3 naming it (RSigma takes it as off)."""
    try:
        return check_level(level)
    except ValueError as e:
        raise typer.BadParameter(str(e)) from None


MatchDetailOption = Annotated[
    str,
    typer.Option(
        "--match-detail",
        metavar="LEVEL",
        callback=match_detail_flag,
        help="What each detection's matched_fields say: off (field and value), summary (also the"
        " selection, matcher and case sensitivity, and keyword and absence matches) or full (also the"
        " pattern).",
    ),
]


InputFormatOption = Annotated[
    str,
    typer.Option(
        "--input-format",
        envvar="RSIGMA_INPUT_FORMAT",
        metavar="FORMAT",
        help=f"Line format: {', '.join(FORMATS)} (auto: JSON for lines starting with {{ or [, syslog for <,"
        " else plain). A line that json or cef cannot read, or that auto finds starting with { or [ but"
        " not a JSON object, goes to the DLQ.",
    ),
]
SyslogTzOption = Annotated[
    str,
    typer.Option(
        "--syslog-tz",
        envvar="RSIGMA_SYSLOG_TZ",
        metavar="±HH:MM",
        help="Zone of RFC 3164 syslog timestamps, which carry none: ±HH:MM, UTC or Z.",
    ),
]
SyslogStripBomOption = Annotated[
    str,
    typer.Option(
        "--syslog-strip-bom",
        envvar="RSIGMA_SYSLOG_STRIP_BOM",
        metavar="BOOL",
        help="Drop the UTF-8 BOM before a syslog message: true or false.",
    ),
]


def input_format_flags(
    name: str, syslog_tz: str, syslog_strip_bom: str, log_format: str = "text"
) -> InputFormat:
    """The input format from its three flags; an unknown format or zone exits 3 with RSigma's message
    (a JSON record with the daemon's JSON logs), a --syslog-strip-bom other than true/false is a usage
    error (exit 2), as RSigma's clap makes it."""
    if syslog_strip_bom not in ("true", "false"):
        raise typer.BadParameter(f"--syslog-strip-bom {syslog_strip_bom!r}: expected true or false")
    try:
        return input_format(name, syslog_tz, syslog_strip_bom == "true")
    except ValueError as e:
        raise typer.Exit(startup_failed(log_format, EXIT_CONFIG_ERROR, str(e))) from None


JqOption = Annotated[
    str | None,
    typer.Option(
        "--jq",
        envvar="RSIGMA_JQ",
        metavar="FILTER",
        help="jq filter that picks the events out of each JSON line, e.g. '.records[]' (each output must"
        " be an object; a line whose filter fails goes to the DLQ).",
        show_default=False,
    ),
]
JsonPathOption = Annotated[
    str | None,
    typer.Option(
        "--jsonpath",
        envvar="RSIGMA_JSONPATH",
        metavar="QUERY",
        help="RFC 9535 JSONPath query that picks the events out of each JSON line, e.g. '$.Records[*]';"
        " not with --jq.",
        show_default=False,
    ),
]


def _from_command_line(ctx: typer.Context, param: str) -> bool:
    return getattr(ctx.get_parameter_source(param), "name", None) == "COMMANDLINE"


def extraction_flags(
    ctx: typer.Context, jq: str | None, jsonpath: str | None, log_format: str = "text"
) -> Extraction | None:
    """The extraction from --jq or --jsonpath, compiled once here to check it. Both on the command
    line are a usage error (exit 2, as RSigma's clap makes it); one there and the other from a
    variable or the config file: the command line wins, as it does for every setting. An expression
    that does not compile exits 3 with the library's reason (a JSON record with the daemon's JSON
    logs)."""
    if jq is not None and jsonpath is not None:
        given = [n for n in ("jq", "jsonpath") if _from_command_line(ctx, n)]
        if given == ["jq"]:
            jsonpath = None
        elif given == ["jsonpath"]:
            jq = None
        else:
            raise typer.BadParameter("--jq and --jsonpath cannot be used together")
    if jq is None and jsonpath is None:
        return None
    spec = Extraction("jq", jq) if jq is not None else Extraction("jsonpath", jsonpath)  # type: ignore[arg-type]
    try:
        extractor(spec)
    except InvalidExpression as e:
        raise typer.Exit(startup_failed(log_format, EXIT_CONFIG_ERROR, str(e))) from None
    return spec


@engine_app.command("eval")
def engine_eval(
    ctx: typer.Context,
    rules: RulesOption,
    event: Annotated[
        str | None,
        typer.Option(
            "-e",
            "--event",
            help="One event as a JSON object (a line of --input-format if it names a format but auto),"
            " or @FILE for an NDJSON file (as --events).",
            show_default=False,
        ),
    ] = None,
    events: Annotated[
        Path | None,
        typer.Option("--events", help="NDJSON file of events (default: stdin).", dir_okay=False, exists=True),
    ] = None,
    include_event: Annotated[
        bool, typer.Option("--include-event", help="Add the event to each detection.")
    ] = False,
    pipeline: PipelineOption = None,
    logsource_routing: RoutingOption = False,
    logsource_map: RoutingMapOption = None,
    timestamp_field: TimestampFieldOption = None,
    timestamp_fallback: FallbackOption = "wallclock",
    suppress: SuppressOption = None,
    action: ActionOption = "alert",
    max_state_entries: MaxStateOption = DEFAULT_MAX_STATE_ENTRIES,
    correlation_event_mode: EventModeOption = "none",
    max_correlation_events: MaxEventsOption = DEFAULT_MAX_CORRELATION_EVENTS,
    max_group_entries: MaxGroupEntriesOption = None,
    input_format_name: InputFormatOption = DEFAULT_FORMAT,
    syslog_tz: SyslogTzOption = "+00:00",
    syslog_strip_bom: SyslogStripBomOption = "true",
    jq: JqOption = None,
    jsonpath: JsonPathOption = None,
    strict: Annotated[
        bool,
        typer.Option("--strict", help="Exit 1 when any input line was bad (all lines are still evaluated)."),
    ] = False,
    no_detections: NoDetectionsOption = False,
    match_detail: MatchDetailOption = "off",
    pretty: Annotated[bool, typer.Option("--pretty", help="Indent each result.")] = False,
    fail_on_detection: Annotated[
        bool, typer.Option("--fail-on-detection", help="Exit 1 when any detection or correlation fired.")
    ] = False,
) -> None:
    """Evaluate events and print one JSON line per detection or correlation result; a summary line
    on stderr at the end."""
    if event is not None and events is not None:
        raise typer.BadParameter("give either --event or --events, not both")
    if event is not None and event.startswith("@"):
        events, event = Path(event[1:]), None
        if not events.is_file():
            raise typer.BadParameter(f"Event file not found: {events}", param_hint="'-e' / '--event'")
    fmt = input_format_flags(input_format_name, syslog_tz, syslog_strip_bom)
    extraction = extraction_flags(ctx, jq, jsonpath)
    config = correlation_config(
        timestamp_field,
        timestamp_fallback,
        suppress,
        action,
        max_state_entries,
        correlation_event_mode,
        max_correlation_events,
        max_group_entries,
    )
    try:
        routing = routing_maps(logsource_routing, logsource_map)
        evaluator = load_evaluator(rules, config, pipeline, routing, match_detail=match_detail)
    except RuleLoadFailed as e:
        for problem in e.problems:
            print(f"error: {problem}", file=sys.stderr)
        raise typer.Exit(e.exit_code) from None
    raise typer.Exit(
        run_eval(
            evaluator,
            event=event,
            events_file=events,
            include_event=include_event,
            strict=strict,
            input_format=fmt,
            extraction=extraction,
            pretty=pretty,
            fail_on_detection=fail_on_detection,
        )
    )


def replay_flags(sequence: int | None, time: str | None, latest: bool) -> Replay:
    """The replay start; the three flags exclude each other. They also steer the state-restore
    decision with any input, as RSigma's do."""
    given = [
        flag
        for flag, value in (
            ("--replay-from-sequence", sequence),
            ("--replay-from-time", time),
            ("--replay-from-latest", latest or None),
        )
        if value is not None
    ]
    if len(given) > 1:
        raise typer.BadParameter(f"{given[0]} and {given[1]} cannot be used together")
    if time is None:
        return Replay(from_latest=latest, from_sequence=sequence)
    try:
        moment = datetime.fromisoformat(time)
    except ValueError:
        raise typer.BadParameter(
            f"--replay-from-time {time!r}: expected RFC 3339, e.g. 2026-05-15T10:00:00Z"
        ) from None
    if moment.tzinfo is None:
        raise typer.BadParameter(f"--replay-from-time {time!r}: needs a UTC offset or Z")
    seconds = int(moment.timestamp())
    return Replay(from_time_ns=seconds * 1_000_000_000 + moment.microsecond * 1000)


def _log_level(value: str) -> str:
    try:
        return parse_log_level(value)
    except ValueError as e:
        raise typer.BadParameter(str(e)) from None


def api_token(variable: str | None, log_format: str) -> str | None:
    """The API's bearer token, read from the variable --api-token-env names (never from a flag: flags
    show in ps); an unset or empty variable is a startup error (exit 3)."""
    if variable is None:
        return None
    token = os.environ.get(variable, "").strip()
    if not token:
        problem = f"--api-token-env {variable}: the variable is unset or empty"
        raise typer.Exit(startup_failed(log_format, EXIT_CONFIG_ERROR, problem))
    return token


@engine_app.command("daemon")
def engine_daemon(
    ctx: typer.Context,
    config_file: Annotated[
        str | None,
        typer.Option(
            "--config",
            envvar="RSIGMA_CONFIG",
            metavar="PATH",
            is_eager=True,
            callback=config_layers,
            help="YAML config file (default: the first of ./rsigma.yaml, .rsigmarc,"
            " ~/.config/rsigma/config.yaml, /etc/rsigma/config.yaml); flags and variables win over it.",
            show_default=False,
        ),
    ] = None,
    dry_run: Annotated[
        bool,
        typer.Option("--dry-run", help="Print the effective configuration as a config file (YAML) and exit."),
    ] = False,
    rules: Annotated[
        list[Path] | None,
        typer.Option(
            "-r",
            "--rules",
            help="Rule file or directory (recursive); repeatable. Required, here or in the config file.",
            show_default=False,
        ),
    ] = None,
    pipeline: PipelineOption = None,
    logsource_routing: RoutingOption = False,
    logsource_map: RoutingMapOption = None,
    input_: Annotated[
        str,
        typer.Option(
            "--input",
            callback=_input_source,
            help="Event source: stdin or stdin:// (ends at EOF), http (POST /api/v1/events) or nats://host:port/subject.",
        ),
    ] = "stdin",
    workers: Annotated[
        int | None,
        typer.Option(
            "--workers",
            min=0,
            help="Matcher processes (serve: default the CPUs this process may use, from its affinity"
            " and cgroup quota, minus one; engine daemon: default 0, evaluating in the supervisor).",
            show_default=False,
        ),
    ] = None,
    matcher_timeout: Annotated[
        float,
        typer.Option(
            "--matcher-timeout",
            envvar="RSIGMA_MATCHER_TIMEOUT",
            min=0.1,
            help="Seconds a matcher holding work may go without progress before it is killed and"
            " restarted (its work is sent again).",
        ),
    ] = DEFAULT_MATCHER_TIMEOUT_S,
    consumer_group: Annotated[
        str | None,
        typer.Option(
            "--consumer-group",
            envvar="RSIGMA_CONSUMER_GROUP",
            help="NATS durable consumer shared by daemons that split one stream.",
            show_default=False,
        ),
    ] = None,
    nats_ack_wait: Annotated[
        float, typer.Option("--nats-ack-wait", min=0.001, help="Seconds before JetStream redelivers.")
    ] = 30.0,
    nats_max_deliver: Annotated[
        int, typer.Option("--nats-max-deliver", min=1, help="Deliveries of one message at most.")
    ] = 5,
    nats_connect_timeout: Annotated[
        float | None,
        typer.Option(
            "--nats-connect-timeout",
            min=0,
            help="Seconds to wait at startup for an unreachable NATS server, then exit 3"
            " (default: wait for ever; 0: one attempt).",
            show_default=False,
        ),
    ] = None,
    nats_creds: Annotated[
        Path | None,
        typer.Option(
            "--nats-creds",
            envvar="NATS_CREDS",
            help="NATS .creds file (user JWT and nkey seed).",
            dir_okay=False,
            show_default=False,
        ),
    ] = None,
    nats_token: Annotated[
        str | None,
        typer.Option(
            "--nats-token",
            envvar="NATS_TOKEN",
            help="NATS token (prefer the variable: flags show in ps).",
            show_default=False,
        ),
    ] = None,
    nats_user: Annotated[
        str | None,
        typer.Option(
            "--nats-user", envvar="NATS_USER", help="NATS user; needs --nats-password.", show_default=False
        ),
    ] = None,
    nats_password: Annotated[
        str | None,
        typer.Option(
            "--nats-password",
            envvar="NATS_PASSWORD",
            help="NATS password (prefer the variable).",
            show_default=False,
        ),
    ] = None,
    nats_nkey: Annotated[
        str | None,
        typer.Option(
            "--nats-nkey",
            envvar="NATS_NKEY",
            help="NATS user nkey seed, SU... (prefer the variable).",
            show_default=False,
        ),
    ] = None,
    nats_tls_cert: Annotated[
        Path | None,
        typer.Option(
            "--nats-tls-cert",
            help="Client certificate for mutual TLS (PEM); needs --nats-tls-key.",
            dir_okay=False,
            show_default=False,
        ),
    ] = None,
    nats_tls_key: Annotated[
        Path | None,
        typer.Option(
            "--nats-tls-key",
            help="The client certificate's private key (PEM, unencrypted).",
            dir_okay=False,
            show_default=False,
        ),
    ] = None,
    nats_tls_ca: Annotated[
        Path | None,
        typer.Option(
            "--nats-tls-ca",
            help="CA certificate (PEM) to verify the NATS server with.",
            dir_okay=False,
            show_default=False,
        ),
    ] = None,
    nats_require_tls: Annotated[
        bool, typer.Option("--nats-require-tls", help="Refuse NATS servers that do not offer TLS.")
    ] = False,
    replay_from_sequence: Annotated[
        int | None,
        typer.Option(
            "--replay-from-sequence", min=1, help="NATS: start at this stream sequence.", show_default=False
        ),
    ] = None,
    replay_from_time: Annotated[
        str | None,
        typer.Option("--replay-from-time", help="NATS: start at this RFC 3339 time.", show_default=False),
    ] = None,
    replay_from_latest: Annotated[
        bool, typer.Option("--replay-from-latest", help="NATS: start at the last message in the stream.")
    ] = False,
    output: Annotated[
        list[str] | None,
        typer.Option(
            "--output",
            help="Sink: stdout (or stdout://), file:///path or nats://host:port/subject, with ?format=ocsf"
            " for OCSF Detection Findings; repeatable (each gets all).",
            show_default=False,
        ),
    ] = None,
    dlq: Annotated[
        str | None,
        typer.Option(
            "--dlq",
            help="Dead-letter queue: stdout, file:///path or nats://host:port/subject.",
            show_default=False,
        ),
    ] = None,
    include_event: Annotated[
        bool, typer.Option("--include-event", help="Add the event to each detection.")
    ] = False,
    pretty: Annotated[
        bool, typer.Option("--pretty", help="Indent the results written to stdout outputs.")
    ] = False,
    buffer_size: Annotated[
        int, typer.Option("--buffer-size", min=1, help="Capacity of every queue.")
    ] = DEFAULT_BUFFER_SIZE,
    batch_size: Annotated[
        int,
        typer.Option(
            "--batch-size", min=1, help="Events per engine step at most (those waiting; never waited for)."
        ),
    ] = DEFAULT_BATCH_SIZE,
    max_event_bytes: Annotated[
        int, typer.Option("--max-event-bytes", min=1, help="Longer input lines go to the DLQ.")
    ] = DEFAULT_MAX_EVENT_BYTES,
    sink_retry_max: Annotated[
        int, typer.Option("--sink-retry-max", min=0, help="Retries after a failed write.")
    ] = 3,
    sink_backoff_base_ms: Annotated[int, typer.Option("--sink-backoff-base-ms", min=1)] = 100,
    sink_backoff_max_ms: Annotated[int, typer.Option("--sink-backoff-max-ms", min=1)] = 5000,
    sink_batch_max: Annotated[
        int, typer.Option("--sink-batch-max", min=1, help="Queued events a sink writes in one go at most.")
    ] = DEFAULT_SINK_BATCH_MAX,
    sink_batch_flush_ms: Annotated[
        int,
        typer.Option(
            "--sink-batch-flush-ms",
            min=0,
            help="Milliseconds a sink may wait for more results before writing a batch smaller than"
            " --sink-batch-max (0: write what is queued at once).",
        ),
    ] = 0,
    state_db: Annotated[
        Path | None, typer.Option("--state-db", help="SQLite file for correlation state.", dir_okay=False)
    ] = None,
    state_save_interval: Annotated[
        float, typer.Option("--state-save-interval", min=0.001, help="Seconds.")
    ] = 30.0,
    keep_state: Annotated[bool, typer.Option("--keep-state", help="Always restore saved state.")] = False,
    clear_state: Annotated[bool, typer.Option("--clear-state", help="Never restore saved state.")] = False,
    drain_timeout: Annotated[
        float, typer.Option("--drain-timeout", min=0, help="Seconds to drain at shutdown.")
    ] = 5.0,
    api_addr: Annotated[
        str, typer.Option("--api-addr", help="HTTP API address (IP:port).")
    ] = DEFAULT_API_ADDR,
    api_max_body_bytes: Annotated[
        int,
        typer.Option(
            "--api-max-body-bytes",
            min=1,
            help="Largest POST /api/v1/events body; a larger one is answered 413 (the lines before the cap"
            " are taken, and counted in the answer).",
        ),
    ] = DEFAULT_API_MAX_BODY_BYTES,
    api_read_timeout: Annotated[
        float,
        typer.Option(
            "--api-read-timeout",
            min=0.001,
            help="Seconds the API waits for a request's headers, and for each next part of its body.",
        ),
    ] = DEFAULT_API_READ_TIMEOUT,
    api_token_env: Annotated[
        str | None,
        typer.Option(
            "--api-token-env",
            help="Name of the environment variable holding a bearer token that POST /api/v1/events and"
            " /api/v1/reload then require.",
            show_default=False,
        ),
    ] = None,
    reload_poll: Annotated[
        float, typer.Option("--reload-poll", min=0, help="Seconds between rule file checks (0: off).")
    ] = 2.0,
    strict_rules: Annotated[
        bool,
        typer.Option(
            "--strict-rules",
            envvar="RSIGMA_STRICT_RULES",
            help="Refuse to start (exit 2) when any rule file in the rule tree fails to load, instead of"
            " skipping it with a warning.",
        ),
    ] = False,
    log_format: Annotated[
        str, typer.Option("--log-format", callback=_one_of("json", "text"), help="json or text.")
    ] = "json",
    log_level: Annotated[
        str,
        typer.Option(
            "--log-level",
            envvar="RSIGMA_LOG",
            callback=_log_level,
            help="Least severe messages logged: debug, info, warning or error.",
        ),
    ] = "info",
    timestamp_field: TimestampFieldOption = None,
    timestamp_fallback: FallbackOption = "wallclock",
    suppress: SuppressOption = None,
    action: ActionOption = "alert",
    max_state_entries: MaxStateOption = DEFAULT_MAX_STATE_ENTRIES,
    correlation_event_mode: EventModeOption = "none",
    max_correlation_events: MaxEventsOption = DEFAULT_MAX_CORRELATION_EVENTS,
    max_group_entries: MaxGroupEntriesOption = None,
    input_format_name: InputFormatOption = DEFAULT_FORMAT,
    syslog_tz: SyslogTzOption = "+00:00",
    syslog_strip_bom: SyslogStripBomOption = "true",
    jq: JqOption = None,
    jsonpath: JsonPathOption = None,
    no_detections: NoDetectionsOption = False,
    match_detail: MatchDetailOption = "off",
    output_format: Annotated[
        str | None,
        typer.Option(
            "--output-format",
            metavar="FORMAT",
            help="Accepted for RSigma's scripts, with RSigma's warning: an output's format is its"
            " ?format= (ndjson or ocsf).",
            show_default=False,
        ),
    ] = None,
) -> None:
    """Evaluate a stream of events continuously and deliver results to sinks."""
    if keep_state and clear_state:
        raise typer.BadParameter("--keep-state and --clear-state cannot be used together")
    workers = workers if workers is not None else 0
    if dry_run:
        effective = {**ctx.params, "workers": workers, "output": output or ["stdout"]}
        raise typer.Exit(print_dry_run(ctx, effective))
    setup_logging(log_format, log_level)
    if output_format is not None:
        log.warning(
            f"`--output-format {output_format}` is not supported by `engine daemon`; falling back to"
            " configured sink wire format."
        )
    layers = layers_of(ctx)
    layers.log()
    if layers.problems:
        raise typer.Exit(startup_failed(log_format, EXIT_CONFIG_ERROR, *layers.problems))
    if not rules:
        problem = "no rules path; set --rules or daemon.rules in the config file"
        raise typer.Exit(startup_failed(log_format, EXIT_CONFIG_ERROR, problem))
    fmt = input_format_flags(input_format_name, syslog_tz, syslog_strip_bom, log_format)
    extraction = extraction_flags(ctx, jq, jsonpath, log_format)
    replay = replay_flags(replay_from_sequence, replay_from_time, replay_from_latest)
    correlation = correlation_config(
        timestamp_field,
        timestamp_fallback,
        suppress,
        action,
        max_state_entries,
        correlation_event_mode,
        max_correlation_events,
        max_group_entries,
        log_format,
    )
    routing = routing_maps(logsource_routing, logsource_map)
    build = EvaluatorSpec(
        tuple(rules),
        correlation,
        tuple(pipeline or ()),
        tuple(routing) if routing is not None else None,
        strict=strict_rules,
        match_detail=match_detail,
    )
    pipeline_files = tuple(Path(p) for p in pipeline or () if Path(p).exists())
    config = DaemonConfig(
        rules=tuple(rules),
        build_evaluator=build,
        watch_paths=tuple(rules) + pipeline_files,
        input=input_,
        outputs=tuple(output or ("stdout",)),
        dlq=dlq,
        include_event=include_event,
        input_format=fmt,
        extraction=extraction,
        pretty=pretty,
        buffer_size=buffer_size,
        batch_size=batch_size,
        max_event_bytes=max_event_bytes,
        sink_retry_max=sink_retry_max,
        sink_backoff_base_s=sink_backoff_base_ms / 1000,
        sink_backoff_max_s=sink_backoff_max_ms / 1000,
        sink_batch_max=sink_batch_max,
        sink_batch_flush_s=sink_batch_flush_ms / 1000,
        state_db=state_db,
        state_save_interval=state_save_interval,
        restore_mode=RestoreMode.KEEP
        if keep_state
        else RestoreMode.CLEAR
        if clear_state
        else RestoreMode.AUTO,
        drain_timeout=drain_timeout,
        api_addr=api_addr,
        api_max_body_bytes=api_max_body_bytes,
        api_read_timeout=api_read_timeout,
        api_token=api_token(api_token_env, log_format),
        reload_poll_s=reload_poll,
        correlation=correlation,
        consumer_group=consumer_group,
        nats_ack_wait_s=nats_ack_wait,
        nats_max_deliver=nats_max_deliver,
        nats_connect_timeout_s=nats_connect_timeout,
        nats_auth=nats_auth_flags(
            ctx,
            creds=nats_creds,
            token=nats_token,
            user=nats_user,
            password=nats_password,
            nkey=nats_nkey,
            tls_cert=nats_tls_cert,
            tls_key=nats_tls_key,
            tls_ca=nats_tls_ca,
            require_tls=nats_require_tls,
        ),
        replay=replay,
        workers=workers,
        matcher_timeout_s=matcher_timeout,
        log_format=log_format,
        log_level=log_level,
    )
    raise typer.Exit(start_daemon(config, log_format))


@app.command("serve")
def serve(ctx: typer.Context, **options: Any) -> None:
    """The daemon with a pool of matcher processes (--workers N, default one per usable CPU but the
    supervisor's): takes every `engine daemon` option."""
    if options["workers"] is None:
        options["workers"] = default_workers()
    engine_daemon(ctx, **options)


# Typer reads a command's options from its signature: serve's are engine daemon's.
serve.__signature__ = inspect.signature(engine_daemon, eval_str=True)  # type: ignore[attr-defined]


@rule_app.command("validate")
def rule_validate(
    paths: Annotated[list[Path], typer.Argument(help="Rule files or directories.", show_default=False)],
    output_format: Annotated[
        str,
        typer.Option(
            "--format", help="text, or json: one document on stdout with every file, error and warning."
        ),
    ] = "text",
) -> None:
    """Load and compile rules; print how many loaded and every failure with its reason (exit 1 when
    any failed)."""
    if output_format not in ("text", "json"):
        raise typer.BadParameter("--format must be text or json")
    found = validate(paths)
    print(as_json(found) if output_format == "json" else as_text(found))
    raise typer.Exit(EXIT_FAILURE if found.errors else 0)


def main() -> None:
    # The name completion scripts and usage lines use, also under `python -m rsigma`.
    app(prog_name="rsigma")
