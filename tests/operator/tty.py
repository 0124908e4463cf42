"""Run the real ``ekm`` command on a pseudo-terminal, as an operator at a shell would.

``run_on_pty(args, env, answer)`` gives the child a pty for stdin, stdout and stderr, types
``answer`` when it asks, and returns ``(exit code, everything it printed)``.
"""

from __future__ import annotations

import os
import pty
import select
import shutil
import subprocess
import sys
import time

DEADLINE = 60.0  # a bound on waiting, never a speed assert


def run_on_pty(
    args: list[str],
    env: dict[str, str],
    answer: str | None = None,
    *,
    prompt: bytes = b"[y/N]",
    columns: int = 100,
) -> tuple[int, str]:
    master, slave = pty.openpty()
    import fcntl
    import struct
    import termios

    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 40, columns, 0, 0))
    exe = shutil.which("ekm", path=os.path.dirname(sys.executable)) or "ekm"
    proc = subprocess.Popen(
        [exe, *args],
        stdin=slave,
        stdout=slave,
        stderr=slave,
        env={**env, "COLUMNS": str(columns), "TERM": "xterm"},
        close_fds=True,
        start_new_session=True,
    )
    os.close(slave)
    out = b""
    answered = answer is None
    deadline = time.monotonic() + DEADLINE
    try:
        while time.monotonic() < deadline:
            ready, _, _ = select.select([master], [], [], 0.1)
            if ready:
                try:
                    chunk = os.read(master, 65536)
                except OSError:  # EIO: the child closed the pty
                    break
                if not chunk:
                    break
                out += chunk
            if not answered and prompt in out:
                os.write(master, answer.encode() + b"\n")
                answered = True
            if proc.poll() is not None and not ready:
                break
        code = proc.wait(timeout=DEADLINE)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        os.close(master)
    return code, out.decode(errors="replace").replace("\r\n", "\n")
