"""The daemon's configuration layers through the real CLI: defaults < config file < environment <
flags, the file's discovery, its errors (exit 3) and warnings, and --dry-run. Every run has a fresh
directory as working directory and HOME, so no config file of the developer's is discovered."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest
import typer
import yaml

from rsigma.cli.app import app
from rsigma.cli.settings import KEYS, NO_KEY, env_variable
from tests.support.cli import ROOT, WHOAMI, WHOAMI_EVENT, write
from tests.support.cli import rsigma as rsigma_cli


def run(home: Path, *args: str | Path, env: dict[str, str] | None = None, stdin: str | None = None):
    """rsigma with `home` as working directory and HOME."""
    return rsigma_cli(*args, cwd=home, env={"HOME": str(home), **(env or {})}, stdin=stdin)


def dry_run(
    home: Path, *args: str | Path, env: dict[str, str] | None = None, command: str = "engine daemon"
) -> tuple[dict[str, Any], dict[str, str], str]:
    """The effective configuration --dry-run prints, the source its comment gives each key, its stderr."""
    done = run(home, *command.split(), "--dry-run", *args, env=env)
    assert done.returncode == 0, done.stderr
    return yaml.safe_load(done.stdout), sources(done.stdout), done.stderr


def sources(text: str) -> dict[str, str]:
    """`daemon.input.batch_size` -> `file` from the comment ending its line."""
    path: list[str] = []
    found = {}
    for line in text.splitlines():
        depth = (len(line) - len(line.lstrip())) // 2
        name, _, rest = line.strip().partition(":")
        path[depth:] = [name]
        if "  # " in rest:
            found[".".join(path)] = rest.rsplit("  # ", 1)[1]
    return found


def value(config: dict[str, Any], key: str) -> Any:
    for part in key.split("."):
        config = config[part]
    return config


# -- layers ---------------------------------------------------------------------------------------


def test_each_layer_wins_over_the_one_below(tmp_path: Path) -> None:
    write(tmp_path / "rsigma.yaml", "daemon:\n  input:\n    batch_size: 7\n")
    key = "daemon.input.batch_size"
    config, source, _ = dry_run(tmp_path)
    assert (value(config, key), source[key]) == (7, "file")
    env = {"RSIGMA_DAEMON__INPUT__BATCH_SIZE": "8"}
    config, source, _ = dry_run(tmp_path, env=env)
    assert (value(config, key), source[key]) == (8, "env RSIGMA_DAEMON__INPUT__BATCH_SIZE")
    config, source, _ = dry_run(tmp_path, "--batch-size", "9", env=env)
    assert (value(config, key), source[key]) == (9, "flag")


def test_defaults_apply_without_a_file(tmp_path: Path) -> None:
    config, source, stderr = dry_run(tmp_path)
    assert value(config, "daemon.input.batch_size") == 128
    assert set(source.values()) == {"default"}
    looked = "./rsigma.yaml, ./.rsigmarc, ~/.config/rsigma/config.yaml, /etc/rsigma/config.yaml"
    assert f"# config file: none (looked for {looked})" in stderr


def test_a_direct_variable_wins_over_the_file_and_the_uniform_variable(tmp_path: Path) -> None:
    """RSIGMA_LOG, like RSigma's clap `env=` variables, ranks with the flags' environment, above the
    RSIGMA_DAEMON__/RSIGMA_GLOBAL__ layer."""
    write(tmp_path / "rsigma.yaml", "global:\n  log_level: error\n")
    config, source, _ = dry_run(tmp_path, env={"RSIGMA_GLOBAL__LOG_LEVEL": "warning"})
    assert (config["global"]["log_level"], source["global.log_level"]) == (
        "warning",
        "env RSIGMA_GLOBAL__LOG_LEVEL",
    )
    config, source, _ = dry_run(tmp_path, env={"RSIGMA_GLOBAL__LOG_LEVEL": "warning", "RSIGMA_LOG": "debug"})
    assert (config["global"]["log_level"], source["global.log_level"]) == ("debug", "env RSIGMA_LOG")
    config, source, _ = dry_run(tmp_path, "--log-level", "info", env={"RSIGMA_LOG": "debug"})
    assert (config["global"]["log_level"], source["global.log_level"]) == ("info", "flag")


def test_a_higher_layer_replaces_a_list(tmp_path: Path) -> None:
    write(
        tmp_path / "rsigma.yaml",
        """
        daemon:
          rules: [a, b]
          output:
            sinks: [stdout, "file:///tmp/one"]
        """,
    )
    config, _, _ = dry_run(tmp_path)
    assert config["daemon"]["rules"] == ["a", "b"]
    assert config["daemon"]["output"]["sinks"] == ["stdout", "file:///tmp/one"]
    env = {"RSIGMA_DAEMON__OUTPUT__SINKS": "[file:///tmp/two, file:///tmp/three]"}
    config, _, _ = dry_run(tmp_path, env=env)
    assert config["daemon"]["output"]["sinks"] == ["file:///tmp/two", "file:///tmp/three"]
    config, _, _ = dry_run(tmp_path, "--output", "file:///tmp/four", "-r", "c", env=env)
    assert config["daemon"]["output"]["sinks"] == ["file:///tmp/four"]
    assert config["daemon"]["rules"] == ["c"]


def test_one_string_is_a_list_of_one(tmp_path: Path) -> None:
    write(tmp_path / "rsigma.yaml", "daemon:\n  rules: /etc/rsigma/rules\n")
    env = {"RSIGMA_DAEMON__PIPELINES": "sysmon"}
    config, _, _ = dry_run(tmp_path, env=env)
    assert (config["daemon"]["rules"], config["daemon"]["pipelines"]) == (["/etc/rsigma/rules"], ["sysmon"])


# -- discovery ------------------------------------------------------------------------------------


def test_discovery_takes_the_first_file_found(tmp_path: Path) -> None:
    def found() -> tuple[int, str]:
        config, _, stderr = dry_run(tmp_path)
        (header,) = [line for line in stderr.splitlines() if line.startswith("# config file:")]
        return config["daemon"]["input"]["batch_size"], header

    write(tmp_path / ".config" / "rsigma" / "config.yaml", "daemon:\n  input:\n    batch_size: 3\n")
    assert found() == (3, f"# config file: {tmp_path}/.config/rsigma/config.yaml (found)")
    write(tmp_path / ".rsigmarc", "daemon:\n  input:\n    batch_size: 2\n")
    assert found() == (2, f"# config file: {tmp_path}/.rsigmarc (found)")
    write(tmp_path / "rsigma.yaml", "daemon:\n  input:\n    batch_size: 1\n")
    assert found() == (1, f"# config file: {tmp_path}/rsigma.yaml (found)")


@pytest.mark.parametrize("how", ["flag", "env"])
def test_config_names_the_file_instead_of_discovery(tmp_path: Path, how: str) -> None:
    write(tmp_path / "rsigma.yaml", "daemon:\n  input:\n    batch_size: 1\n")
    named = write(tmp_path / "etc" / "mine.yaml", "daemon:\n  input:\n    batch_size: 5\n")
    args, env = (["--config", str(named)], None) if how == "flag" else ([], {"RSIGMA_CONFIG": str(named)})
    config, source, stderr = dry_run(tmp_path, *args, env=env)
    assert (config["daemon"]["input"]["batch_size"], source["daemon.input.batch_size"]) == (5, "file")
    assert f"# config file: {named} (given)" in stderr


def test_the_daemon_logs_which_file_it_read(tmp_path: Path) -> None:
    write(tmp_path / "rsigma.yaml", "daemon:\n  rules: rules\n")
    write(tmp_path / "rules" / "whoami.yml", WHOAMI)
    done = run(tmp_path, "engine", "daemon", "--api-addr", "127.0.0.1:0", "--reload-poll", "0", stdin="")
    assert done.returncode == 0, done.stderr
    first = json.loads(done.stderr.splitlines()[0])
    assert first["message"] == f"config file found: {tmp_path}/rsigma.yaml", first
    assert first["config_file"] == f"{tmp_path}/rsigma.yaml"


# -- a file alone drives the daemon ---------------------------------------------------------------


@pytest.mark.parametrize(("command", "workers"), [("engine daemon", 0), ("serve", 1)])
def test_a_config_file_alone_runs_the_daemon(tmp_path: Path, command: str, workers: int) -> None:
    write(tmp_path / "rules" / "whoami.yml", WHOAMI)
    out = tmp_path / "detections.ndjson"
    write(
        tmp_path / "rsigma.yaml",
        f"""
        daemon:
          rules: rules
          engine:
            workers: {workers}
            reload_poll: 0
          input:
            source: stdin
          output:
            sinks: ["file://{out}"]
          api:
            addr: 127.0.0.1:0
        global:
          log_format: text
        """,
    )
    done = run(tmp_path, *command.split(), stdin=json.dumps(WHOAMI_EVENT) + "\n")
    assert done.returncode == 0, done.stderr
    assert "info    config file found:" in done.stderr  # text logs, as the file says
    (detection,) = [json.loads(line) for line in out.read_text().splitlines()]
    assert detection["rule_title"] == "Whoami Execution"


# -- bad files and values -------------------------------------------------------------------------

BAD = {
    # name: (file text, what the error says after the file's path)
    "yaml": ("daemon:\n  rules: r\n  input: {source: stdin\n", ":4: invalid YAML: expected ',' or '}'"),
    "type": (
        "daemon:\n  rules: r\n  input:\n    buffer_size: lots\n",
        ": daemon.input.buffer_size: 'lots': Input should be a valid integer",
    ),
    "bool": (
        "daemon:\n  rules: r\n  output:\n    pretty: 1\n",
        ": daemon.output.pretty: 1: expected true or false",
    ),
    "range": (
        "daemon:\n  rules: r\n  input:\n    buffer_size: 0\n",
        ": daemon.input.buffer_size: 0: Input should be greater than or equal to 1",
    ),
    "choice": (
        "daemon:\n  rules: r\n  correlation:\n    action: drop\n",
        ": daemon.correlation.action: 'drop': expected alert or reset",
    ),
    "match_detail": (
        "daemon:\n  rules: r\n  engine:\n    match_detail: loud\n",
        ": daemon.engine.match_detail: 'loud': invalid match-detail level 'loud'"
        " (expected off, summary or full)",
    ),
    "section": (
        "daemon:\n  rules: r\n  input: stdin\n",
        ": daemon.input: expected a mapping (its keys below it), got str",
    ),
    "top": ("- daemon\n", ": expected a mapping with daemon: and global: sections, got list"),
    "unquoted": (
        "daemon:\n  rules: r\n  input:\n    syslog_tz: +5:30\n",
        ": daemon.input.syslog_tz: 330: expected a string (quote it)",
    ),
}


@pytest.mark.parametrize("case", BAD)
def test_a_bad_file_exits_3_naming_file_and_key(tmp_path: Path, case: str) -> None:
    text, said = BAD[case]
    path = write(tmp_path / "bad.yaml", text)
    done = run(tmp_path, "engine", "daemon", "--config", path, "--log-format", "text")
    assert done.returncode == 3, done.stderr
    assert f"error: {path}{said}" in done.stderr or f"error: config file {path}{said}" in done.stderr
    assert "daemon started" not in done.stderr


def test_a_bad_file_is_a_critical_record_with_json_logs(tmp_path: Path) -> None:
    path = write(tmp_path / "rsigma.yaml", BAD["range"][0])
    done = run(tmp_path, "engine", "daemon")
    assert done.returncode == 3, done.stderr
    last = json.loads(done.stderr.splitlines()[-1])
    assert last["level"] == "critical" and last["exit_code"] == 3
    assert last["message"] == f"{path}{BAD['range'][1]}"


def test_a_missing_config_file_exits_3(tmp_path: Path) -> None:
    done = run(tmp_path, "engine", "daemon", "-r", "r", "--config", "nope.yaml", "--log-format", "text")
    assert done.returncode == 3, done.stderr
    assert "error: config file nope.yaml: No such file or directory" in done.stderr


def test_a_bad_variable_exits_3_naming_it(tmp_path: Path) -> None:
    env = {"RSIGMA_DAEMON__NATS__MAX_DELIVER": "0"}
    done = run(tmp_path, "engine", "daemon", "-r", "r", "--log-format", "text", env=env)
    assert done.returncode == 3, done.stderr
    assert (
        "error: env RSIGMA_DAEMON__NATS__MAX_DELIVER: daemon.nats.max_deliver: '0': Input should be greater"
        in done.stderr
    )


def test_dry_run_reports_a_bad_file_too(tmp_path: Path) -> None:
    path = write(tmp_path / "rsigma.yaml", BAD["choice"][0])
    done = run(tmp_path, "engine", "daemon", "--dry-run")
    assert done.returncode == 3 and done.stdout == ""
    assert f"error: {path}{BAD['choice'][1]}" in done.stderr


def test_unknown_keys_and_variables_only_warn(tmp_path: Path) -> None:
    path = write(
        tmp_path / "rsigma.yaml",
        """
        daemon:
          input:
            batch_sise: 5
          outputs: {}
        eval: {}
        """,
    )
    done = run(tmp_path, "engine", "daemon", "--dry-run", env={"RSIGMA_DAEMON__OUTPUT__DLQQ": "stdout"})
    assert done.returncode == 0, done.stderr
    warnings = [line for line in done.stderr.splitlines() if line.startswith("warning:")]
    assert warnings == [
        f"warning: {path}: unknown key daemon.input.batch_sise ignored"
        " (did you mean daemon.input.batch_size?)",
        f"warning: {path}: unknown key daemon.outputs ignored (did you mean daemon.output?)",
        f"warning: {path}: unknown key eval ignored",
        "warning: unknown variable RSIGMA_DAEMON__OUTPUT__DLQQ ignored"
        " (did you mean RSIGMA_DAEMON__OUTPUT__DLQ?)",
    ]
    started = run(tmp_path, "engine", "daemon", "-r", "r", "--log-format", "text", "--api-addr", "bogus")
    assert f"warning {path}: unknown key daemon.input.batch_sise ignored" in started.stderr


# -- rules ----------------------------------------------------------------------------------------


@pytest.mark.parametrize("log_format", ["text", "json"])
def test_without_rules_anywhere_the_daemon_exits_3(tmp_path: Path, log_format: str) -> None:
    done = run(tmp_path, "engine", "daemon", "--log-format", log_format)
    assert done.returncode == 3, done.stderr
    message = "no rules path; set --rules or daemon.rules in the config file"
    if log_format == "text":
        assert done.stderr == f"error: {message}\n"
    else:
        assert json.loads(done.stderr)["message"] == message


# -- dry run --------------------------------------------------------------------------------------


def test_dry_run_output_is_a_config_file_that_gives_the_same_configuration(tmp_path: Path) -> None:
    write(tmp_path / "rsigma.yaml", "daemon:\n  state:\n    save_interval: 12.5\n")
    first = run(
        tmp_path,
        *("serve", "--dry-run", "-r", "rules", "-p", "sysmon", "--output", "stdout", "--output", "file:///o"),
        *("--timestamp-field", "ts", "--suppress", "5m", "--syslog-strip-bom", "false", "--workers", "3"),
        env={"RSIGMA_DAEMON__OUTPUT__DLQ": "file:///dlq", "RSIGMA_LOG": "warn", "RSIGMA_SYSLOG_TZ": "+05:30"},
    )
    assert first.returncode == 0, first.stderr
    saved = write(tmp_path / "saved" / "config.yaml", first.stdout)
    again = run(tmp_path, "serve", "--dry-run", "--config", saved)
    assert again.returncode == 0, again.stderr
    assert yaml.safe_load(again.stdout) == yaml.safe_load(first.stdout)
    assert "warning" not in again.stderr
    config = yaml.safe_load(first.stdout)
    assert config["daemon"]["state"]["save_interval"] == 12.5
    assert config["daemon"]["output"]["dlq"] == "file:///dlq"
    assert config["daemon"]["input"]["syslog_tz"] == "+05:30"
    assert config["daemon"]["input"]["syslog_strip_bom"] == "false"
    assert config["daemon"]["engine"]["workers"] == 3
    assert config["global"]["log_level"] == "warning"
    assert set(sources(again.stdout).values()) <= {"file", "default"}


def test_dry_run_header_names_the_layers(tmp_path: Path) -> None:
    write(tmp_path / "rsigma.yaml", "daemon:\n  rules: r\n")
    done = run(
        tmp_path,
        *("engine", "daemon", "--dry-run", "--pretty", "--replay-from-latest"),
        env={"RSIGMA_DAEMON__OUTPUT__DLQ": "stdout", "RSIGMA_CONSUMER_GROUP": "g"},
    )
    assert done.returncode == 0, done.stderr
    assert done.stderr.splitlines() == [
        "# effective daemon configuration: defaults < config file < environment < flags",
        f"# config file: {tmp_path}/rsigma.yaml (found)",
        "# environment: RSIGMA_CONSUMER_GROUP, RSIGMA_DAEMON__OUTPUT__DLQ",
        "# flags: --pretty",
        "# also in effect, no config key: --replay-from-latest",
    ]


def test_dry_run_never_prints_a_secret(tmp_path: Path) -> None:
    done = run(tmp_path, "engine", "daemon", "--dry-run", env={"NATS_TOKEN": "s3cret-token"})
    assert done.returncode == 0, done.stderr
    assert "s3cret-token" not in done.stdout + done.stderr
    assert "# also in effect, no config key: --nats-token <set> (env NATS_TOKEN)" in done.stderr


def test_the_deploy_example_is_a_valid_config_file(tmp_path: Path) -> None:
    example = ROOT / "deploy" / "systemd" / "config.yaml"
    done = run(tmp_path, "serve", "--dry-run", "--config", example)
    assert done.returncode == 0, done.stderr
    assert "warning" not in done.stderr
    config = yaml.safe_load(done.stdout)
    given = yaml.safe_load(example.read_text())
    for section, keys in given["daemon"].items():
        if isinstance(keys, dict):
            for key, want in keys.items():
                assert config["daemon"][section][key] == want, (section, key)
    assert set(sources(done.stdout).values()) <= {"file", "default"}


# -- every flag has a key, every key its documentation ---------------------------------------------


def daemon_params(name: str) -> dict[str, Any]:
    command = typer.main.get_command(app)
    if name == "engine daemon":
        return {p.name: p for p in command.commands["engine"].commands["daemon"].params}
    leaf = command.commands[name]
    return {p.name: p for p in leaf.params}


@pytest.mark.parametrize("command", ["engine daemon", "serve"])
def test_every_daemon_parameter_has_a_key_or_is_listed_without_one(command: str) -> None:
    names = set(daemon_params(command))
    assert names - set(KEYS) - NO_KEY == set(), "give each new flag a config key in rsigma/cli/settings.py"
    assert set(KEYS) | NO_KEY <= names


def test_configuration_md_lists_every_key_with_its_variable_and_flag() -> None:
    doc = (ROOT / "docs" / "configuration.md").read_text()
    rows = set(re.findall(r"^\| `([a-z_.]+)` \| `(RSIGMA_[A-Z_]+)` \| `(--[a-z-]+)` \|", doc, re.MULTILINE))
    params = daemon_params("engine daemon")
    for name, key in KEYS.items():
        flag = next(o for o in params[name].opts if o.startswith("--"))
        assert (key, env_variable(key), flag) in rows, key
    for name in NO_KEY - {"config_file", "dry_run"}:
        flag = next(o for o in params[name].opts if o.startswith("--"))
        assert f"`{flag}`" in doc.split("## Configuration file", 1)[1], flag
