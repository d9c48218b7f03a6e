"""The options `engine eval`, `engine daemon` and `serve` share, and the checks that turn flags into
settings: each check runs as its option's callback where it can, so a value from the config file
(`rsigma/cli/settings.py`) is checked the same way and named by its key."""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Mapping
from datetime import datetime
from pathlib import Path
from typing import Annotated, Any

import typer

from rsigma.cli.daemon import startup_failed
from rsigma.cluster.records import MembershipError, check_member_id
from rsigma.correlation.engine import CorrelationConfig
from rsigma.correlation.evidence import mode_of
from rsigma.correlation.timestamps import DEFAULT_TIMESTAMP_FIELDS
from rsigma.daemon.state import Replay
from rsigma.engine.match_detail import check_level
from rsigma.errors import SigmaError
from rsigma.exit_codes import EXIT_CONFIG_ERROR
from rsigma.formats import FORMATS, InputFormat, input_format
from rsigma.formats.extract import Extraction, InvalidExpression, extractor
from rsigma.logs import log_level as parse_log_level
from rsigma.pipelines import builtin_pipelines
from rsigma.routing.router import builtin_routers
from rsigma.rule_cache import default_dir
from rsigma.rules.correlation import parse_timespan

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


def one_of(*choices: str) -> Callable[[str], str]:
    """A callback refusing any other value: options whose values click does not check, so a config
    file's value is checked (and named) the same way as the flag's."""
    expected = f"{', '.join(choices[:-1])} or {choices[-1]}"

    def check(value: str) -> str:
        if value not in choices:
            raise typer.BadParameter(f"{value!r}: expected {expected}")
        return value

    return check


def input_source(value: str) -> str:
    if value not in ("stdin", "stdin://", "http") and not value.startswith("nats://"):
        raise typer.BadParameter(f"{value!r}: expected stdin, http or nats://host:port/subject")
    return value


def correlation_config(params: Mapping[str, Any], log_format: str = "text") -> CorrelationConfig:
    """One config from the correlation flags `engine eval` and the daemon share (`params`: the
    command's `ctx.params`). An unknown --correlation-event-mode exits 3, as RSigma's does (a JSON
    record with the daemon's JSON logs)."""
    event_mode = params["correlation_event_mode"]
    timestamp_fields = params["timestamp_field"] or ()
    try:
        mode_of(event_mode)
    except ValueError as e:
        problem = f"--correlation-event-mode: {e}"
        raise typer.Exit(startup_failed(log_format, EXIT_CONFIG_ERROR, problem)) from None
    fields = tuple(timestamp_fields) + tuple(f for f in DEFAULT_TIMESTAMP_FIELDS if f not in timestamp_fields)
    return CorrelationConfig(
        timestamp_fields=fields,
        timestamp_fallback=params["timestamp_fallback"],
        suppress=_duration(params["suppress"]),
        action=params["action"],
        max_state_entries=params["max_state_entries"],
        event_mode=event_mode,
        max_correlation_events=params["max_correlation_events"],
        max_group_entries=params["max_group_entries"],
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
        callback=one_of("wallclock", "skip"),
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
        callback=one_of("alert", "reset"),
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


RuleCacheOption = Annotated[
    Path | None,
    typer.Option(
        "--rule-cache",
        envvar="RSIGMA_RULE_CACHE",
        metavar="DIR",
        file_okay=False,
        help="Directory keeping parsed rule sets, so a restart, a reload or a matcher starts faster"
        " (default: $XDG_CACHE_HOME/rsigma/rules, else ~/.cache/rsigma/rules). It must be yours and"
        " writable by no one else, or it is not used.",
        show_default=False,
    ),
]
NoRuleCacheOption = Annotated[
    bool,
    typer.Option(
        "--no-rule-cache",
        envvar="RSIGMA_NO_RULE_CACHE",
        help="Parse and compile the rules afresh, without reading or writing the rule cache.",
    ),
]


def rule_cache_dir(directory: Path | None, disabled: bool) -> Path | None:
    """The rule cache to use: none with --no-rule-cache, else --rule-cache or the default."""
    if disabled:
        return None
    return directory or default_dir()


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


def log_level_flag(value: str) -> str:
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


def cluster_flags(name: str, input_: str, state_db: Path | None, member_id: str | None = None) -> None:
    """`--cluster` and what it cannot go with yet: exit 2 (a usage error) saying why."""
    if member_id is not None:
        try:
            check_member_id(member_id)
        except MembershipError as e:
            raise typer.BadParameter(str(e), param_hint="'--cluster-member-id'") from e
    if not re.fullmatch(r"[A-Za-z0-9_-]+", name):
        raise typer.BadParameter(
            f"{name!r}: letters, digits, '-' and '_' only (it names a NATS stream and subjects)",
            param_hint="'--cluster'",
        )
    if not input_.startswith("nats://"):
        raise typer.BadParameter(
            f"needs a nats:// --input (the daemons of a cluster share one JetStream stream), not {input_!r}",
            param_hint="'--cluster'",
        )
    if state_db is not None:
        raise typer.BadParameter(
            "cannot be used with --state-db yet: a cluster's windows are saved per partition with the"
            " hits-stream sequence they reflect (not built yet)",
            param_hint="'--cluster'",
        )
