"""Small helpers of the Vault client: answer-shape checks, credential files, the TLS warning."""

from __future__ import annotations

import re
import stat
from pathlib import Path
from typing import Any

from ekm.errors import BackendError, ConfigError

MAX_CREDENTIAL_BYTES = 64 * 1024
CAS_MISMATCH = "check-and-set parameter did not match the current version"
#: The largest Vault answer ekm parses (a key document with many versions is a few KiB).
MAX_RESPONSE_BYTES = 32 * 1024 * 1024
_CIPHERTEXT_RE = re.compile(r"^vault:v[1-9][0-9]{0,8}:[A-Za-z0-9+/]+={0,2}$")


class CasConflict(BackendError):
    """Another writer changed a KV secret since we read it: re-read it and decide again."""

    def __init__(self, message: str, *, path: str, expected: int, current: int | None) -> None:
        super().__init__(message)
        self.path = path
        self.expected = expected
        self.current = current


_WARNED_UNVERIFIED: set[str] = set()


def _warn_unverified(endpoint: str) -> None:
    """Say once that ``verify = false`` is in force, instead of urllib3's per-request noise.

    Why: without TLS verification anyone on the path can impersonate Vault and collect the
    token; an operator who set it for a test must see it is still set. Raised as an
    EkmWarning (the CLI prints ``ekm: warning: ...``; the default filter shows it once).
    """
    import warnings

    from urllib3.exceptions import InsecureRequestWarning

    from ekm.errors import EkmWarning

    if endpoint in _WARNED_UNVERIFIED:
        return  # once per endpoint and process (changing filters resets Python's registry)
    _WARNED_UNVERIFIED.add(endpoint)
    warnings.filterwarnings("ignore", category=InsecureRequestWarning)
    warnings.warn(
        EkmWarning(
            f"vault.verify = false: the TLS certificate of {endpoint} is not checked, so the "
            "token can be stolen by an impostor; set vault.ca_cert instead"
        ),
        stacklevel=3,
    )


def _dict(value: Any) -> dict[str, Any]:
    """``value`` if it is a JSON object, else an empty one.

    Why: a hostile or broken Vault may answer ``"data": []`` or ``"data": "x"``; chained
    ``.get`` on those raised AttributeError (an internal error) instead of the caller's
    "malformed answer" BackendError, which the empty dict leads to.
    """
    return value if isinstance(value, dict) else {}


def _errors_text(body: dict[str, Any] | None) -> str:
    errors = body.get("errors") if isinstance(body, dict) else None
    if not isinstance(errors, list):
        return ""
    return "; ".join(str(e) for e in errors if isinstance(e, str | int | float))


def _retry_after(value: str | None) -> float | None:
    if not value:
        return None
    try:
        seconds = float(value)
    except ValueError:
        return None
    return seconds if 0 <= seconds < 3600 else None


def _is_version(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value > 0


def _read_credential(path: Path | None, key: str, *, private: bool) -> str:
    """Read a token / secret ID / JWT file: bounded size, one printable line, 0600 if private."""
    from ekm.fsutil import check_private

    if path is None:
        raise ConfigError(f"{key} is not set")
    try:
        if private:
            check_private(path)
        st = path.stat()
        if not stat.S_ISREG(st.st_mode):
            raise ConfigError(f"{key}: {path} is not a regular file")
        if st.st_size > MAX_CREDENTIAL_BYTES:
            raise ConfigError(f"{key}: {path} is larger than {MAX_CREDENTIAL_BYTES} bytes")
        raw = path.read_bytes()[: MAX_CREDENTIAL_BYTES + 1]
    except FileNotFoundError:
        raise ConfigError(f"{key}: {path} does not exist") from None
    except PermissionError:
        raise ConfigError(f"{key}: {path} is not readable by this user") from None
    try:
        text = raw.decode("ascii").strip()
    except UnicodeDecodeError:
        raise ConfigError(f"{key}: {path} does not hold a token (not ASCII)") from None
    if not text or not text.isprintable() or any(c.isspace() for c in text):
        raise ConfigError(f"{key}: {path} must hold exactly one token on one line")
    return text
