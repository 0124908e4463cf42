"""Safe by default: devices and FIFOs are streams, destructive commands ask (or need --yes),
``keys destroy`` keeps a recovery window, signals clean up like Ctrl-C, stale temporaries of
dead ekm processes are swept. Every case runs the real ``ekm`` command."""

from __future__ import annotations

import json
import os
import signal
import stat
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from tests.operator.tty import run_on_pty

EKM = str(Path(sys.executable).with_name("ekm"))


def _temps(directory: Path) -> list[str]:
    return sorted(p.name for p in directory.iterdir() if p.name.endswith(".tmp"))


@pytest.fixture
def sealed(run, tmp_path: Path) -> Path:
    src = tmp_path / "dump.sql"
    src.write_bytes(b"SELECT 1;\n" * 1000)
    run("encrypt", "-k", "database_encryption", "-o", str(tmp_path / "dump.sql.ekm"),
        str(src)).expect_ok()  # fmt: skip
    return tmp_path / "dump.sql.ekm"


# -- devices and FIFOs -------------------------------------------------------------------------


def test_decrypt_to_dev_null_writes_in_place(run, sealed: Path) -> None:
    res = run("decrypt", "-o", "/dev/null", str(sealed)).expect_ok()
    assert "already exists" not in res.stderr
    assert stat.S_ISCHR(os.stat("/dev/null").st_mode)


@pytest.mark.skipif(os.geteuid() != 0, reason="mknod needs root")
@pytest.mark.parametrize("extra", [[], ["--force"]])
def test_a_copy_of_dev_null_is_never_replaced(run, sealed: Path, tmp_path: Path, extra) -> None:
    dev = tmp_path / "null"
    os.mknod(dev, stat.S_IFCHR | 0o666, os.makedev(1, 3))
    run("decrypt", *extra, "-o", str(dev), str(sealed)).expect_ok()
    st = os.stat(dev)
    assert stat.S_ISCHR(st.st_mode) and st.st_rdev == os.makedev(1, 3)
    assert _temps(tmp_path) == []


def _fifo_reader(path: Path) -> tuple[threading.Thread, list[bytes]]:
    got: list[bytes] = []

    def read() -> None:
        with open(path, "rb") as fh:
            got.append(fh.read())

    t = threading.Thread(target=read, daemon=True)
    t.start()
    return t, got


@pytest.mark.parametrize(
    "command",
    [
        ["decrypt", "-o", "{fifo}", "{sealed}"],
        ["encrypt", "-k", "session", "-o", "{fifo}", "{plain}"],
        ["sign", "-k", "rsa", "-o", "{fifo}", "{plain}"],
        ["keys", "export", "rsa", "--public", "-o", "{fifo}"],
        ["audit", "--format", "json", "-o", "{fifo}"],
    ],
    ids=["decrypt", "encrypt", "sign", "export", "audit"],
)
def test_fifo_outputs_are_streams(run, sealed: Path, tmp_path: Path, command) -> None:
    fifo = tmp_path / "pipe"
    os.mkfifo(fifo)
    plain = tmp_path / "dump.sql"
    args = [a.format(fifo=fifo, sealed=sealed, plain=plain) for a in command]
    reader, got = _fifo_reader(fifo)
    res = run(*args)
    assert res.code in (0, 1), res.stderr  # audit may have findings
    reader.join(30)
    assert got and got[0], "the reader got nothing"
    if command[0] == "decrypt":
        assert got[0] == plain.read_bytes()
    if command[0] == "audit":
        assert "findings" in json.loads(got[0])
    assert stat.S_ISFIFO(os.lstat(fifo).st_mode)  # still the FIFO, nothing renamed over it
    assert _temps(tmp_path) == []


def test_regular_output_still_refuses_to_clobber(run, sealed: Path, tmp_path: Path) -> None:
    out = tmp_path / "exists.sql"
    out.write_text("keep me")
    run("decrypt", "-o", str(out), str(sealed)).expect_error(3, "already exists", "--force")
    assert out.read_text() == "keep me"


def test_missing_output_directory_is_3_everywhere(run, sealed: Path, tmp_path: Path) -> None:
    missing = tmp_path / "no" / "such"
    run("encrypt", "-k", "session", "-o", str(missing / "x.ekm"), str(sealed)).expect_error(3)
    run("decrypt", "-o", str(missing / "x"), str(sealed)).expect_error(3)
    run("audit", "--format", "json", "-o", str(missing / "a.json")).expect_error(3)
    run("report", "--format", "json", "-o", str(missing / "r.json")).expect_error(3)
    run("keys", "export", "rsa", "--public", "-o", str(missing / "k.pem")).expect_error(3)


# -- destructive operations ----------------------------------------------------------------


def _state(run, name: str, version: int) -> dict:
    doc = json.loads(run("--json", "keys", "show", name).expect_ok().stdout)
    return next(v for v in doc["versions"] if v["version"] == version)


@pytest.fixture
def rotated(run) -> None:
    run("rotate", "hmac", "--force").expect_ok()


def test_destroy_off_a_terminal_needs_yes(run, rotated) -> None:
    line = run("keys", "destroy", "hmac", "--version", "1").expect_error(2, "--yes", "--dry-run")
    assert "keys destroy" in line
    assert _state(run, "hmac", 1)["state"] == "active"


def test_destroy_dry_run_shows_the_plan_and_changes_nothing(run, rotated) -> None:
    res = run("keys", "destroy", "hmac", "--version", "1", "-n").expect_ok()
    assert res.stdout.startswith("would destroy hmac v1 (active, 0 uses) and keep its material")
    assert "ekm keys recover hmac --version 1" in res.stdout
    doc = json.loads(run("--json", "keys", "destroy", "hmac", "--version", "1", "--dry-run").stdout)
    assert doc["dry_run"] is True and doc["plan"][0]["recovery_window"] == "7d"
    assert _state(run, "hmac", 1)["state"] == "active"


def test_destroy_defaults_to_a_seven_day_recovery_window(run, rotated) -> None:
    doc = json.loads(run("--json", "keys", "destroy", "hmac", "--version", "1", "-y").stdout)
    assert doc["material_removed"] is False and doc["recoverable_until"]
    run("keys", "recover", "hmac", "--version", "1").expect_ok()
    assert _state(run, "hmac", 1)["state"] == "disabled"


def test_destroy_now_only_when_asked(run, rotated) -> None:
    args = ("--json", "keys", "destroy", "hmac", "--version", "1", "--yes")
    doc = json.loads(run(*args, "--recovery-window", "0s").stdout)
    assert doc["material_removed"] is True and doc["recoverable_until"] is None


def test_recovery_window_from_ekm_toml(run, rotated, home: Path) -> None:
    cfg = home / "ekm.toml"
    cfg.write_text(cfg.read_text() + '\n[rotation]\nsoft_delete_window = "14d"\n')
    doc = json.loads(run("--json", "keys", "destroy", "hmac", "--version", "1", "-n").stdout)
    assert doc["plan"][0]["recovery_window"] == "14d"


def test_destroy_refuses_the_primary_in_a_dry_run_too(run) -> None:
    run("keys", "destroy", "hmac", "--version", "1", "-n").expect_error(3, "is the primary")


def test_old_v_spelling_still_works_hidden(run, rotated) -> None:
    res = run("keys", "destroy", "hmac", "-v", "1", "-n").expect_ok()
    assert res.stdout.startswith("would destroy hmac v1")
    assert "-v" not in run("keys", "destroy", "--help").stdout.replace("--version", "")


@pytest.mark.parametrize("answer,code,state", [("n", 1, "active"), ("y", 0, "destroyed")])
def test_destroy_asks_on_a_terminal(run, rotated, ekm_env, answer, code, state) -> None:
    rc, out = run_on_pty(["keys", "destroy", "hmac", "--version", "1"], ekm_env, answer)
    assert rc == code, out
    assert "destroy hmac v1 (active, 0 uses)" in out and "Proceed? [y/N]" in out
    assert _state(run, "hmac", 1)["state"] == state


def test_purge_needs_yes_and_dry_run_lists(run, rotated) -> None:
    run("keys", "purge").expect_ok()  # nothing due: nothing to confirm
    run("keys", "destroy", "hmac", "--version", "1", "-y").expect_ok()
    res = run("keys", "purge", "-n").expect_ok()
    assert res.stdout == "nothing to do\n"  # the window has not ended


def test_apikey_revoke_needs_yes(run) -> None:
    token = run("apikey", "create", "--name", "ci").expect_ok().stdout.strip()
    assert token
    key_id = json.loads(run("--json", "apikey", "list").stdout)["apikeys"][0]["id"]
    run("apikey", "revoke", key_id).expect_error(2, "apikey revoke", "--yes")
    res = run("apikey", "revoke", "-n", key_id).expect_ok()
    assert res.stdout.startswith(f"would revoke API key {key_id} (ci, key api_master)")
    run("apikey", "verify", stdin=token).expect_ok()
    run("apikey", "revoke", "--yes", key_id).expect_ok()
    run("apikey", "verify", stdin=token).expect_error(4)
    run("apikey", "revoke", "-n", "nope:000").expect_error(3)


def test_rotate_force_of_many_keys_needs_yes(run) -> None:
    before = json.loads(run("--json", "status").stdout)
    run("rotate", "--force").expect_error(2, "rotate --force of 7 keys", "--yes")
    assert json.loads(run("--json", "status").stdout)["keys"] == before["keys"]
    run("rotate", "--force", "hmac").expect_ok()  # one named key: no question
    run("rotate", "--force", "-n").expect_ok()
    run("rotate", "--force", "--yes").expect_ok()


# -- signals and stale temporaries ---------------------------------------------------------


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGHUP, signal.SIGINT])
@pytest.mark.parametrize("command", ["encrypt", "decrypt"])
def test_signals_clean_up_like_ctrl_c(ekm_env, sealed: Path, tmp_path: Path, sig, command):
    out_dir = tmp_path / "out"
    out_dir.mkdir()
    if command == "encrypt":
        args = [EKM, "encrypt", "-k", "session", "-o", str(out_dir / "big.ekm")]
        first = b"x" * (4 << 20)
    else:
        args = [EKM, "decrypt", "-o", str(out_dir / "big")]
        first = sealed.read_bytes()[:-100]  # all but the end: the rest never comes
    proc = subprocess.Popen(
        args, stdin=subprocess.PIPE, stderr=subprocess.PIPE, env=ekm_env, start_new_session=True
    )
    assert proc.stdin is not None
    proc.stdin.write(first)
    proc.stdin.flush()
    deadline = time.monotonic() + 30
    while not _temps(out_dir) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert _temps(out_dir), "the command never started writing"
    proc.send_signal(sig)
    _, err = proc.communicate(timeout=30)
    assert proc.returncode == 128 + sig, err
    assert sorted(p.name for p in out_dir.iterdir()) == []
    assert b"Traceback" not in err and len(err.decode().splitlines()) == 1


def test_stale_temporaries_of_dead_processes_are_swept_once(run, home: Path) -> None:
    dead = subprocess.Popen(["true"])
    dead.wait()
    stale = [
        home / f".ekm.toml.{dead.pid}.1234.tmp",
        home / "keys" / f".hmac.json.{dead.pid}.9.tmp",
    ]
    for p in stale:
        p.write_bytes(b"partial")
    live = home / f".audit.log.{os.getpid()}.77.tmp"  # a live process: left alone
    live.write_bytes(b"in progress")
    res = run("status").expect_ok()
    assert "removed 2 temporary files left by ekm processes that died" in res.stderr
    assert not any(p.exists() for p in stale) and live.exists()
    assert "temporary" not in run("status").expect_ok().stderr  # reported once
    live.unlink()


def test_json_with_monitor_daemon_is_refused_not_ignored(run) -> None:
    run("--json", "monitor", "--daemon").expect_error(2, "--json does not apply to --daemon")
