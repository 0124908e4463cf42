"""Real SoftHSM2 tokens for the test suite (``from tests.softhsm import make_token``).

SoftHSM reads ``SOFTHSM2_CONF`` once, when the library is loaded, and does not see tokens created
afterwards; python-pkcs11 loads a library once per process. So:

* :func:`make_token` creates a token directory, a ``softhsm2.conf`` pointing at it, and one
  initialised token, and returns where everything is. Use it for a subprocess (pass
  ``token.env()`` to it), or once per process before anything loads the library.
* :func:`shared_token` is the one in-process token: created on first use, ``SOFTHSM2_CONF`` set
  in ``os.environ`` for the rest of the process. In-process tests share it and use distinct key
  labels.
"""

from __future__ import annotations

import atexit
import os
import shutil
import subprocess
import tempfile
import threading
from pathlib import Path
from typing import NamedTuple

MODULE_PATH = "/usr/lib/softhsm/libsofthsm2.so"
SOFTHSM2_UTIL = "softhsm2-util"
PKCS11_TOOL = "pkcs11-tool"


class SoftHsmToken(NamedTuple):
    """One initialised SoftHSM2 token, as ``(conf_path, label, pin, so_pin, module_path)``."""

    conf_path: Path
    label: str
    pin: str
    so_pin: str
    module_path: str

    @property
    def token_dir(self) -> Path:
        return self.conf_path.parent / "tokens"

    def env(self, base: dict[str, str] | None = None) -> dict[str, str]:
        """An environment (default: a copy of os.environ) whose SoftHSM uses this token."""
        out = dict(os.environ if base is None else base)
        out["SOFTHSM2_CONF"] = str(self.conf_path)
        return out

    def hsm_table(self, **overrides: object) -> dict[str, object]:
        """A valid ``[hsm]`` table for this token with the PIN in ``EKM_TEST_HSM_PIN``."""
        table: dict[str, object] = {
            "library_path": self.module_path,
            "token_label": self.label,
            "pin_env": "EKM_TEST_HSM_PIN",
        }
        table.update(overrides)
        return table


def available() -> bool:
    """True when SoftHSM2 and its tools are installed."""
    return Path(MODULE_PATH).is_file() and shutil.which(SOFTHSM2_UTIL) is not None


def make_token(
    directory: Path | str,
    *,
    label: str = "ekm-test",
    pin: str = "1234-test-pin",
    so_pin: str = "12345678-so",
) -> SoftHsmToken:
    """Create ``directory``/softhsm2.conf and ``directory``/tokens with one initialised token."""
    directory = Path(directory)
    tokens = directory / "tokens"
    tokens.mkdir(parents=True, exist_ok=True, mode=0o700)
    conf = directory / "softhsm2.conf"
    conf.write_text(
        f"directories.tokendir = {tokens}\nobjectstore.backend = file\nlog.level = ERROR\n"
    )
    init_token(SoftHsmToken(conf, label, pin, so_pin, MODULE_PATH))
    return SoftHsmToken(conf, label, pin, so_pin, MODULE_PATH)


def init_token(token: SoftHsmToken, *, label: str | None = None) -> None:
    """Initialise a free slot with ``label`` (default: the token's label) using softhsm2-util."""
    subprocess.run(
        [
            SOFTHSM2_UTIL,
            "--init-token",
            "--free",
            "--label",
            label or token.label,
            "--so-pin",
            token.so_pin,
            "--pin",
            token.pin,
        ],
        env=token.env(),
        check=True,
        capture_output=True,
        timeout=60,
    )


def reinit_token(token: SoftHsmToken) -> None:
    """Re-initialise the token from outside (all its objects vanish), as an operator might."""
    subprocess.run(
        [
            SOFTHSM2_UTIL,
            "--init-token",
            "--token",
            token.label,
            "--label",
            token.label,
            "--so-pin",
            token.so_pin,
            "--pin",
            token.pin,
        ],
        env=token.env(),
        check=True,
        capture_output=True,
        timeout=60,
    )


def list_objects(token: SoftHsmToken) -> str:
    """``pkcs11-tool --list-objects --login`` output for the token, from outside ekm."""
    proc = subprocess.run(
        [
            PKCS11_TOOL,
            "--module",
            token.module_path,
            "--token-label",
            token.label,
            "--list-objects",
            "--login",
            "--pin",
            token.pin,
        ],
        env=token.env(),
        check=True,
        capture_output=True,
        text=True,
        timeout=60,
    )
    return proc.stdout


_shared: SoftHsmToken | None = None
_shared_lock = threading.Lock()


def shared_token() -> SoftHsmToken:
    """The process's one in-process SoftHSM token (creates it and sets SOFTHSM2_CONF once)."""
    global _shared
    with _shared_lock:
        if _shared is None:
            directory = Path(tempfile.mkdtemp(prefix="ekm-softhsm-"))
            atexit.register(shutil.rmtree, directory, ignore_errors=True)
            _shared = make_token(directory, label="ekm-shared")
            os.environ["SOFTHSM2_CONF"] = str(_shared.conf_path)
        return _shared
