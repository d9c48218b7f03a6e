"""The daemon's settings below its flags: a YAML config file (RSigma's discovery order and key names) and
the uniform `RSIGMA_DAEMON__<SECTION>__<KEY>` variables. Both become the command's click default map,
so click itself keeps the order flag > direct variable (`RSIGMA_LOG`, `NATS_*`, ...) > default map >
compiled default, and every value is checked by its own parameter, exactly as the flag would be."""

from __future__ import annotations

import difflib
import json
import logging
import os
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import typer
import yaml

from rsigma.exit_codes import EXIT_CONFIG_ERROR

log = logging.getLogger("rsigma.daemon")

#: The config key of each `engine daemon` parameter: RSigma's where it has one (`daemon.*`,
#: `global.log_format`), the same style for ours. Its variable is `env_variable(key)`.
KEYS: dict[str, str] = {
    "rules": "daemon.rules",
    "pipeline": "daemon.pipelines",
    "logsource_routing": "daemon.engine.logsource_routing",
    "logsource_map": "daemon.engine.logsource_maps",
    "strict_rules": "daemon.engine.strict_rules",
    "workers": "daemon.engine.workers",
    "matcher_timeout": "daemon.engine.matcher_timeout",
    "reload_poll": "daemon.engine.reload_poll",
    "match_detail": "daemon.engine.match_detail",
    "rule_cache": "daemon.engine.rule_cache",
    "no_rule_cache": "daemon.engine.no_rule_cache",
    "input_": "daemon.input.source",
    "input_format_name": "daemon.input.format",
    "syslog_tz": "daemon.input.syslog_tz",
    "syslog_strip_bom": "daemon.input.syslog_strip_bom",
    "jq": "daemon.input.jq",
    "jsonpath": "daemon.input.jsonpath",
    "buffer_size": "daemon.input.buffer_size",
    "batch_size": "daemon.input.batch_size",
    "max_event_bytes": "daemon.input.max_event_bytes",
    "output": "daemon.output.sinks",
    "dlq": "daemon.output.dlq",
    "include_event": "daemon.output.include_event",
    "pretty": "daemon.output.pretty",
    "drain_timeout": "daemon.output.drain_timeout",
    "sink_retry_max": "daemon.output.retry_max",
    "sink_backoff_base_ms": "daemon.output.backoff_base_ms",
    "sink_backoff_max_ms": "daemon.output.backoff_max_ms",
    "sink_batch_max": "daemon.output.batch_max",
    "sink_batch_flush_ms": "daemon.output.batch_flush_ms",
    "state_db": "daemon.state.db",
    "state_save_interval": "daemon.state.save_interval",
    "api_addr": "daemon.api.addr",
    "api_max_body_bytes": "daemon.api.max_body_bytes",
    "api_read_timeout": "daemon.api.read_timeout",
    "suppress": "daemon.correlation.suppress",
    "action": "daemon.correlation.action",
    "no_detections": "daemon.correlation.no_detections",
    "max_state_entries": "daemon.correlation.max_state_entries",
    "correlation_event_mode": "daemon.correlation.event_mode",
    "max_correlation_events": "daemon.correlation.max_correlation_events",
    "max_group_entries": "daemon.correlation.max_group_entries",
    "timestamp_field": "daemon.correlation.timestamp_fields",
    "timestamp_fallback": "daemon.correlation.timestamp_fallback",
    "consumer_group": "daemon.nats.consumer_group",
    "cluster": "daemon.cluster.name",
    "cluster_partitions": "daemon.cluster.partitions",
    "cluster_apply_interval": "daemon.cluster.apply_interval",
    "cluster_heartbeat": "daemon.cluster.heartbeat",
    "cluster_replicas": "daemon.cluster.replicas",
    "cluster_snapshot_interval": "daemon.cluster.snapshot_interval",
    "cluster_member_id": "daemon.cluster.member_id",
    "nats_ack_wait": "daemon.nats.ack_wait",
    "nats_max_deliver": "daemon.nats.max_deliver",
    "nats_connect_timeout": "daemon.nats.connect_timeout",
    "nats_tls_cert": "daemon.nats.tls_cert",
    "nats_tls_key": "daemon.nats.tls_key",
    "nats_tls_ca": "daemon.nats.tls_ca",
    "nats_require_tls": "daemon.nats.require_tls",
    "log_format": "global.log_format",
    "log_level": "global.log_level",
}

#: Parameters no file holds, as in RSigma: secrets belong in the environment (or a flag), one-off
#: actions on the command line.
SECRETS = frozenset({"nats_creds", "nats_token", "nats_user", "nats_password", "nats_nkey"})
NO_KEY = SECRETS | {
    "replay_from_sequence",
    "replay_from_time",
    "replay_from_latest",
    "keep_state",
    "clear_state",
    "api_token_env",
    "config_file",
    "dry_run",
    "output_format",  # accepted and ignored, with RSigma's warning
}

#: Looked for in this order when --config is not given; the first that exists is read.
DISCOVERY = ("./rsigma.yaml", "./.rsigmarc", "~/.config/rsigma/config.yaml", "/etc/rsigma/config.yaml")

_PARAMS = {key: name for name, key in KEYS.items()}
_SECTIONS = {key.rsplit(".", i)[0] for key in _PARAMS for i in range(1, key.count(".") + 1)}
_META = "rsigma.settings"


def env_variable(key: str) -> str:
    """`daemon.output.dlq` -> `RSIGMA_DAEMON__OUTPUT__DLQ`."""
    return "RSIGMA_" + key.upper().replace(".", "__")


@dataclass
class Layers:
    """What the file and the uniform variables gave, for the log and for --dry-run."""

    file: Path | None = None
    given: bool = False  # named by --config or RSIGMA_CONFIG rather than discovered
    origins: dict[str, str] = field(default_factory=dict)  # parameter -> "file" or "env NAME"
    problems: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)

    def log(self) -> None:
        """Say which file was read (so a discovered one never surprises) and what was ignored."""
        if self.file is not None:
            how = "given" if self.given else "found"
            log.info("config file %s: %s", how, self.file, extra={"config_file": str(self.file)})
        for warning in self.warnings:
            log.warning(warning)


def config_layers(ctx: typer.Context, param: Any, value: str | None) -> str | None:
    """The eager --config option's callback: load the file and the variables into `ctx.default_map`.
    Problems are kept for the command to report once logging is set up (exit 3)."""
    if ctx.resilient_parsing:
        return value
    layers = Layers()
    params = {p.name: p for p in ctx.command.params}
    defaults: dict[str, Any] = {}

    def take(key: str, raw: Any, convert: Callable[[Any, Any], Any], where: str, origin: str) -> None:
        """Check one value with its parameter (type, range, choices): keep it, or the problem."""
        param = params[_PARAMS[key]]
        try:
            defaults[param.name] = param.process_value(ctx, convert(param, raw))
            layers.origins[param.name] = origin
        except (ValueError, typer.BadParameter) as e:
            message = e.message if isinstance(e, typer.BadParameter) else str(e)
            shown = repr(raw) if isinstance(raw, str) else json.dumps(raw, default=str)
            if not message.startswith(shown):
                message = f"{shown}: {message}"
            layers.problems.append(f"{where}: {key}: {message}")

    path = Path(value) if value else _discover()
    if path is not None:
        layers.file, layers.given = path, bool(value)
        for key, raw in _read(path, layers).items():
            take(key, raw, _from_yaml, str(path), "file")
    for variable, raw in sorted(os.environ.items()):
        if not variable.startswith(("RSIGMA_DAEMON__", "RSIGMA_GLOBAL__")) or not raw:
            continue
        key = variable.removeprefix("RSIGMA_").lower().replace("__", ".")
        if key in _PARAMS:
            take(key, raw, _from_env, f"env {variable}", f"env {variable}")
        else:
            near = difflib.get_close_matches(key, _PARAMS, n=1)
            hint = f" (did you mean {env_variable(near[0])}?)" if near else ""
            layers.warnings.append(f"unknown variable {variable} ignored{hint}")
    ctx.default_map = {**(ctx.default_map or {}), **defaults}
    ctx.meta[_META] = layers
    return value


def layers_of(ctx: typer.Context) -> Layers:
    return ctx.meta.get(_META) or Layers()


def _discover() -> Path | None:
    for candidate in DISCOVERY:
        path = Path(candidate).expanduser()
        if path.is_file():
            return path.absolute()
    return None


def _read(path: Path, layers: Layers) -> dict[str, Any]:
    """The file's known keys and their values; unknown keys become warnings, an unreadable file or
    one that is not YAML a problem."""
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except OSError as e:
        layers.problems.append(f"config file {path}: {e.strerror or e}")
        return {}
    except UnicodeDecodeError as e:
        layers.problems.append(f"config file {path}: not UTF-8 text ({e.reason})")
        return {}
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        line = f":{mark.line + 1}" if mark is not None else ""
        what = getattr(e, "problem", None) or str(e)
        layers.problems.append(f"config file {path}{line}: invalid YAML: {what}")
        return {}
    if data is None:
        return {}
    found: dict[str, Any] = {}
    _walk(data, "", path, layers, found)
    return found


def _walk(data: Any, prefix: str, path: Path, layers: Layers, found: dict[str, Any]) -> None:
    if not isinstance(data, dict):
        got = type(data).__name__
        if prefix:
            layers.problems.append(f"{path}: {prefix}: expected a mapping (its keys below it), got {got}")
        else:
            layers.problems.append(f"{path}: expected a mapping with daemon: and global: sections, got {got}")
        return
    for name, value in data.items():
        key = f"{prefix}.{name}" if prefix else str(name)
        if key in _PARAMS:
            if value is not None:
                found[key] = value
        elif key in _SECTIONS:
            if value is not None:
                _walk(value, key, path, layers, found)
        else:
            near = difflib.get_close_matches(key, [*_PARAMS, *_SECTIONS], n=1)
            hint = f" (did you mean {near[0]}?)" if near else ""
            layers.warnings.append(f"{path}: unknown key {key} ignored{hint}")


def _from_yaml(param: Any, value: Any) -> Any:
    """A YAML value as the parameter takes it; a kind YAML would silently turn into another (true as
    1, an unquoted +5:30 as 330) is refused."""
    kind = param.type_descriptor.annotation
    if param.multiple:
        items = [value] if isinstance(value, str) else value
        if not isinstance(items, list) or not all(isinstance(i, str) for i in items):
            raise ValueError("expected a string or a list of strings")
        return items
    if kind is bool:
        if not isinstance(value, bool):
            raise ValueError("expected true or false")
        return value
    if kind in (int, float):
        if isinstance(value, bool) or not isinstance(value, int | float | str):
            raise ValueError("expected a number")
        return value
    if isinstance(value, bool):
        return "true" if value else "false"
    if not isinstance(value, str):
        raise ValueError("expected a string (quote it)")
    return value


def _from_env(param: Any, value: str) -> Any:
    """A variable's text as the parameter takes it: a list is written `[a, b]`, one item as itself."""
    if not param.multiple:
        return value
    if not value.lstrip().startswith("["):
        return [value]
    try:
        items = yaml.safe_load(value)
    except yaml.YAMLError:
        raise ValueError("expected a list written [a, b]") from None
    return _from_yaml(param, items)


def print_dry_run(ctx: typer.Context, values: dict[str, Any]) -> int:
    """Print the effective settings as a config file (stdout) and where they came from (stderr);
    0, or 3 when the file or a variable has a problem."""
    layers = layers_of(ctx)
    for warning in layers.warnings:
        print(f"warning: {warning}", file=sys.stderr)
    if layers.problems:
        for problem in layers.problems:
            print(f"error: {problem}", file=sys.stderr)
        return EXIT_CONFIG_ERROR
    params = {p.name: p for p in ctx.command.params}
    sources = {name: _source(ctx, params[name], layers) for name in params}
    print(_header(layers, params, sources, values), file=sys.stderr)
    print(_as_yaml(values, sources), end="")
    return 0


def _source(ctx: typer.Context, param: Any, layers: Layers) -> str:
    source = getattr(ctx.get_parameter_source(param.name), "name", "DEFAULT")
    if source == "COMMANDLINE":
        return "flag"
    if source == "ENVIRONMENT":
        return f"env {param.envvar}"
    if source == "DEFAULT_MAP":
        return layers.origins.get(param.name, "default")
    return "default"


def _flag(param: Any) -> str:
    return next(o for o in param.opts if o.startswith("--"))


def _header(layers: Layers, params: dict[str, Any], sources: dict[str, str], values: dict[str, Any]) -> str:
    if layers.file is None:
        file = f"none (looked for {', '.join(DISCOVERY)})"
    else:
        file = f"{layers.file} ({'given' if layers.given else 'found'})"
    variables = sorted({s.removeprefix("env ") for s in sources.values() if s.startswith("env ")})
    flags = [_flag(params[n]) for n, s in sources.items() if s == "flag" and n in KEYS]
    lines = [
        "# effective daemon configuration: defaults < config file < environment < flags",
        f"# config file: {file}",
        f"# environment: {', '.join(variables) or 'none'}",
        f"# flags: {', '.join(flags) or 'none'}",
    ]
    unkeyed = [
        _flag(params[n])
        + ("" if values[n] is True else f" {'<set>' if n in SECRETS else _plain(values[n])}")
        + (f" ({s})" if s.startswith("env ") else "")
        for n, s in sources.items()
        if n in NO_KEY and s != "default" and n not in ("config_file", "dry_run")
    ]
    if unkeyed:
        lines.append(f"# also in effect, no config key: {', '.join(unkeyed)}")
    return "\n".join(lines)


def _as_yaml(values: dict[str, Any], sources: dict[str, str]) -> str:
    """A config file in KEYS' order, each section once, each value (JSON, which YAML reads as is) with
    its source."""
    first: dict[str, int] = {}
    for key in KEYS.values():
        for depth in range(1, key.count(".") + 1):
            first.setdefault(key.rsplit(".", depth)[0], len(first))

    def grouped(item: tuple[str, str]) -> list[int]:
        parts = item[1].split(".")
        return [first[".".join(parts[:i])] for i in range(1, len(parts))]

    lines: list[str] = []
    open_sections: list[str] = []
    for name, key in sorted(KEYS.items(), key=grouped):
        *sections, leaf = key.split(".")
        common = 0
        while common < min(len(sections), len(open_sections)) and sections[common] == open_sections[common]:
            common += 1
        for depth in range(common, len(sections)):
            lines.append(f"{'  ' * depth}{sections[depth]}:")
        open_sections = sections
        value = json.dumps(_plain(values[name]), ensure_ascii=False)
        lines.append(f"{'  ' * len(sections)}{leaf}: {value}  # {sources[name]}")
    return "\n".join(lines) + "\n"


def _plain(value: Any) -> Any:
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    if isinstance(value, Path):
        return str(value)
    return value
