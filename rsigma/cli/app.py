"""Commands grouped as RSigma has them (`engine eval`, `engine daemon`, `rule validate`), and `serve`."""

from __future__ import annotations

import inspect
import logging
import sys
from pathlib import Path
from typing import Annotated, Any

import typer

from rsigma import __version__
from rsigma.cli.daemon import nats_auth_flags, start_daemon, startup_failed
from rsigma.cli.eval import run_eval
from rsigma.cli.options import (
    ActionOption,
    EventModeOption,
    FallbackOption,
    InputFormatOption,
    JqOption,
    JsonPathOption,
    MatchDetailOption,
    MaxEventsOption,
    MaxGroupEntriesOption,
    MaxStateOption,
    NoDetectionsOption,
    NoRuleCacheOption,
    PipelineOption,
    RoutingMapOption,
    RoutingOption,
    RuleCacheOption,
    RulesOption,
    SuppressOption,
    SyslogStripBomOption,
    SyslogTzOption,
    TimestampFieldOption,
    api_token,
    cluster_flags,
    correlation_config,
    extraction_flags,
    input_format_flags,
    input_source,
    log_level_flag,
    one_of,
    replay_flags,
    routing_maps,
    rule_cache_dir,
)
from rsigma.cli.settings import config_layers, layers_of, print_dry_run
from rsigma.cli.validate import as_json, as_text, validate
from rsigma.correlation.engine import DEFAULT_MAX_STATE_ENTRIES
from rsigma.correlation.evidence import DEFAULT_MAX_CORRELATION_EVENTS
from rsigma.daemon.config import (
    DEFAULT_API_ADDR,
    DEFAULT_API_MAX_BODY_BYTES,
    DEFAULT_API_READ_TIMEOUT,
    DEFAULT_BATCH_SIZE,
    DEFAULT_BUFFER_SIZE,
    DEFAULT_CLUSTER_APPLY_INTERVAL_S,
    DEFAULT_CLUSTER_HEARTBEAT_S,
    DEFAULT_CLUSTER_PARTITIONS,
    DEFAULT_CLUSTER_REPLICAS,
    DEFAULT_CLUSTER_SNAPSHOT_INTERVAL_S,
    DEFAULT_MAX_EVENT_BYTES,
    DEFAULT_SINK_BATCH_MAX,
    DaemonConfig,
)
from rsigma.daemon.state import RestoreMode
from rsigma.exit_codes import EXIT_CONFIG_ERROR, EXIT_FAILURE
from rsigma.formats import DEFAULT_FORMAT
from rsigma.loading import EvaluatorSpec, RuleLoadFailed, load_evaluator
from rsigma.logs import setup_logging
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
    rule_cache: RuleCacheOption = None,
    no_rule_cache: NoRuleCacheOption = False,
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
    config = correlation_config(ctx.params)
    try:
        routing = routing_maps(logsource_routing, logsource_map)
        evaluator = load_evaluator(
            rules,
            config,
            pipeline,
            routing,
            match_detail=match_detail,
            rule_cache=rule_cache_dir(rule_cache, no_rule_cache),
        )
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
            callback=input_source,
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
    cluster: Annotated[
        str | None,
        typer.Option(
            "--cluster",
            envvar="RSIGMA_CLUSTER",
            metavar="NAME",
            help="Share correlation with the daemons of this cluster reading the same nats:// input"
            " (implies --consumer-group NAME; runs with --workers 0 or a matcher pool; see docs/cluster.md).",
            show_default=False,
        ),
    ] = None,
    cluster_partitions: Annotated[
        int,
        typer.Option(
            "--cluster-partitions",
            envvar="RSIGMA_CLUSTER_PARTITIONS",
            min=1,
            help="Partitions of the correlation windows in a --cluster (fixed when the cluster is created).",
        ),
    ] = DEFAULT_CLUSTER_PARTITIONS,
    cluster_apply_interval: Annotated[
        float,
        typer.Option(
            "--cluster-apply-interval",
            min=0.001,
            help="Seconds between two reads of the input's ack floor, each applying the owned hits below it.",
        ),
    ] = DEFAULT_CLUSTER_APPLY_INTERVAL_S,
    cluster_heartbeat: Annotated[
        float,
        typer.Option(
            "--cluster-heartbeat",
            envvar="RSIGMA_CLUSTER_HEARTBEAT",
            min=0.001,
            help="Seconds between two writes of this member's key in the cluster's KV bucket (it lives"
            " 3 heartbeats).",
        ),
    ] = DEFAULT_CLUSTER_HEARTBEAT_S,
    cluster_replicas: Annotated[
        int,
        typer.Option(
            "--cluster-replicas",
            envvar="RSIGMA_CLUSTER_REPLICAS",
            min=1,
            max=5,
            help="Replicas of the cluster's hits stream and KV bucket when this member creates them (3 on"
            " a 3-node NATS cluster: they outlive the loss of one server).",
        ),
    ] = DEFAULT_CLUSTER_REPLICAS,
    cluster_snapshot_interval: Annotated[
        float,
        typer.Option(
            "--cluster-snapshot-interval",
            envvar="RSIGMA_CLUSTER_SNAPSHOT_INTERVAL",
            min=0,
            help="Seconds between two snapshots of the owned partitions' windows (also written at a clean"
            " stop), from which a member gaining a partition replays (0: none, a gained partition replays"
            " the whole hits stream).",
        ),
    ] = DEFAULT_CLUSTER_SNAPSHOT_INTERVAL_S,
    cluster_member_id: Annotated[
        str | None,
        typer.Option(
            "--cluster-member-id",
            envvar="RSIGMA_CLUSTER_MEMBER_ID",
            metavar="ID",
            help="This daemon's id in its --cluster (default <hostname>-<pid>; a fixed id keeps its"
            " partitions across restarts).",
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
    rule_cache: RuleCacheOption = None,
    no_rule_cache: NoRuleCacheOption = False,
    log_format: Annotated[
        str, typer.Option("--log-format", callback=one_of("json", "text"), help="json or text.")
    ] = "json",
    log_level: Annotated[
        str,
        typer.Option(
            "--log-level",
            envvar="RSIGMA_LOG",
            callback=log_level_flag,
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
    if cluster is not None:
        cluster_flags(cluster, input_, state_db, cluster_member_id)
    correlation = correlation_config(ctx.params, log_format)
    routing = routing_maps(logsource_routing, logsource_map)
    build = EvaluatorSpec(
        tuple(rules),
        correlation,
        tuple(pipeline or ()),
        tuple(routing) if routing is not None else None,
        strict=strict_rules,
        match_detail=match_detail,
        rule_cache=rule_cache_dir(rule_cache, no_rule_cache),
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
        consumer_group=consumer_group or cluster,
        cluster=cluster,
        cluster_partitions=cluster_partitions,
        cluster_apply_interval_s=cluster_apply_interval,
        cluster_heartbeat_s=cluster_heartbeat,
        cluster_replicas=cluster_replicas,
        cluster_snapshot_interval_s=cluster_snapshot_interval,
        cluster_member_id=cluster_member_id,
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
