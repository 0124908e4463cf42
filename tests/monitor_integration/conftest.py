"""Real parts for the monitor integration tests.

* ``Sink``: an HTTP server on 127.0.0.1 recording every POST (webhook and Slack receivers);
  it can be started on a port chosen in advance, so a test can point the daemon at a receiver
  that is down and bring it up later.
* ``Daemon``: ``ekm monitor --daemon`` as a subprocess, stderr captured to a file, with a real
  ``$NOTIFY_SOCKET`` (an AF_UNIX datagram socket) recording the sd_notify protocol.
* ``phome``: a passphrase-protected home (Argon2id at the schema minimum, one AES key).
* ``wait_for``: poll with a deadline; a deadline is a bound on waiting, never a speed assert.
"""

from __future__ import annotations

import base64
import json
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import clean_environ, copy_home

PASSPHRASE = "correct horse battery staple"
WEBHOOK_SECRET = "0123456789abcdef0123456789abcdef"
DEADLINE = 30.0  # seconds a test waits for something that should take well under one

PASS_CONFIG = """\
[master_key]
source = "passphrase"
argon2_memory_kib = 19456
argon2_iterations = 2
argon2_parallelism = 1

[monitor]
burst_threshold = 3
burst_window = "10m"

[keys.db]
type = "aes-256-gcm"
usage = "encryption"
"""


def wait_for(predicate: Callable[[], Any], what: str, timeout: float = DEADLINE) -> Any:
    """Poll ``predicate`` until it returns something truthy; fail naming ``what``."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            pytest.fail(f"gave up waiting for {what}")
        time.sleep(0.05)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class Post:
    path: str
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)


@dataclass
class Sink:
    """An HTTP receiver on 127.0.0.1; ``start()`` may be called after the daemon started."""

    port: int
    path: str = "/hook/T0KEN"
    posts: list[Post] = field(default_factory=list)
    _server: Any = None
    _thread: threading.Thread | None = None
    _lock: threading.Lock = field(default_factory=threading.Lock)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}{self.path}"

    def start(self) -> Sink:
        sink = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                with sink._lock:
                    sink.posts.append(Post(self.path, dict(self.headers), body))
                self.send_response(200)
                self.send_header("Content-Length", "2")
                self.end_headers()
                self.wfile.write(b"ok")

            def log_message(self, *args: object) -> None:
                pass

        server = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        server.daemon_threads = True
        self._server = server
        self._thread = threading.Thread(
            target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def snapshot(self) -> list[Post]:
        with self._lock:
            return list(self.posts)

    def webhook_events(self) -> list[dict[str, Any]]:
        return [p.json()["event"] for p in self.snapshot()]

    def slack_headers(self) -> list[str]:
        return [p.json()["blocks"][0]["text"]["text"] for p in self.snapshot()]


@pytest.fixture
def sinks() -> Iterator[Callable[..., Sink]]:
    made: list[Sink] = []

    def make(*, start: bool = True, path: str = "/hook/T0KEN") -> Sink:
        sink = Sink(free_port(), path=path)
        made.append(sink)
        return sink.start() if start else sink

    yield make
    for s in made:
        s.stop()


class NotifySocket:
    """A real ``$NOTIFY_SOCKET``: records the datagrams the daemon sends."""

    def __init__(self) -> None:
        # AF_UNIX paths are limited to 108 bytes: pytest's tmp_path can be longer.
        self.dir = tempfile.mkdtemp(prefix="ekm-sd-", dir="/tmp")
        self.path = os.path.join(self.dir, "notify")
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(self.path)
        self.sock.settimeout(0.1)
        self.messages: list[str] = []
        self._lock = threading.Lock()
        self._closed = False
        # Read continuously, as systemd does: the socket's queue holds only a few datagrams.
        self._thread = threading.Thread(target=self._read, daemon=True)
        self._thread.start()

    def _read(self) -> None:
        while not self._closed:
            try:
                data = self.sock.recv(4096)
            except TimeoutError:
                continue
            except OSError:
                return
            with self._lock:
                self.messages.append(data.decode())

    def poll(self) -> list[str]:
        with self._lock:
            return list(self.messages)

    def has(self, text: str) -> bool:
        return any(text in m.split("\n") for m in self.poll())

    def close(self) -> None:
        self._closed = True
        self._thread.join(2)
        self.sock.close()
        shutil.rmtree(self.dir, ignore_errors=True)


@dataclass
class Daemon:
    """A running ``ekm monitor --daemon``."""

    proc: subprocess.Popen[bytes]
    stderr_path: Path
    notify: NotifySocket

    def stderr(self) -> str:
        return self.stderr_path.read_text(errors="replace")

    def metrics_url(self) -> str:
        import re

        m = wait_for(
            lambda: re.search(r"serving metrics on (http://\S+/metrics)", self.stderr()),
            "the metrics address on stderr",
        )
        return m.group(1)

    def ready(self) -> None:
        wait_for(lambda: self.notify.has("READY=1") or self.proc.poll() is not None, "READY=1")
        assert self.proc.poll() is None, f"daemon exited early: {self.stderr()}"

    def signal(self, sig: int) -> None:
        self.proc.send_signal(sig)

    def stop(self) -> int:
        """SIGTERM and wait; the exit code."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        return self.proc.wait(DEADLINE)


@pytest.fixture
def start_daemon(tmp_path: Path) -> Iterator[Callable[..., Daemon]]:
    started: list[Daemon] = []

    def start(home: Path, *args: str, env: dict[str, str] | None = None) -> Daemon:
        notify = NotifySocket()
        environ = clean_environ(EKM_HOME=str(home), NOTIFY_SOCKET=notify.path)
        environ.update(env or {})
        err = tmp_path / f"daemon{len(started)}.stderr"
        exe = shutil.which("ekm")
        assert exe, "the ekm console script is not installed"
        with open(err, "wb") as fh:
            proc = subprocess.Popen(
                [exe, "monitor", "--daemon", *args],
                env=environ,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                stderr=fh,
            )
        daemon = Daemon(proc, err, notify)
        started.append(daemon)
        return daemon

    yield start
    for d in started:
        if d.proc.poll() is None:  # still running after the test: dump its stacks (SIGUSR1)
            d.proc.send_signal(signal.SIGUSR1)
            time.sleep(0.5)
        print(f"--- daemon stderr ---\n{d.stderr()}")  # shown by pytest when a test fails
        if d.proc.poll() is None:
            d.proc.kill()
            d.proc.wait(10)
        d.notify.close()


def run_ekm(home: Path, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    """``ekm ARGS`` against ``home`` (used while a daemon runs; script_runner is for the CLI
    tests proper)."""
    return subprocess.run(
        ["ekm", *args],
        env=clean_environ(EKM_HOME=str(home), **env),
        capture_output=True,
        text=True,
        stdin=subprocess.DEVNULL,
        check=False,
        timeout=120,
    )


@pytest.fixture(scope="session")
def pass_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    home = tmp_path_factory.mktemp("monpass") / "home"
    home.mkdir(mode=0o700)
    (home / "ekm.toml").write_text(PASS_CONFIG)
    (home / "ekm.toml").chmod(0o600)
    res = run_ekm(home, "deploy", "--master-key", "passphrase", EKM_PASSPHRASE=PASSPHRASE)
    assert res.returncode == 0, res.stderr
    return home


@pytest.fixture
def phome(pass_template: Path, tmp_path: Path) -> Path:
    """A passphrase home (the passphrase is PASSPHRASE)."""
    return copy_home(pass_template, tmp_path / "phome")


def secrets_of(home: Path, passphrase: str | None = None) -> list[bytes]:
    """Every key version's material of ``home`` in the encodings a leak would take:
    raw, hex, base64 and base64url; plus the passphrase and the master key file."""
    from ekm.manager import KeyManager

    mgr = KeyManager(home, env={"EKM_PASSPHRASE": passphrase} if passphrase else {})
    mgr.unlock()
    out: list[bytes] = []
    for key in mgr.list_keys():
        for v in key.versions:
            if not mgr.keystore.has_material(key.name, v.version):
                continue
            raw = mgr.material(key.name, v.version)
            out += [
                raw,
                raw.hex().encode(),
                base64.b64encode(raw),
                base64.urlsafe_b64encode(raw).rstrip(b"="),
            ]
    master = home / "master.key"
    if master.exists():
        data = master.read_bytes()
        out += [data, data.hex().encode(), base64.b64encode(data)]
    if passphrase:
        out.append(passphrase.encode())
    # A short secret prefix is too likely to appear by chance; material is >= 16 bytes.
    return [s for s in out if len(s) >= 16]


def assert_no_secret(payloads: list[bytes], secrets: list[bytes]) -> None:
    for body in payloads:
        for secret in secrets:
            assert secret not in body, "a payload contains key material or a passphrase"
