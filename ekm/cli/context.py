"""Global options and the lazily created KeyManager shared by every command."""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass, field
from typing import Any

from ekm.errors import ConfigError


def _prompt_passphrase(new: bool) -> str:
    """Ask on the terminal (only when stdin is a TTY); confirm a new passphrase."""
    if not sys.stdin.isatty():
        raise ConfigError(
            "the master key is passphrase-derived: set EKM_PASSPHRASE (no terminal to ask on)"
        )
    import getpass

    first = getpass.getpass("ekm passphrase: " if not new else "new ekm passphrase: ")
    if new:
        second = getpass.getpass("repeat the passphrase: ")
        if first != second:
            raise ConfigError("the two passphrases differ; nothing was changed")
    return first


@dataclass
class Context:
    """What the top-level options decided, shared through ``typer.Context.obj``."""

    home: str | None = None
    config: str | None = None
    json: bool = False
    debug: bool = False
    quiet: bool = False
    _manager: Any = field(default=None, repr=False)

    def manager(self) -> Any:
        if self._manager is None:
            from ekm.manager import KeyManager

            self._manager = KeyManager(
                self.home,
                self.config,
                debug=self.debug,
                passphrase_provider=_prompt_passphrase,
                env=os.environ,
            )
            _sweep_home(self._manager)
        return self._manager


def _sweep_home(mgr: Any) -> None:
    """Remove (and report, in one line) temporary files that dead ekm processes left behind."""
    from pathlib import Path

    from ekm.fsutil import sweep_stale_temp

    home = Path(mgr.home)
    if not home.is_dir():
        return
    removed = [
        str((d / name).relative_to(home))
        for d in (home, home / "keys", home / "backups")
        for name in sweep_stale_temp(d)
    ]
    if removed:
        shown = ", ".join(removed[:3]) + (
            f" and {len(removed) - 3} more" if len(removed) > 3 else ""
        )
        sys.stderr.write(
            f"ekm: removed {len(removed)} temporary file{'s' if len(removed) != 1 else ''} left "
            f"by ekm processes that died: {shown}\n"
        )
