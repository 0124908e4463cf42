"""Helpers for the rotation tests: homes with a chosen ekm.toml, key documents, audit records."""

from __future__ import annotations

import json
import os
import stat
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

#: CLI.md "The default key set": name -> (type, usage, rotate every, backup, notify before).
DEFAULT_KEY_SET = {
    "database_encryption": ("aes-256-gcm", "encryption", "90d", True, "7d"),
    "jwt_signing": ("hmac-sha256", "signing", "30d", True, "3d"),
    "api_master": ("hmac-sha256", "api-auth", "60d", True, "5d"),
    "api_internal": ("hmac-sha256", "api-auth", "60d", True, "5d"),
    "session": ("aes-256-gcm", "encryption", "7d", False, "1d"),
    "hmac": ("hmac-sha256", "mac", "30d", True, "3d"),
    "rsa": ("rsa-4096", "signing", "365d", True, "30d"),
}

#: The default key set without the slow rsa-4096 key, plus an offline x25519 recipient that
#: never rotates: every rotation test can rotate "all" in milliseconds.
FAST_CONFIG = (
    "\n".join(
        f'[keys.{name}]\ntype = "{t}"\nusage = "{u}"\nrotate_every = "{every}"\n'
        f'backup = {"true" if backup else "false"}\nnotify_before = "{notify}"\n'
        for name, (t, u, every, backup, notify) in DEFAULT_KEY_SET.items()
        if name != "rsa"
    )
    + '\n[keys.offline]\ntype = "x25519"\nusage = "encryption"\nrotate_every = "never"\n'
)

FAST_KEYS = sorted([n for n in DEFAULT_KEY_SET if n != "rsa"] + ["offline"])

#: Cheapest Argon2id that ekm.toml accepts (tests only; RFC 9106 values in production).
FAST_ARGON2 = "argon2_memory_kib = 19456\nargon2_iterations = 2\nargon2_parallelism = 1\n"


def make_home(path: Path, config: str) -> Path:
    """An undeployed home (0700) holding ``config`` as its ekm.toml (0600)."""
    path.mkdir(mode=0o700, parents=True)
    cfg = path / "ekm.toml"
    cfg.write_text(config)
    cfg.chmod(0o600)
    return path


def doc(home: Path, name: str) -> dict[str, Any]:
    """The raw key document on disk (metadata in clear, material wrapped)."""
    return json.loads((home / "keys" / f"{name}.json").read_bytes())


def states(home: Path, name: str) -> dict[int, str]:
    """version -> state, straight from the key document."""
    return {v["version"]: v["state"] for v in doc(home, name)["meta"]["versions"]}


def audit(home: Path) -> list[dict[str, Any]]:
    """Every audit-log record, oldest first."""
    lines = (home / "audit.log").read_bytes().splitlines()
    return [json.loads(line) for line in lines if line.strip()]


def audit_since(home: Path, mark: int) -> list[dict[str, Any]]:
    """Records appended after ``mark`` (= len(audit(home)) taken earlier)."""
    return audit(home)[mark:]


def snapshot(root: Path) -> dict[str, tuple[int, bytes | None]]:
    """Every entry under ``root`` -> (mode, bytes): proof that nothing changed.

    The advisory lock file is left out: taking the lock writes the holder's pid into it.
    """
    out: dict[str, tuple[int, bytes | None]] = {}
    for dirpath, dirnames, filenames in os.walk(root):
        for name in dirnames + filenames:
            path = Path(dirpath) / name
            if path.name == ".lock":
                continue
            st = path.lstat()
            out[str(path.relative_to(root))] = (
                st.st_mode,
                path.read_bytes() if stat.S_ISREG(st.st_mode) else None,
            )
    return out


def t0(home: Path, name: str = "session") -> datetime:
    """When ``name`` was created: the clock that ``--as-of`` / ``now=`` offsets start from."""
    from ekm.timeutil import from_iso

    return from_iso(doc(home, name)["meta"]["created"])


def at(home: Path, days: float) -> str:
    """The ISO time ``days`` after the home's keys were created (for ``--as-of``)."""
    return (t0(home) + timedelta(days=days)).strftime("%Y-%m-%dT%H:%M:%SZ")
