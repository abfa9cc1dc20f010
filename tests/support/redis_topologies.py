"""Real Redis topologies for tests, on loopback: one TLS node with an ACL user, a 6-node
Redis Cluster (3 primaries, 3 replicas) and a Sentinel group (1 primary, 1 replica, 3
sentinels). Every process is started by these helpers and stopped by their `stop()`.

Failure detection is kept short (cluster-node-timeout, down-after-milliseconds) so that a
failover is over in a few seconds and the tests stay bounded.
"""

from __future__ import annotations

import contextlib
import shutil
import signal
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

import redis
import trustme
from local_stack.processes import free_port, wait_until
from redis.cluster import ClusterNode, RedisCluster

CLUSTER_NODE_TIMEOUT_MS = 1000
SENTINEL_DOWN_AFTER_MS = 1000
SENTINEL_SERVICE = "mps-primary"


def executable(name: str) -> str:
    found = shutil.which(name)
    if found is None:
        raise RuntimeError(f"{name} is not installed: run `make test`, which installs Redis")
    return found


@dataclass
class Node:
    """One redis-server (or `redis-server --sentinel`) process."""

    directory: Path
    extra: list[str] = field(default_factory=list)
    port: int = field(default_factory=free_port)
    sentinel: bool = False
    process: subprocess.Popen[bytes] | None = None
    password: str | None = None  # of the `default` user, for the test's own clients

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    def start(self) -> Node:
        self.directory.mkdir(parents=True, exist_ok=True)
        if self.sentinel:
            # A sentinel rewrites its configuration file, so it needs one of its own.
            config = self.directory / "sentinel.conf"
            config.write_text("\n".join(self.extra) + "\n")
            command = [executable("redis-server"), str(config), "--sentinel"]
            command += ["--bind", "127.0.0.1", "--port", str(self.port)]
            command += ["--dir", str(self.directory)]
        else:
            command = [executable("redis-server"), "--bind", "127.0.0.1", "--port", str(self.port)]
            command += ["--save", "", "--appendonly", "no", "--dir", str(self.directory)]
            command += self.extra
        log = (self.directory / "redis.log").open("ab")
        self.process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT)
        log.close()
        wait_until(self.ping, 10, f"redis on port {self.port}", self.log)
        return self

    def log(self) -> str:
        path = self.directory / "redis.log"
        return path.read_text(errors="replace")[-3000:] if path.exists() else ""

    def client(self, **options: object) -> redis.Redis:
        return redis.Redis(
            host="127.0.0.1",
            port=self.port,
            password=self.password,
            decode_responses=True,
            socket_timeout=2,
            **options,  # type: ignore[arg-type]
        )

    def ping(self) -> bool:
        if self.process is not None and self.process.poll() is not None:
            raise AssertionError(f"redis on port {self.port} exited\n{self.log()}")
        try:
            with contextlib.closing(self.client()) as client:
                return bool(client.ping())
        except redis.RedisError:
            return False

    @property
    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def kill(self) -> None:
        """SIGKILL: no chance to close connections or hand over."""
        if self.running:
            assert self.process is not None
            self.process.kill()
            self.process.wait(10)

    def stop(self) -> None:
        if self.running:
            assert self.process is not None
            self.process.send_signal(signal.SIGCONT)
            self.process.terminate()
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(5)


# --- one node over TLS, with an ACL user -----------------------------------------------

# What the service sends: its commands and those inside its Lua scripts, and what redis-py
# sends when it connects (AUTH, HELLO; CLIENT SETINFO, which
# it may be refused) or loads a script.
SERVICE_COMMANDS = (
    "+get +set +exists +incr +decr +expire +pexpire +del +scan +ping +rpush +brpoplpush "
    "+evalsha +eval +script|load +auth +hello +select"
)


@dataclass
class TlsRedis:
    """redis-server with TLS only (a test CA, client certificates required) and two users:
    `admin` (everything) and `mps` (only the `mps:*` keys and the service's commands)."""

    directory: Path
    user: str = "mps"
    password: str = "mps-s3cret-Pa55word"
    admin_password: str = "admin-pa55"
    node: Node | None = None

    def start(self) -> TlsRedis:
        self.directory.mkdir(parents=True, exist_ok=True)
        ca = trustme.CA()
        server = ca.issue_cert("127.0.0.1", "localhost")
        client = ca.issue_cert("meeting-provisioning")
        ca.cert_pem.write_to_path(str(self.ca_bundle))
        server.private_key_pem.write_to_path(str(self.directory / "server.key"))
        server.cert_chain_pems[0].write_to_path(str(self.directory / "server.crt"))
        client.private_key_pem.write_to_path(str(self.client_key))
        client.cert_chain_pems[0].write_to_path(str(self.client_cert))
        port = free_port()
        acl = self.directory / "users.acl"
        acl.write_text(
            "user default off\n"
            f"user admin on >{self.admin_password} ~* &* +@all\n"
            f"user {self.user} on >{self.password} resetkeys ~mps:* -@all {SERVICE_COMMANDS}\n"
        )
        self.node = Node(
            self.directory / "data",
            extra=[
                "--port",
                "0",
                "--tls-port",
                str(port),
                "--tls-cert-file",
                str(self.directory / "server.crt"),
                "--tls-key-file",
                str(self.directory / "server.key"),
                "--tls-ca-cert-file",
                str(self.ca_bundle),
                "--tls-auth-clients",
                "yes",
                "--aclfile",
                str(acl),
            ],  # fmt: skip
            port=port,
        )
        self.node.client = self.admin  # type: ignore[method-assign]
        self.node.start()
        return self

    @property
    def ca_bundle(self) -> Path:
        return self.directory / "ca.pem"

    @property
    def client_cert(self) -> Path:
        return self.directory / "client.crt"

    @property
    def client_key(self) -> Path:
        return self.directory / "client.key"

    @property
    def port(self) -> int:
        assert self.node is not None
        return self.node.port

    def url(self, password: str | None = None) -> str:
        return f"rediss://{self.user}:{password or self.password}@127.0.0.1:{self.port}/0"

    def admin(self, **options: object) -> redis.Redis:
        return redis.Redis(
            host="127.0.0.1",
            port=self.port,
            username="admin",
            password=self.admin_password,
            ssl=True,
            ssl_ca_certs=str(self.ca_bundle),
            ssl_certfile=str(self.client_cert),
            ssl_keyfile=str(self.client_key),
            decode_responses=True,
            socket_timeout=2,
        )

    def stop(self) -> None:
        if self.node is not None:
            self.node.stop()


# --- Redis Cluster -----------------------------------------------------------------------


@dataclass
class Cluster:
    """Six cluster-enabled redis-servers joined by `redis-cli --cluster create` into 3
    primaries with one replica each."""

    directory: Path
    nodes: list[Node] = field(default_factory=list)
    replicas: int = 1

    def start(self, size: int = 6, replicas: int = 1) -> Cluster:
        """`size` nodes, `replicas` of each primary among them."""
        self.replicas = replicas
        for index in range(size):
            bus = free_port()
            node = Node(
                self.directory / f"node-{index}",
                extra=[
                    "--cluster-enabled",
                    "yes",
                    "--cluster-config-file",
                    "nodes.conf",
                    "--cluster-node-timeout",
                    str(CLUSTER_NODE_TIMEOUT_MS),
                    # The bus port is chosen, not port + 10000 (which may be taken or > 65535).
                    "--cluster-port",
                    str(bus),
                    # A replica may take over however long it was cut off from its primary.
                    "--cluster-replica-validity-factor",
                    "0",
                ],  # fmt: skip
            )
            self.nodes.append(node)
        try:
            for node in self.nodes:
                node.start()
            create = subprocess.run(
                [executable("redis-cli"), "--cluster", "create"]
                + [node.address for node in self.nodes]
                + ["--cluster-replicas", str(replicas), "--cluster-yes"],
                capture_output=True,
                timeout=60,
                text=True,
            )
            assert create.returncode == 0, create.stdout + create.stderr
            wait_until(self.healthy, 30, "the cluster to be ok on every node")
            # Until then a replica holds nothing: a failover would lose everything.
            wait_until(self.replicas_synced, 30, "every replica to finish its first sync")
        except BaseException:
            self.stop()
            raise
        return self

    @property
    def url(self) -> str:
        seeds = ",".join(node.address for node in self.nodes[:3])
        return f"redis+cluster://{seeds}"

    def client(self) -> RedisCluster:
        live = [node for node in self.nodes if node.running]
        return RedisCluster(
            startup_nodes=[ClusterNode("127.0.0.1", node.port) for node in live],
            decode_responses=True,
            socket_timeout=2,
        )

    def healthy(self) -> bool:
        """Every running node says cluster_state ok and agrees on 3 primaries with a
        replica each."""
        for node in self.nodes:
            if not node.running:
                continue
            try:
                with contextlib.closing(node.client()) as client:
                    if client.cluster("info")["cluster_state"] != "ok":
                        return False
            except redis.RedisError:
                return False
        return True

    def replicas_synced(self) -> bool:
        synced = 0
        for node in self.nodes:
            with contextlib.closing(node.client()) as client:
                replication = client.info("replication")
            if replication["role"] == "slave":
                if replication.get("master_link_status") != "up":
                    return False
                synced += 1
        return synced == len(self.nodes) * self.replicas // (self.replicas + 1)

    def node_at(self, port: int) -> Node:
        return next(node for node in self.nodes if node.port == port)

    def primary_of(self, slot: int) -> Node:
        """The node serving `slot` now, as a running node sees the cluster."""
        for node in self.nodes:
            if not node.running:
                continue
            try:
                with contextlib.closing(node.client()) as client:
                    for start, end, primary, *_ in client.execute_command("CLUSTER", "SLOTS"):
                        if start <= slot <= end:
                            return self.node_at(int(primary[1]))
            except redis.RedisError:
                continue
        raise AssertionError(f"no running node knows who serves slot {slot}")

    def owners(self) -> list[tuple[int, int, int]]:
        """(first slot, last slot, port of the primary) as a running node sees it now."""
        for node in self.nodes:
            if node.running:
                with contextlib.closing(node.client()) as client:
                    found = client.execute_command("CLUSTER", "SLOTS")
                return [(start, end, int(primary[1])) for start, end, primary, *_ in found]
        raise AssertionError("no node is running")

    def node_id(self, node: Node) -> str:
        with contextlib.closing(node.client()) as client:
            return str(client.execute_command("CLUSTER", "MYID"))

    def migrate_slot(self, slot: int, source: Node, target: Node) -> int:
        """Move one slot and its keys from `source` to `target` as `redis-cli --cluster
        reshard` does (IMPORTING/MIGRATING, MIGRATE in batches, then SETSLOT NODE on every
        primary); clients meanwhile get ASK for keys already moved. The keys moved."""
        source_id, target_id = self.node_id(source), self.node_id(target)
        moved = 0
        with contextlib.closing(source.client()) as src, contextlib.closing(target.client()) as dst:
            dst.execute_command("CLUSTER", "SETSLOT", slot, "IMPORTING", source_id)
            src.execute_command("CLUSTER", "SETSLOT", slot, "MIGRATING", target_id)
            while keys := src.execute_command("CLUSTER", "GETKEYSINSLOT", slot, 100):
                src.execute_command("MIGRATE", "127.0.0.1", target.port, "", 0, 5000, "KEYS", *keys)
                moved += len(keys)
            dst.execute_command("CLUSTER", "SETSLOT", slot, "NODE", target_id)
            src.execute_command("CLUSTER", "SETSLOT", slot, "NODE", target_id)
        for node in self.nodes:
            if node.running and node not in (source, target):
                with contextlib.closing(node.client()) as client:
                    if client.execute_command("ROLE")[0] == "master":
                        client.execute_command("CLUSTER", "SETSLOT", slot, "NODE", target_id)
        return moved

    def replica_of(self, primary: Node) -> Node:
        with contextlib.closing(primary.client()) as client:
            node_id = client.execute_command("CLUSTER", "MYID")
            lines = client.execute_command("CLUSTER", "NODES").splitlines()
        for line in lines:
            fields = line.split()
            if fields[3] == node_id and "slave" in fields[2]:
                return self.node_at(int(fields[1].split("@")[0].rsplit(":", 1)[1]))
        raise AssertionError(f"{primary.address} has no replica")

    def stop(self) -> None:
        for node in self.nodes:
            node.stop()


# --- Sentinel ----------------------------------------------------------------------------


@dataclass
class SentinelGroup:
    """A primary, its replica, and three sentinels that fail over after a second."""

    directory: Path
    primary: Node | None = None
    replica: Node | None = None
    sentinels: list[Node] = field(default_factory=list)

    def start(self) -> SentinelGroup:
        try:
            self.primary = Node(
                self.directory / "primary", extra=["--repl-diskless-sync-delay", "0"]
            ).start()
            self.replica = Node(
                self.directory / "replica",
                extra=["--replicaof", "127.0.0.1", str(self.primary.port)],
            ).start()
            for index in range(3):
                self.sentinels.append(
                    Node(
                        self.directory / f"sentinel-{index}",
                        sentinel=True,
                        extra=[
                            f"sentinel monitor {SENTINEL_SERVICE} 127.0.0.1 {self.primary.port} 2",
                            f"sentinel down-after-milliseconds {SENTINEL_SERVICE} "
                            f"{SENTINEL_DOWN_AFTER_MS}",
                            f"sentinel failover-timeout {SENTINEL_SERVICE} 5000",
                            f"sentinel parallel-syncs {SENTINEL_SERVICE} 1",
                        ],
                    ).start()
                )
            wait_until(self.replicating, 20, "the replica to sync and sentinels to see it")
        except BaseException:
            self.stop()
            raise
        return self

    @property
    def url(self) -> str:
        hosts = ",".join(node.address for node in self.sentinels)
        return f"redis+sentinel://{hosts}/{SENTINEL_SERVICE}/0"

    def replicating(self) -> bool:
        assert self.replica is not None
        with contextlib.closing(self.replica.client()) as client:
            if client.info("replication").get("master_link_status") != "up":
                return False
        for sentinel in self.sentinels:
            with contextlib.closing(sentinel.client()) as client:
                found = client.execute_command("SENTINEL", "REPLICAS", SENTINEL_SERVICE)
                if not found:
                    return False
        return True

    def current_primary_port(self) -> int | None:
        for sentinel in self.sentinels:
            try:
                with contextlib.closing(sentinel.client()) as client:
                    found = client.execute_command(
                        "SENTINEL", "GET-MASTER-ADDR-BY-NAME", SENTINEL_SERVICE
                    )
                    return int(found[1])
            except redis.RedisError:
                continue
        return None

    def stop(self) -> None:
        for node in [*self.sentinels, self.replica, self.primary]:
            if node is not None:
                node.stop()


def until(check, timeout: float, step: float = 0.05) -> float | None:
    """Seconds until `check()` is true, or None after `timeout`."""
    started = time.monotonic()
    while time.monotonic() - started < timeout:
        if check():
            return time.monotonic() - started
        time.sleep(step)
    return None
