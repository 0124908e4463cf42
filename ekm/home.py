"""Where a deployment lives: the home directory and the paths inside it."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path


def default_home(env: Mapping[str, str] = os.environ) -> Path:
    """``$EKM_HOME``, else ``/var/lib/ekm`` for root, else ``~/.local/share/ekm``."""
    if env.get("EKM_HOME"):
        return Path(env["EKM_HOME"]).expanduser()
    if os.geteuid() == 0:
        return Path("/var/lib/ekm")
    base = env.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
    return Path(base) / "ekm"


@dataclass(frozen=True)
class HomeLayout:
    """The files of a home (DESIGN.md "Storage")."""

    root: Path

    @property
    def keys_dir(self) -> Path:
        return self.root / "keys"

    @property
    def lock(self) -> Path:
        return self.root / ".lock"

    @property
    def master_meta(self) -> Path:
        return self.root / "master.json"

    @property
    def backups_dir(self) -> Path:
        return self.root / "backups"

    @property
    def state_dir(self) -> Path:
        return self.root / "state"
