"""Small helpers for the foundation tests: snapshots of a home, JSON edits, key documents."""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path
from typing import Any

#: CLI.md "The default key set": name -> (type, usage).
DEFAULT_KEYS = {
    "database_encryption": ("aes-256-gcm", "encryption"),
    "jwt_signing": ("hmac-sha256", "signing"),
    "api_master": ("hmac-sha256", "api-auth"),
    "api_internal": ("hmac-sha256", "api-auth"),
    "session": ("aes-256-gcm", "encryption"),
    "hmac": ("hmac-sha256", "mac"),
    "rsa": ("rsa-4096", "signing"),
}


def snapshot(root: Path) -> dict[str, tuple[int, bytes | None]]:
    """Every entry under ``root`` -> (mode, content), to prove that nothing changed.

    The advisory lock file is left out: taking the lock writes the holder's pid into it.
    """
    out: dict[str, tuple[int, bytes | None]] = {}
    for dirpath, dirnames, filenames in os.walk(root):
        for name in dirnames + filenames:
            path = Path(dirpath) / name
            if path.name == ".lock":
                continue
            st = path.lstat()
            data = path.read_bytes() if stat.S_ISREG(st.st_mode) else None
            out[str(path.relative_to(root))] = (st.st_mode, data)
    return out


def key_path(home: Path, name: str) -> Path:
    return home / "keys" / f"{name}.json"


def read_doc(home: Path, name: str) -> dict[str, Any]:
    return json.loads(key_path(home, name).read_bytes())


def write_doc(home: Path, name: str, doc: dict[str, Any]) -> None:
    """Rewrite a key document in place, keeping its 0600 mode (a hand edit)."""
    path = key_path(home, name)
    path.write_text(json.dumps(doc, sort_keys=True, separators=(",", ":")) + "\n")
    assert stat.S_IMODE(path.stat().st_mode) == 0o600


def append_config(home: Path, text: str) -> Path:
    path = home / "ekm.toml"
    with open(path, "a", encoding="utf-8") as fh:
        fh.write("\n" + text + "\n")
    return path
