"""systemd units (checked with systemd-analyze verify) and sd_notify over a real socket."""

from __future__ import annotations

import os
import shutil
import socket
import stat
import subprocess
from pathlib import Path

import pytest

from ekm.errors import UsageError
from ekm.monitor.systemd import sd_notify, write_units

ANALYZE = shutil.which("systemd-analyze")


@pytest.fixture
def layout(tmp_path: Path) -> dict[str, Path]:
    ekm = tmp_path / "bin" / "ekm"
    ekm.parent.mkdir()
    ekm.write_text("#!/bin/sh\nexit 0\n")
    ekm.chmod(0o755)
    home = tmp_path / "home"
    home.mkdir()
    return {"ekm_path": ekm, "home": home, "config": home / "ekm.toml"}


def verify(paths: list[Path]) -> subprocess.CompletedProcess[str]:
    if ANALYZE is None:
        pytest.skip("systemd-analyze is not installed")
    return subprocess.run(
        [ANALYZE, "verify", "--man=no", *map(str, paths)],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=paths[0].parent,
    )


def parse(path: Path) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for line in path.read_text().splitlines():
        if "=" in line and not line.startswith("#"):
            k, _, v = line.partition("=")
            out.setdefault(k, []).append(v)
    return out


def test_units_are_written_hardened_and_verify_cleanly(tmp_path: Path, layout) -> None:
    paths = write_units(tmp_path / "units", **layout, monitor_args=["--interval", "60"])
    assert [p.name for p in paths] == [
        "ekm-monitor.service",
        "ekm-rotate.service",
        "ekm-rotate.timer",
    ]
    for p in paths:
        assert stat.S_IMODE(p.stat().st_mode) == 0o644
    result = verify(paths)
    assert result.returncode == 0 and result.stderr == "", result.stderr

    monitor = parse(paths[0])
    home = str(layout["home"])
    assert monitor["Type"] == ["notify"]
    assert monitor["ExecStart"] == [
        f"{layout['ekm_path']} --home {home} --config {layout['config']} "
        "monitor --daemon --interval 60"
    ]
    for unit in (monitor, parse(paths[1])):
        assert unit["NoNewPrivileges"] == ["yes"]
        assert unit["ProtectSystem"] == ["strict"]
        assert unit["ReadWritePaths"] == [home]
        assert unit["ProtectHome"] == ["yes"]  # tmp_path is not under /home or /root
        assert unit["PrivateTmp"] == ["yes"]
        assert unit["CapabilityBoundingSet"] == [""]
        assert unit["RestrictAddressFamilies"] == ["AF_UNIX AF_INET AF_INET6"]
        assert "@system-service" in unit["SystemCallFilter"]
        assert unit["UMask"] == ["0077"]
        assert unit["LimitCORE"] == ["0"]
        assert "User" not in unit

    rotate = parse(paths[1])
    assert rotate["Type"] == ["oneshot"]
    assert rotate["ExecStartPre"][0].startswith("-") and rotate["ExecStartPre"][0].endswith(
        "rotate --check"
    )
    assert rotate["ExecStart"][0].endswith(" rotate")
    timer = parse(paths[2])
    assert timer["OnCalendar"] == ["daily"] and timer["Persistent"] == ["true"]
    assert timer["Unit"] == ["ekm-rotate.service"]


def test_verify_harness_can_fail(tmp_path: Path, layout) -> None:
    paths = write_units(tmp_path / "units", **layout)
    broken = tmp_path / "units" / "ekm-broken.service"
    broken.write_text(paths[0].read_text().replace("Type=notify", "Type=bogus"))
    assert "Failed to parse service type" in verify([broken]).stderr


def test_user_home_gets_read_only_protect_home_and_user(tmp_path: Path) -> None:
    paths = write_units(
        tmp_path,
        ekm_path="/home/app/.venv/bin/ekm",
        home="/home/app/.local/share/ekm",
        config="/home/app/.local/share/ekm/ekm.toml",
        user="app",
        read_write_paths=["/var/lib/node_exporter"],
        watchdog_sec=60,
    )
    unit = parse(paths[0])
    assert unit["ProtectHome"] == ["read-only"]
    assert unit["ReadWritePaths"] == ["/home/app/.local/share/ekm /var/lib/node_exporter"]
    assert unit["User"] == ["app"] and unit["WatchdogSec"] == ["60"]


@pytest.mark.parametrize(
    ("kwargs", "fragment"),
    [
        ({"home": "relative/home"}, "the home path must be absolute"),
        ({"home": "/srv/my home"}, "the home path must be absolute and use only"),
        ({"config": "/etc/ekm/$HOME.toml"}, "the config path must be absolute"),
        ({"ekm_path": "/usr/bin/ekm%n"}, "the ekm executable path must be absolute"),
        ({"user": "Root;rm"}, "is not a valid user name"),
        ({"monitor_args": ["--webhook", "https://x/y z"]}, "monitor arguments may use only"),
        ({"watchdog_sec": 0}, "watchdog_sec must be at least 1"),
    ],
)
def test_unsafe_values_are_refused(tmp_path: Path, layout, kwargs: dict, fragment: str) -> None:
    args = {**layout, **kwargs}
    with pytest.raises(UsageError, match=fragment) as info:
        write_units(tmp_path / "units", **args)
    assert info.value.exit_code == 2
    assert not (tmp_path / "units").exists()  # nothing half-written


@pytest.fixture
def notify_socket(tmp_path: Path):
    path = tmp_path / "notify.sock"
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(str(path))
    sock.settimeout(10)
    yield path, sock
    sock.close()


@pytest.mark.parametrize("state", ["READY=1", "STOPPING=1", "WATCHDOG=1", "STATUS=3 keys due"])
def test_sd_notify_sends_a_datagram(notify_socket, state: str) -> None:
    path, sock = notify_socket
    assert sd_notify(state, env={"NOTIFY_SOCKET": str(path)}) is True
    assert sock.recv(4096) == state.encode()


def test_sd_notify_abstract_socket() -> None:
    name = f"ekm-test-{os.getpid()}"
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
        sock.bind("\0" + name)
        sock.settimeout(10)
        assert sd_notify("READY=1", env={"NOTIFY_SOCKET": "@" + name}) is True
        assert sock.recv(64) == b"READY=1"


def test_sd_notify_without_systemd_is_a_quiet_no(tmp_path: Path) -> None:
    assert sd_notify("READY=1", env={}) is False
    assert sd_notify("READY=1", env={"NOTIFY_SOCKET": str(tmp_path / "absent.sock")}) is False
    assert sd_notify("READY=1", env={"NOTIFY_SOCKET": "vsock:2:1234"}) is False
    assert sd_notify("", env={"NOTIFY_SOCKET": str(tmp_path / "x")}) is False
