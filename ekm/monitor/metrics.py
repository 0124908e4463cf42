"""Prometheus metrics: render a :class:`MetricsSnapshot`, write a textfile, serve ``/metrics``.

Each render builds a private ``CollectorRegistry`` from an immutable snapshot: nothing is
registered in prometheus_client's global default registry, so two monitors in one process (or
the test suite) never collide, and a scrape always sees one consistent pass, never half of one.

Metric names follow the Prometheus conventions that ``promtool check metrics`` enforces: base
units (seconds), ``_total`` for counters, ``_timestamp_seconds`` for instants. The per-version
usage count is exported as the counter ``ekm_key_usage_total`` rather than
``ekm_key_usage_count``: usage only grows, and promtool rejects a ``_count`` suffix on anything
but a histogram or summary.
"""

from __future__ import annotations

import contextlib
import os
import threading
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from ekm.crypto.keytypes import SecurityLevel
from ekm.errors import NotFoundError, UsageError

TEXTFILE_MODE = 0o644  # node_exporter runs as its own user; the metrics hold no secret
CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"


@dataclass(frozen=True)
class KeyMetrics:
    """What the metrics say about one key (names and types only; never material)."""

    name: str
    type: str
    backend: str
    age_seconds: float  # since the primary version was created
    next_rotation: datetime | None  # None: the key has no rotation interval
    overdue: bool
    versions: int
    due: bool = False  # overdue, or inside the policy's notify-before window
    usage: Mapping[int, int] = field(default_factory=dict)  # version -> operations


@dataclass(frozen=True)
class MetricsSnapshot:
    """Everything one monitoring pass measured; rendered as a whole."""

    keys: tuple[KeyMetrics, ...] = ()
    findings: Mapping[SecurityLevel, int] = field(default_factory=dict)
    events: Mapping[tuple[str, SecurityLevel], int] = field(default_factory=dict)
    backends: Mapping[str, bool] = field(default_factory=dict)
    last_success: datetime | None = None
    audit_log_ok: bool | None = None  # None: the audit log check did not run
    check_duration: float | None = None
    version: str = ""


def _families(snapshot: MetricsSnapshot) -> Iterator[Any]:
    from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily

    import ekm

    build = GaugeMetricFamily(
        "ekm_build_info", "ekm version running the monitor (always 1).", labels=["version"]
    )
    build.add_metric([snapshot.version or ekm.__version__], 1)
    yield build

    age = GaugeMetricFamily(
        "ekm_key_age_seconds",
        "Seconds since the primary version of the key was created.",
        labels=["key", "type", "backend"],
    )
    nxt = GaugeMetricFamily(
        "ekm_key_next_rotation_timestamp_seconds",
        "Unix time at which the key is due for rotation (absent without a rotation interval).",
        labels=["key"],
    )
    overdue = GaugeMetricFamily(
        "ekm_key_overdue", "1 if the key is past its rotation date, else 0.", labels=["key"]
    )
    due = GaugeMetricFamily(
        "ekm_key_due",
        "1 if the key is overdue or inside its notify-before window, else 0.",
        labels=["key"],
    )
    versions = GaugeMetricFamily(
        "ekm_key_versions", "Number of versions the key has (any state).", labels=["key"]
    )
    usage = CounterMetricFamily(
        "ekm_key_usage",
        "Cryptographic operations performed with a key version.",
        labels=["key", "version"],
    )
    for key in snapshot.keys:
        age.add_metric([key.name, key.type, key.backend], float(key.age_seconds))
        if key.next_rotation is not None:
            nxt.add_metric([key.name], key.next_rotation.timestamp())
        overdue.add_metric([key.name], 1.0 if key.overdue else 0.0)
        due.add_metric([key.name], 1.0 if key.due or key.overdue else 0.0)
        versions.add_metric([key.name], float(key.versions))
        for version, count in sorted(key.usage.items()):
            usage.add_metric([key.name, str(version)], float(count))
    yield from (age, nxt, overdue, due, versions, usage)

    findings = GaugeMetricFamily(
        "ekm_findings",
        "Open findings of the last check, by severity.",
        labels=["severity"],
    )
    for level in sorted(SecurityLevel, reverse=True):  # every severity, zero included
        findings.add_metric([level.name.lower()], float(snapshot.findings.get(level, 0)))
    yield findings

    events = CounterMetricFamily(
        "ekm_events",
        "Monitor events emitted since the monitor started, by check and severity.",
        labels=["check", "severity"],
    )
    for (check, level), count in sorted(snapshot.events.items()):
        events.add_metric([check, SecurityLevel(level).name.lower()], float(count))
    yield events

    up = GaugeMetricFamily(
        "ekm_backend_up", "1 if the key backend answered the last check.", labels=["backend"]
    )
    for name, ok in sorted(snapshot.backends.items()):
        up.add_metric([name], 1.0 if ok else 0.0)
    yield up

    if snapshot.audit_log_ok is not None:
        yield GaugeMetricFamily(
            "ekm_audit_log_ok",
            "1 if the audit log's chain verified in the last check, else 0.",
            value=1.0 if snapshot.audit_log_ok else 0.0,
        )
    if snapshot.last_success is not None:
        yield GaugeMetricFamily(
            "ekm_last_check_success_timestamp_seconds",
            "Unix time of the last monitor pass that completed.",
            value=snapshot.last_success.timestamp(),
        )
    if snapshot.check_duration is not None:
        yield GaugeMetricFamily(
            "ekm_check_duration_seconds",
            "Duration of the last monitor pass.",
            value=float(snapshot.check_duration),
        )


class _SnapshotCollector:
    def __init__(self, snapshot: MetricsSnapshot) -> None:
        self.snapshot = snapshot

    def collect(self) -> Iterator[Any]:
        return _families(self.snapshot)


def render(snapshot: MetricsSnapshot) -> bytes:
    """The Prometheus text exposition (format 0.0.4) of ``snapshot``."""
    from prometheus_client import CollectorRegistry, generate_latest

    registry = CollectorRegistry(auto_describe=False)
    registry.register(_SnapshotCollector(snapshot))
    return generate_latest(registry)


def write_textfile(path: Path, snapshot: MetricsSnapshot, *, mode: int = TEXTFILE_MODE) -> None:
    """Write the metrics atomically for node_exporter's textfile collector.

    Atomic (temporary file + rename) because the collector may read at any moment and must never
    see a torn file. Mode 0644 by default: node_exporter runs as another user, and these
    metrics are key names, ages and counts, nothing secret; pass ``mode=0o600`` to keep it private.
    """
    from ekm.fsutil import atomic_write

    path = Path(path)
    if not path.parent.is_dir():
        raise NotFoundError(
            f"the metrics file directory {path.parent} does not exist; create it or choose "
            "another --metrics-file"
        )
    atomic_write(path, render(snapshot), mode=mode)
    # atomic_write creates the file under the process umask (ekm runs with 077); make the
    # requested mode exact so the collector can read it.
    os.chmod(path, mode)


class MetricsServer:
    """Serve the latest snapshot on ``http://host:port/metrics`` from a daemon thread.

    Binds 127.0.0.1 by default: metrics name keys, so exposing them beyond the host is an
    explicit choice. ``port=0`` picks a free port (read it back from ``.port``).
    """

    def __init__(self, host: str = "127.0.0.1", port: int = 9877) -> None:
        if not 0 <= int(port) <= 65535:
            raise UsageError(f"metrics port {port} is out of range; use 1-65535 (0: any free)")
        self.host = host
        self._requested_port = int(port)
        self._body = render(MetricsSnapshot())
        self._lock = threading.Lock()
        self._server: Any = None
        self._thread: threading.Thread | None = None

    @property
    def port(self) -> int:
        """The bound port (the requested one until started)."""
        if self._server is not None:
            return int(self._server.server_address[1])
        return self._requested_port

    def update(self, snapshot: MetricsSnapshot) -> None:
        """Render ``snapshot`` once; every scrape until the next update serves these bytes."""
        body = render(snapshot)
        with self._lock:
            self._body = body

    def _current(self) -> bytes:
        with self._lock:
            return self._body

    def start(self) -> MetricsServer:
        import socket
        from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

        owner = self

        class Handler(BaseHTTPRequestHandler):
            server_version = "ekm-metrics"
            sys_version = ""

            def do_GET(self) -> None:
                path = self.path.split("?", 1)[0]
                if path == "/metrics":
                    self._reply(200, owner._current(), CONTENT_TYPE)
                elif path == "/":
                    self._reply(200, b'<a href="/metrics">/metrics</a>\n', "text/html")
                else:
                    self._reply(404, b"not found; metrics are at /metrics\n", "text/plain")

            def do_HEAD(self) -> None:
                self.do_GET()

            def _reply(self, status: int, body: bytes, ctype: str) -> None:
                self.send_response(status)
                self.send_header("Content-Type", ctype)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                if self.command != "HEAD":
                    self.wfile.write(body)

            def log_message(self, format: str, *args: Any) -> None:
                pass  # scrapes every 15 s would flood stderr

        family = socket.AF_INET6 if ":" in self.host else socket.AF_INET

        class Server(ThreadingHTTPServer):
            address_family = family
            daemon_threads = True

        try:
            self._server = Server((self.host, self._requested_port), Handler)
        except OSError as exc:
            raise UsageError(
                f"cannot serve metrics on {self.host}:{self._requested_port}: "
                f"{exc.strerror or exc}; choose another --metrics-port or bind address"
            ) from None
        self._thread = threading.Thread(
            target=self._server.serve_forever,
            kwargs={"poll_interval": 0.2},
            name="ekm-metrics",
            daemon=True,
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._server is None:
            return
        self._server.shutdown()
        self._server.server_close()
        if self._thread is not None:
            self._thread.join(5)
        self._server = None
        self._thread = None

    def __enter__(self) -> MetricsServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        with contextlib.suppress(Exception):
            self.stop()
