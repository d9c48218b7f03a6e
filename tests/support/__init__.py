"""What the tests, the benchmarks and the demo share: one way to start the daemon, one nats-server,
one `wait_until`, one metrics parser.

    daemon.py       DaemonProcess (one `rsigma engine daemon` / `rsigma serve` subprocess), Daemons (the
                    ones a test started, closed together), http(), Response, ndjson(), read_json_lines()
    nats_server.py  NatsServer (a throwaway JetStream server), free_port(), server_binary()
    nats_cluster.py NatsCluster (deploy/nats/cluster on loopback), add_replicated_stream()
    nats_client.py  small synchronous JetStream helpers (publish, read a stream, consumer backlog)
    nats_auth.py    an operator-mode setup with .creds files (Operator), a throwaway PKI (make_pki)
    waiting.py      wait_until(predicate, what, timeout), WaitTimeout
    metrics.py      parse_metrics(text) (prometheus_client's parser), sample()
    processes.py    /proc: process trees, CPU, memory, the processes carrying a marker
    faults.py       the fault-injection scenarios (tests/faults, benchmarks/faults.py)
    sharding.py     the correlation rules and event specs of the sharding tests
    state_db.py     runs of the brute-force rules against one --state-db, and damaging its pages
    ocsf.py         detection_finding_problems(): a finding checked against OCSF's required attributes
    match_dumps.py  compare_dumps(): two engines' matches event by event (benchmarks/vs_rsigma.py)
    systemd.py      NotifySocket: a real unix datagram socket standing in for systemd's NOTIFY_SOCKET

Importing: pytest puts the repository root on sys.path (`pythonpath` in pyproject.toml), so tests say
`from tests.support import ...`. A script under benchmarks/ or examples/ puts the root there itself,
with one line before its imports:

    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the repository root: tests.support

No test module imports another test module or a conftest (tests/test_layout.py checks).
"""

from tests.support.daemon import DaemonProcess, Daemons, Response, http, ndjson, read_json_lines, read_lines
from tests.support.metrics import Samples, parse_metrics, sample
from tests.support.nats_server import NatsServer, free_port, server_binary
from tests.support.waiting import WAIT_TIMEOUT, WaitTimeout, wait_until

__all__ = [
    "WAIT_TIMEOUT",
    "DaemonProcess",
    "Daemons",
    "NatsServer",
    "Response",
    "Samples",
    "WaitTimeout",
    "free_port",
    "http",
    "ndjson",
    "parse_metrics",
    "read_json_lines",
    "read_lines",
    "sample",
    "server_binary",
    "wait_until",
]
