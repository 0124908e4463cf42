"""Prometheus metrics: promtool-valid output, atomic textfile, a real HTTP scrape."""

from __future__ import annotations

import shutil
import stat
import subprocess
import urllib.error
import urllib.request
from datetime import timedelta
from pathlib import Path

import pytest

from ekm.crypto.keytypes import SecurityLevel
from ekm.errors import NotFoundError, UsageError
from ekm.monitor.metrics import KeyMetrics, MetricsServer, MetricsSnapshot, render, write_textfile

from .conftest import NOW

PROMTOOL = shutil.which("promtool")


def snapshot() -> MetricsSnapshot:
    return MetricsSnapshot(
        keys=(
            KeyMetrics(
                name="database_encryption",
                type="aes-256-gcm",
                backend="file",
                age_seconds=86400.0,
                next_rotation=NOW + timedelta(days=89),
                overdue=False,
                versions=2,
                usage={1: 10, 2: 3},
            ),
            KeyMetrics(
                name='hostile"name\\\nwith newline',
                type="rsa-4096",
                backend="pkcs11",
                age_seconds=400 * 86400.0,
                next_rotation=None,
                overdue=True,
                versions=1,
            ),
        ),
        findings={SecurityLevel.HIGH: 2, SecurityLevel.LOW: 1},
        events={("files.permissions", SecurityLevel.HIGH): 3},
        backends={"file": True, "vault": False},
        last_success=NOW,
        check_duration=0.25,
        version="9.9.9",
    )


def promtool_check(data: bytes) -> subprocess.CompletedProcess[bytes]:
    if PROMTOOL is None:
        pytest.skip("promtool is not installed (apt-get install prometheus)")
    return subprocess.run(
        [PROMTOOL, "check", "metrics"], input=data, capture_output=True, timeout=30
    )


def samples(text: str) -> dict[str, float]:
    out = {}
    for line in text.splitlines():
        if line and not line.startswith("#"):
            name, _, value = line.rpartition(" ")
            out[name] = float(value)
    return out


def test_render_is_valid_for_promtool_and_has_every_metric() -> None:
    data = render(snapshot())
    result = promtool_check(data)
    assert result.returncode == 0, result.stdout + result.stderr
    s = samples(data.decode())
    assert s['ekm_build_info{version="9.9.9"}'] == 1
    key = 'key="database_encryption"'
    assert s[f'ekm_key_age_seconds{{backend="file",{key},type="aes-256-gcm"}}'] == 86400
    assert s[f"ekm_key_next_rotation_timestamp_seconds{{{key}}}"] == pytest.approx(
        (NOW + timedelta(days=89)).timestamp()
    )
    assert s[f"ekm_key_overdue{{{key}}}"] == 0
    assert s[f"ekm_key_versions{{{key}}}"] == 2
    assert s[f'ekm_key_usage_total{{{key},version="1"}}'] == 10
    assert s['ekm_findings{severity="high"}'] == 2
    assert s['ekm_findings{severity="critical"}'] == 0  # every severity is present
    assert s['ekm_events_total{check="files.permissions",severity="high"}'] == 3
    assert s['ekm_backend_up{backend="vault"}'] == 0
    assert s["ekm_last_check_success_timestamp_seconds"] == NOW.timestamp()
    assert s["ekm_check_duration_seconds"] == 0.25
    # the hostile label is escaped, not able to inject a line
    assert 'ekm_key_overdue{key="hostile\\"name\\\\\\nwith newline"} 1.0' in data.decode()
    # no next-rotation sample for a key without a rotation interval
    assert 'ekm_key_next_rotation_timestamp_seconds{key="hostile' not in data.decode()


def test_promtool_harness_can_fail() -> None:
    # The check above means something only if promtool rejects a convention violation.
    bad = b"# HELP ekm_key_usage_count x\n# TYPE ekm_key_usage_count gauge\nekm_key_usage_count 1\n"
    assert promtool_check(bad).returncode != 0


def test_empty_snapshot_renders_build_info_and_findings_only() -> None:
    data = render(MetricsSnapshot())
    assert promtool_check(data).returncode == 0
    assert b"ekm_build_info" in data and b"ekm_last_check_success" not in data


def test_renders_use_a_private_registry() -> None:
    from prometheus_client import REGISTRY

    render(snapshot())
    assert REGISTRY.get_sample_value("ekm_key_overdue", {"key": "database_encryption"}) is None


def test_write_textfile_is_atomic_and_world_readable(tmp_path: Path) -> None:
    path = tmp_path / "ekm.prom"
    path.write_bytes(b"old")
    write_textfile(path, snapshot())
    assert path.read_bytes() == render(snapshot())
    assert stat.S_IMODE(path.stat().st_mode) == 0o644
    assert [p.name for p in tmp_path.iterdir()] == ["ekm.prom"]  # no temporary left over
    write_textfile(path, snapshot(), mode=0o600)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600


def test_write_textfile_missing_directory(tmp_path: Path) -> None:
    with pytest.raises(NotFoundError, match="does not exist; create it or choose another") as e:
        write_textfile(tmp_path / "nope" / "ekm.prom", snapshot())
    assert e.value.exit_code == 3


def test_server_scraped_over_real_http() -> None:
    with MetricsServer("127.0.0.1", 0) as server:
        assert server.port > 0
        url = f"http://127.0.0.1:{server.port}/metrics"
        with urllib.request.urlopen(url, timeout=10) as r:
            first = r.read()
            assert r.headers["Content-Type"].startswith("text/plain; version=0.0.4")
        assert b"ekm_build_info" in first and b"ekm_key_age_seconds{" not in first
        server.update(snapshot())
        with urllib.request.urlopen(url, timeout=10) as r:
            body = r.read()
        assert body == render(snapshot())
        assert promtool_check(body).returncode == 0
        with pytest.raises(urllib.error.HTTPError) as info:
            urllib.request.urlopen(f"http://127.0.0.1:{server.port}/other", timeout=10)
        assert info.value.code == 404
    with pytest.raises(urllib.error.URLError):  # stopped: nothing listens any more
        urllib.request.urlopen(url, timeout=10)


def test_server_port_in_use_and_out_of_range() -> None:
    with MetricsServer("127.0.0.1", 0) as server:
        taken = server.port
        with pytest.raises(UsageError, match=f"cannot serve metrics on 127.0.0.1:{taken}: "):
            MetricsServer("127.0.0.1", taken).start()
    with pytest.raises(UsageError, match="out of range; use 1-65535"):
        MetricsServer("127.0.0.1", 70000)
