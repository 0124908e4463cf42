"""Temporary files left by a killed writer are swept on the next write; live ones are not."""

from __future__ import annotations

import subprocess
import sys


def test_dead_writers_temp_files_are_removed_live_ones_kept(home, run):
    keys = home / "keys"
    dead = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    stale = keys / f".session.json.{dead}.123.tmp"
    live_proc = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"])
    try:
        live = keys / f".rsa.json.{live_proc.pid}.456.tmp"
        for path in (stale, live):
            path.write_bytes(b"half a document")
            path.chmod(0o600)
        run("rotate", "session", "--force").expect_ok()
        assert not stale.exists()
        assert live.exists()  # its writer might still rename it
    finally:
        live_proc.kill()
        live_proc.wait()
