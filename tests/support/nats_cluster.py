"""The three-node JetStream cluster of `deploy/nats/cluster`, on loopback: each node's configuration
file as shipped, with its store, its client, route and monitoring ports moved to free local ones.
Used by tests/test_deploy.py (the configuration forms a cluster) and tests/cluster (daemons of a
`--cluster` outliving a stopped NATS server)."""

from __future__ import annotations

import asyncio
import re
import time
from pathlib import Path
from typing import Any

import nats
from nats.js.api import StorageType, StreamConfig

from tests.support.nats_server import NatsServer, free_port

CLUSTER_CONFIGS = Path(__file__).resolve().parents[2] / "deploy" / "nats" / "cluster"
NODES = ("nats-1", "nats-2", "nats-3")


def local_store(text: str, store: Path) -> str:
    """The configuration with its JetStream store moved to `store`."""
    text = re.sub(r"store_dir:\s*\S+", f'store_dir: "{store}"', text)
    assert "/var/lib/nats" not in text, text
    return text


def node_config(node: str, store: Path, route_ports: dict[str, int]) -> str:
    """`deploy/nats/cluster/<node>.conf` with its routes and listeners on loopback ports."""
    text = local_store((CLUSTER_CONFIGS / f"{node}.conf").read_text(), store)
    assert text.count("nats-route://") == len(NODES), text
    for name, port in route_ports.items():
        text = text.replace(f"nats-route://{name}:6222", f"nats-route://127.0.0.1:{port}")
    text = text.replace("listen: 0.0.0.0:6222", f"listen: 127.0.0.1:{route_ports[node]}")
    return text.replace("http: 0.0.0.0:8222", f"http: 127.0.0.1:{free_port()}")


class NatsCluster:
    """Three nats-servers routed to each other; `servers[i]` can be stopped and started again."""

    def __init__(self, directory: Path) -> None:
        route_ports = {node: free_port() for node in NODES}
        self.servers = []
        for node in NODES:
            store = directory / node
            store.mkdir(parents=True)
            # The client address and port come from the command line (NatsServer); the rest is the file.
            config = node_config(node, store / "jetstream", route_ports)
            self.servers.append(NatsServer(store, jetstream=False, config=config))

    def start(self) -> NatsCluster:
        for server in self.servers:
            server.start()
        return self

    def stop(self) -> None:
        for server in self.servers:
            server.stop()

    def __enter__(self) -> NatsCluster:
        return self.start()

    def __exit__(self, *_: object) -> None:
        self.stop()


def add_replicated_stream(url: str, name: str, subjects: list[str], **options: Any) -> Any:
    """Create a stream with 3 replicas once the cluster has a JetStream leader, and wait until both
    followers report in; its info."""

    async def go() -> Any:
        nc = await nats.connect(url)
        try:
            js = nc.jetstream()
            config = StreamConfig(
                name=name, subjects=subjects, num_replicas=3, storage=StorageType.FILE, **options
            )
            deadline = time.monotonic() + 30
            while True:
                try:
                    await js.add_stream(config)
                    break
                except (nats.js.errors.Error, nats.errors.TimeoutError):
                    if time.monotonic() > deadline:
                        raise
                    await asyncio.sleep(0.25)
            for _ in range(120):
                info = await js.stream_info(name)
                if info.cluster and info.cluster.leader and len(info.cluster.replicas or []) == 2:
                    break
                await asyncio.sleep(0.25)
            return info
        finally:
            await nc.close()

    return asyncio.run(go())
