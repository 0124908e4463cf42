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
        return self._manager
