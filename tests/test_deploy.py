"""deploy/: every recipe is checked against the real thing where the machine allows it.

- NATS: every configuration passes `nats-server -t` (store directories and certificate paths replaced by
  temporary ones, certificates made with trustme); the 3-node cluster actually forms and holds an R3
  stream; the token and user examples admit the documented clients, and rsigma runs end to end with
  the permissions users.conf grants it; the TLS example refuses a client without a certificate.
- Compose, Prometheus, alerts, Grafana: they parse; the two `serve` instances share one consumer group
  and Prometheus scrapes both; every metric an alert or a panel queries is one the daemon or its pool
  exports (from the metric classes themselves).
- systemd and Docker: the hardening keys are there, and every rsigma flag they pass exists.
- promtool, docker-compose and systemd-analyze run too when they are installed (skipped otherwise).
"""

from __future__ import annotations

import asyncio
import gc
import json
import re
import shlex
import shutil
import ssl
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import nats
import pytest
import trustme
import typer
import yaml

from rsigma.nats.names import parse_nats_url, stream_name
from tests.support import DaemonProcess, NatsServer, server_binary
from tests.support.nats_cluster import NODES, NatsCluster, add_replicated_stream

ROOT = Path(__file__).resolve().parents[1]
DEPLOY = ROOT / "deploy"

NATS_CONFIGS = sorted((DEPLOY / "nats").rglob("*.conf"))
TOKEN = "example-token-change-me"  # the values the example hashes stand for (deploy/nats/auth/README.md)
PASSWORDS = {"rsigma": "example-rsigma-password", "shipper": "example-shipper-password"}

# ---- helpers ---------------------------------------------------------------------------------------


def serve_options() -> set[str]:
    """Every option `rsigma serve` (and so `engine daemon`) accepts."""
    from rsigma.cli.app import app

    command = typer.main.get_command(app).commands["serve"]  # type: ignore[attr-defined]
    return {opt for p in command.params for opt in (*p.opts, *p.secondary_opts)}


def flags_in(args: list[str]) -> set[str]:
    return {a.split("=", 1)[0] for a in args if a.startswith("-")}


def exported_metrics() -> set[str]:
    """The sample names the daemon's /metrics can carry (prometheus_client's suffixes included)."""
    from rsigma.daemon.metrics import Metrics
    from workers.metrics import PoolCollector

    class OneWorker:
        def status(self) -> list[dict[str, Any]]:
            return [
                {
                    "index": 0,
                    "events": 0,
                    "busy_seconds": 0.0,
                    "in_flight": 0,
                    "restarts": 0,
                    "poisoned_events": 0,
                    "timeouts": 0,
                }
            ]

    metrics = Metrics()
    families = [*metrics.registry.collect(), *PoolCollector(OneWorker()).collect()]  # type: ignore[arg-type]
    suffixes = {"counter": ("_total",), "histogram": ("_bucket", "_sum", "_count"), "gauge": ("",)}
    names = {f.name + s for f in families for s in suffixes[f.type]}
    assert "rsigma_events_processed_total" in names and "rsigma_worker_busy_seconds_total" in names
    return names


PROMQL_WORDS = {"and", "or", "unless", "bool", "offset", "by", "without", "on", "ignoring", "inf", "nan"}


def promql_metrics(expr: str) -> set[str]:
    """The metric names a PromQL expression reads: identifiers that are not functions, keywords, label
    names (in braces or in by/without/on/ignoring lists), durations or Grafana variables."""
    text = re.sub(r'"(?:[^"\\]|\\.)*"', "", expr)
    text = re.sub(r"\{[^}]*\}", "", text)
    text = re.sub(r"\[[^\]]*\]", "", text)
    text = re.sub(r"\$\{?\w+\}?", "", text)
    text = re.sub(r"\b(?:by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)", "", text)
    names = set()
    for match in re.finditer(r"(?<![\w.])([A-Za-z_:][\w:]*)(\s*\()?", text):
        word, call = match.group(1), match.group(2)
        if call or word.lower() in PROMQL_WORDS:
            continue
        names.add(word)
    return names


def yaml_file(path: Path) -> Any:
    return yaml.safe_load(path.read_text())


def run_tool(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(args, capture_output=True, text=True, timeout=60, cwd=cwd)


@pytest.fixture(autouse=True)
def no_nats_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in (
        "NATS_CREDS",
        "NATS_TOKEN",
        "NATS_USER",
        "NATS_PASSWORD",
        "NATS_NKEY",
        "RSIGMA_CONSUMER_GROUP",
    ):
        monkeypatch.delenv(name, raising=False)


# ---- NATS configurations ----------------------------------------------------------------------------


class Pki:
    def __init__(self, directory: Path) -> None:
        directory.mkdir()
        ca = trustme.CA()
        self.paths = {name: directory / name for name in ("ca.pem", "server-cert.pem", "server-key.pem")}
        ca.cert_pem.write_to_path(str(self.paths["ca.pem"]))
        server = ca.issue_cert("127.0.0.1", "localhost")
        server.cert_chain_pems[0].write_to_path(str(self.paths["server-cert.pem"]))
        server.private_key_pem.write_to_path(str(self.paths["server-key.pem"]))
        client = ca.issue_cert("rsigma")
        self.client_cert, self.client_key = directory / "client-cert.pem", directory / "client-key.pem"
        client.cert_chain_pems[0].write_to_path(str(self.client_cert))
        client.private_key_pem.write_to_path(str(self.client_key))


def localized(text: str, tmp: Path, pki: Pki | None = None) -> str:
    """The configuration with its store directory and certificate files moved into `tmp`."""
    text = re.sub(r"store_dir:\s*\S+", f'store_dir: "{tmp / "store"}"', text)
    if pki is not None:
        for name, path in pki.paths.items():
            text = re.sub(rf'"/etc/nats/tls/{re.escape(name)}"', f'"{path}"', text)
    assert "/var/lib/nats" not in text and "/etc/nats" not in text, text
    return text


def nats_test(config: Path) -> subprocess.CompletedProcess[str]:
    return run_tool(server_binary(), "-c", str(config), "-t")


@pytest.mark.parametrize("conf", NATS_CONFIGS, ids=lambda p: str(p.relative_to(DEPLOY / "nats")))
def test_nats_config_passes_nats_server_t(conf, tmp_path):
    pki = Pki(tmp_path / "pki") if "tls" in conf.read_text() else None
    local = tmp_path / conf.name
    local.write_text(localized(conf.read_text(), tmp_path, pki))
    done = nats_test(local)
    assert done.returncode == 0 and "is valid" in done.stdout + done.stderr, done.stdout + done.stderr


def test_nats_server_t_catches_mistakes(tmp_path):
    """-t is worth running: an unknown key or a missing certificate fails it."""
    conf = (DEPLOY / "nats" / "auth" / "tls.conf").read_text()
    broken = tmp_path / "broken.conf"
    broken.write_text(localized(conf, tmp_path, Pki(tmp_path / "pki")) + "\njetstrem: {}\n")
    assert nats_test(broken).returncode != 0
    missing = tmp_path / "missing.conf"
    missing.write_text(re.sub(r"store_dir:\s*\S+", f'store_dir: "{tmp_path}"', conf))  # /etc/nats/tls/*
    assert nats_test(missing).returncode != 0


def test_cluster_forms_and_keeps_a_stream_on_three_nodes(tmp_path):
    assert sorted(n.stem for n in (DEPLOY / "nats" / "cluster").glob("nats-*.conf")) == list(NODES)
    with NatsCluster(tmp_path) as cluster:
        stream = add_replicated_stream(cluster.servers[0].url, "rsigma-events", ["events.>"])
        assert stream.config.num_replicas == 3
        assert stream.cluster is not None and stream.cluster.name == "rsigma-nats"
        members = {stream.cluster.leader, *(r.name for r in stream.cluster.replicas or [])}
        assert members == set(NODES)


@pytest.fixture
def auth_server(tmp_path: Path) -> Iterator[Any]:
    started: list[NatsServer] = []

    def start(name: str, pki: Pki | None = None) -> NatsServer:
        store = tmp_path / name
        store.mkdir()
        text = localized((DEPLOY / "nats" / "auth" / name).read_text(), store, pki)
        server = NatsServer(store, jetstream=False, config=text).start()
        started.append(server)
        return server

    yield start
    for server in started:
        server.stop()


async def account_ok(url: str, **options: Any) -> bool:
    try:
        nc = await nats.connect(
            url, allow_reconnect=False, max_reconnect_attempts=0, connect_timeout=2, **options
        )
    except Exception:
        return False
    try:
        await nc.jetstream().account_info()
        return True
    finally:
        await nc.close()


def refused(url: str, **options: Any) -> bool:
    """True if the server refuses the connection. nats-py leaves the socket of a refused connection to
    the garbage collector; collecting here keeps its ResourceWarning inside the test that caused it (which
    ignores it: the leak is the client library's, not what is tested)."""
    ok = asyncio.run(account_ok(url, **options))
    gc.collect()
    return not ok


IGNORE_CLIENT_LEAK = pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning")


@IGNORE_CLIENT_LEAK
def test_token_example_admits_the_documented_token(auth_server):
    server = auth_server("token.conf")
    assert asyncio.run(account_ok(server.url, token=TOKEN))
    assert refused(server.url, token="wrong")


def test_users_example_gives_rsigma_what_it_needs(auth_server, tmp_path):
    """rsigma, as the `rsigma` user with only the permissions users.conf grants, consumes, publishes
    detections and dead-letters; the `shipper` user publishes the events."""
    server = auth_server("users.conf")
    url = server.url
    env = {"NATS_USER": "rsigma", "NATS_PASSWORD": PASSWORDS["rsigma"]}
    args = ["-r", ROOT / "examples" / "rules", "--input", f"{url}/events.>", "--output", f"{url}/detections"]
    args += ["--dlq", f"{url}/rsigma.dlq"]
    with DaemonProcess(args, home=tmp_path, env=env) as daemon:
        daemon.start()
        events = (ROOT / "examples" / "events.ndjson").read_bytes().splitlines() + [b"{not json"]
        counts = asyncio.run(ship_and_count(url, events))
        assert counts == (13, 1, True), daemon.stderr()
        assert daemon.terminate() == 0, daemon.stderr()


async def ship_and_count(url: str, events: list[bytes]) -> tuple[int, int, bool]:
    """(detections published, dead letters, every event acked) once all is done, or after 20 s."""
    shipper = await nats.connect(url, user="shipper", password=PASSWORDS["shipper"])
    try:
        js = shipper.jetstream()
        for e in events:
            await js.publish("events.windows", e)
    finally:
        await shipper.close()
    nc = await nats.connect(url, user="rsigma", password=PASSWORDS["rsigma"])
    try:
        js = nc.jetstream()
        deadline = time.monotonic() + 20
        while True:
            detections = (await js.stream_info("rsigma-detections")).state.messages
            dead = (await js.stream_info("rsigma-rsigma-dlq")).state.messages
            consumer = await js.consumer_info("rsigma-events", "rsigma-daemon-events")
            acked = consumer.num_pending == 0 and consumer.num_ack_pending == 0
            if ((detections, dead) == (13, 1) and acked) or time.monotonic() > deadline:
                return detections, dead, acked
            await asyncio.sleep(0.1)
    finally:
        await nc.close()


@IGNORE_CLIENT_LEAK
def test_tls_example_requires_a_client_certificate(auth_server, tmp_path):
    pki = Pki(tmp_path / "pki")
    server = auth_server("tls.conf", pki)
    with_cert = ssl.create_default_context(cafile=str(pki.paths["ca.pem"]))
    with_cert.load_cert_chain(str(pki.client_cert), str(pki.client_key))
    without_cert = ssl.create_default_context(cafile=str(pki.paths["ca.pem"]))
    assert asyncio.run(account_ok(server.url, tls=with_cert))
    assert refused(server.url, tls=without_cert)


def test_the_readme_flags_of_the_tls_example_exist():
    header = (DEPLOY / "nats" / "auth" / "tls.conf").read_text()
    assert flags_in(re.findall(r"--[\w-]+", header)) <= serve_options()


# ---- compose, Prometheus, alerts, Grafana -----------------------------------------------------------


def compose() -> dict[str, Any]:
    return yaml_file(DEPLOY / "docker" / "compose.yml")


def serve_services(spec: dict[str, Any]) -> dict[str, list[str]]:
    """Services running the rsigma image, with their command as a list of arguments."""
    found = {}
    for name, service in spec["services"].items():
        build = service.get("build") or {}
        if build.get("dockerfile") == "deploy/docker/Dockerfile":
            command = service.get("command", [])
            found[name] = shlex.split(command) if isinstance(command, str) else list(command)
    return found


def option(args: list[str], flag: str) -> list[str]:
    values = []
    for i, a in enumerate(args):
        if a == flag and i + 1 < len(args):
            values.append(args[i + 1])
        elif a.startswith(flag + "="):
            values.append(a.split("=", 1)[1])
    return values


def test_compose_runs_two_serve_instances_in_one_consumer_group():
    spec = compose()
    serve = serve_services(spec)
    assert len(serve) == 2, serve
    assert "nats" in spec["services"] and "prometheus" in spec["services"]
    nats_command = " ".join(spec["services"]["nats"]["command"])
    assert "--jetstream" in nats_command or "-js" in nats_command
    groups = {name: option(args, "--consumer-group") for name, args in serve.items()}
    assert all(len(g) == 1 for g in groups.values()), groups
    assert len({g[0] for g in groups.values()}) == 1, f"one consumer group for both: {groups}"
    options = serve_options()
    for name, args in serve.items():
        assert flags_in(args) <= options, f"{name}: unknown flags {flags_in(args) - options}"
        assert option(args, "--input")[0].startswith("nats://nats:4222/")
        assert option(args, "--api-addr") == ["0.0.0.0:9090"]
        workers = int((option(args, "--workers") or ["1"])[0])
        shm = spec["services"][name].get("shm_size", "64m")
        assert int(str(shm).rstrip("m")) >= 64 * workers + 64, "64 MiB of /dev/shm per matcher, plus room"
    states = [
        next(v.split(":")[0] for v in spec["services"][name]["volumes"] if v.endswith(":/var/lib/rsigma"))
        for name in serve
    ]
    assert len(set(states)) == 2, "each daemon keeps its own state database"
    for service in spec["services"].values():  # bind mounts point at files of this repository
        for volume in service.get("volumes", []):
            source = volume.split(":")[0]
            if source.startswith("."):
                assert (DEPLOY / "docker" / source).resolve().exists(), source


def test_cluster_compose_runs_three_members_of_one_cluster_on_three_nats_nodes():
    spec = yaml_file(DEPLOY / "cluster" / "compose.yml")
    daemons = serve_services(spec)
    assert sorted(daemons) == ["rsigma-1", "rsigma-2", "rsigma-3"]
    options = serve_options()
    streams_script = (DEPLOY / "cluster" / "streams.sh").read_text()
    created = dict(re.findall(r"^add (\S+) --subjects '?([^'\s]+)'?", streams_script, re.MULTILINE))
    assert "--replicas 3" in streams_script
    for name, args in daemons.items():
        assert flags_in(args) <= options, f"{name}: unknown flags {flags_in(args) - options}"
        assert option(args, "--cluster") == ["prod"] and option(args, "--cluster-replicas") == ["3"]
        assert option(args, "--workers") == ["0"]
        node = name.replace("rsigma", "nats")
        for flag in ("--input", "--output", "--dlq"):
            (url,) = option(args, flag)
            target = parse_nats_url(url, flag)
            assert target.server == f"nats://{node}:4222", url
            assert created[stream_name(target.subject)] == target.subject, "streams.sh creates it, R3"
    assert len({option(args, "--cluster-member-id")[0] for args in daemons.values()}) == 3
    for node in NODES:
        service = spec["services"][node]
        version = re.match(r"nats:(\d+)\.(\d+)", service["image"])
        assert version and tuple(map(int, version.groups())) >= (2, 11), "per-message TTLs need 2.11"
        assert f"../nats/cluster/{node}.conf:/etc/nats/nats.conf:ro" in service["volumes"]
    for service in spec["services"].values():  # bind mounts point at files of this repository
        for volume in service.get("volumes", []):
            source = volume.split(":")[0]
            if source.startswith("."):
                assert (DEPLOY / "cluster" / source).resolve().exists(), source


def test_prometheus_scrapes_both_serve_instances():
    config = yaml_file(DEPLOY / "prometheus" / "prometheus.yml")
    targets = {t for job in config["scrape_configs"] for sc in job["static_configs"] for t in sc["targets"]}
    for name in serve_services(compose()):
        assert f"{name}:9090" in targets
    for rule_file in config["rule_files"]:
        assert (DEPLOY / "prometheus" / rule_file).exists()
    mounts = " ".join(compose()["services"]["prometheus"]["volumes"])
    assert "../prometheus/prometheus.yml:" in mounts and "../prometheus/alerts.yml:" in mounts


def alert_rules() -> list[dict[str, Any]]:
    return [
        rule for group in yaml_file(DEPLOY / "prometheus" / "alerts.yml")["groups"] for rule in group["rules"]
    ]


def test_alerts_query_only_exported_metrics():
    exported = exported_metrics()
    read = set()
    for rule in alert_rules():
        assert rule["labels"]["severity"] in ("warning", "critical") and rule["annotations"]["summary"]
        names = promql_metrics(rule["expr"])
        assert names, rule["expr"]
        unknown = names - exported - {"up"}  # `up` is Prometheus's own, per scrape target
        assert not unknown, f"{rule['alert']}: {unknown} are not exported"
        read |= names
    wanted = {
        "rsigma_dlq_events_total",  # dead-letter rate
        "rsigma_back_pressure_events_total",
        "rsigma_nats_reconnects_total",
        "rsigma_nats_consumer_pending",  # consumer lag
        "rsigma_events_processed_total",  # no events processed
        "rsigma_worker_restarts_total",
        "rsigma_reloads_failed_total",
    }
    assert wanted <= read, wanted - read


def test_promql_metric_extraction():
    assert promql_metrics('max by (job) (rate(a_total{x="b_c"}[5m])) > 0 and b > 1') == {"a_total", "b"}
    assert promql_metrics("histogram_quantile(0.99, sum by (le) (rate(h_bucket[$__rate_interval])))") == {
        "h_bucket"
    }


def test_grafana_dashboard_queries_exported_metrics():
    dashboard = json.loads((DEPLOY / "grafana" / "rsigma-dashboard.json").read_text())
    exported = exported_metrics()
    panels = [p for p in dashboard["panels"] if p["type"] != "row"]
    ids = [p["id"] for p in dashboard["panels"]]
    assert len(ids) == len(set(ids))
    read = set()
    for panel in panels:
        assert panel["targets"], panel["title"]
        for target in panel["targets"]:
            names = promql_metrics(target["expr"])
            assert names and not names - exported, f"{panel['title']}: {names - exported}"
            read |= names
    for variable in dashboard["templating"]["list"]:
        if variable["type"] == "query":
            metric = re.fullmatch(r"label_values\((\w+)[{,].*", variable["definition"])
            assert metric is not None and metric.group(1) in exported, variable["definition"]
    wanted = {
        "rsigma_events_processed_total",  # events/s
        "rsigma_detection_matches_by_rule_total",  # detections by rule
        "rsigma_dlq_events_total",
        "rsigma_input_queue_depth",
        "rsigma_back_pressure_events_total",
        "rsigma_nats_connected",
        "rsigma_nats_consumer_pending",
        "rsigma_worker_events_total",
        "rsigma_worker_busy_seconds_total",
    }
    assert wanted <= read, wanted - read


@pytest.mark.skipif(shutil.which("promtool") is None, reason="promtool not installed")
def test_promtool_checks_and_unit_tests():
    here = DEPLOY / "prometheus"
    for args in (("check", "config", "prometheus.yml"), ("check", "rules", "alerts.yml")):
        done = run_tool("promtool", *args, cwd=here)
        assert done.returncode == 0, done.stdout + done.stderr
    done = run_tool("promtool", "test", "rules", "alerts_test.yml", cwd=here)
    assert done.returncode == 0, done.stdout + done.stderr


@pytest.mark.skipif(shutil.which("docker-compose") is None, reason="docker-compose not installed")
def test_docker_compose_accepts_the_file():
    done = run_tool("docker-compose", "-f", str(DEPLOY / "docker" / "compose.yml"), "config", "-q")
    assert done.returncode == 0, done.stderr


# ---- systemd and Docker ---------------------------------------------------------------------------


def unit_file(path: Path) -> dict[str, dict[str, list[str]]]:
    """A systemd unit: section -> key -> values (a key may repeat), continuation lines joined."""
    sections: dict[str, dict[str, list[str]]] = {}
    current: dict[str, list[str]] = {}
    text = re.sub(r"\\\n\s*", " ", path.read_text())
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith(("#", ";")):
            continue
        if line.startswith("["):
            current = sections.setdefault(line.strip("[]"), {})
            continue
        key, _, value = line.partition("=")
        current.setdefault(key.strip(), []).append(value.strip())
    return sections


def test_systemd_unit_is_hardened():
    unit = unit_file(DEPLOY / "systemd" / "rsigma.service")
    service = {k: v[-1] for k, v in unit["Service"].items()}
    expected = {
        "User": "rsigma",
        "ProtectSystem": "strict",
        "StateDirectory": "rsigma",
        "EnvironmentFile": "/etc/rsigma/rsigma.env",
        "NoNewPrivileges": "yes",
        "PrivateTmp": "yes",
        "ProtectHome": "yes",
        "KillMode": "mixed",  # SIGTERM to the supervisor only: it stops its matchers itself
        # A NATS outage at boot must not wedge the unit: the daemon waits for the server (no
        # --nats-connect-timeout), says READY=1 when connected, and any exit is retried for ever.
        "Type": "notify",
        "NotifyAccess": "main",
        "TimeoutStartSec": "infinity",
        "Restart": "always",
        "LogsDirectory": "rsigma",
    }
    for key, value in expected.items():
        assert service.get(key) == value, key
    assert unit["Unit"]["StartLimitIntervalSec"] == ["0"]
    assert "StartLimitBurst" not in unit["Unit"]
    assert int(service["WatchdogSec"]) >= 30 and int(service["RestartSec"]) > 0
    assert "-HUP" in service["ExecReload"] and "$MAINPID" in service["ExecReload"]
    assert service["CapabilityBoundingSet"] == ""
    args = shlex.split(service["ExecStart"])
    assert args[1] == "serve"
    assert flags_in(args) <= serve_options(), flags_in(args) - serve_options()
    assert option(args, "--state-db")[0].startswith("/var/lib/rsigma/")  # inside StateDirectory
    assert "--nats-connect-timeout" not in args
    assert unit["Install"]["WantedBy"] == ["multi-user.target"]


def test_systemd_env_example_names_only_known_variables():
    text = (DEPLOY / "systemd" / "rsigma.env.example").read_text()
    names = set(re.findall(r"^#?([A-Z][A-Z0-9_]*)=", text, re.MULTILINE))
    known = {
        "NATS_CREDS",
        "NATS_TOKEN",
        "NATS_USER",
        "NATS_PASSWORD",
        "NATS_NKEY",
        "RSIGMA_CONSUMER_GROUP",
        "RSIGMA_LOG",
        "RSIGMA_CLUSTER",
        "RSIGMA_CLUSTER_MEMBER_ID",
        "RSIGMA_CLUSTER_REPLICAS",
    }
    unit_text = (DEPLOY / "systemd" / "rsigma.service").read_text()
    used_by_unit = {n for n in names if f"${n}" in unit_text or f"${{{n}}}" in unit_text}
    assert used_by_unit == {"RSIGMA_NATS_URL", "RSIGMA_EXTRA_ARGS"}
    assert names == known | used_by_unit
    extra = re.search(r"^RSIGMA_EXTRA_ARGS=(.*)$", text, re.MULTILINE)
    assert extra is not None and flags_in(shlex.split(extra.group(1))) <= serve_options()


@pytest.mark.skipif(shutil.which("systemd-analyze") is None, reason="systemd-analyze not installed")
def test_systemd_analyze_accepts_the_unit(tmp_path):
    unit = tmp_path / "rsigma.service"  # verify wants ExecStart's program to exist
    unit.write_text(
        (DEPLOY / "systemd" / "rsigma.service").read_text().replace("/opt/rsigma/bin/rsigma", sys.executable)
    )
    done = run_tool("systemd-analyze", "verify", str(unit))
    assert done.returncode == 0 and not done.stderr.strip(), done.stderr
    done = run_tool("systemd-analyze", "security", "--offline=true", str(unit))
    exposure = re.search(r"Overall exposure level for \S+: ([\d.]+)", done.stdout)
    assert exposure is not None, done.stdout + done.stderr
    assert float(exposure.group(1)) <= 2.0, done.stdout


def test_dockerfile():
    text = (DEPLOY / "docker" / "Dockerfile").read_text()
    lines = re.sub(r"\\\n\s*", " ", text).splitlines()
    instructions = [line.split(None, 1) for line in lines if line.strip() and not line.startswith("#")]
    froms = [rest for op, rest in instructions if op == "FROM"]
    assert froms and all(f.split()[0] == "python:3.11-slim" for f in froms)
    users = [rest for op, rest in instructions if op == "USER"]
    assert users and users[-1].split(":")[0] not in ("root", "0")
    (health,) = [rest for op, rest in instructions if op == "HEALTHCHECK"]
    assert "/healthz" in health
    (entrypoint,) = [json.loads(rest) for op, rest in instructions if op == "ENTRYPOINT"]
    assert entrypoint == ["rsigma", "serve"]
    (cmd,) = [json.loads(rest) for op, rest in instructions if op == "CMD"]
    assert flags_in(cmd) <= serve_options()
    assert option(cmd, "--api-addr") == ["0.0.0.0:9090"] and ":9090/healthz" in health
    ignore = (DEPLOY / "docker" / "Dockerfile.dockerignore").read_text().splitlines()
    for op, rest in instructions:
        if op == "COPY" and not rest.startswith("--from"):
            for source in rest.split()[:-1]:
                assert (ROOT / source).exists(), source
                assert f"!{source.rstrip('/')}" in {line.rstrip("/") for line in ignore}, source
