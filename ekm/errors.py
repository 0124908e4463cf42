"""The EkmError hierarchy.

Every failure a user can hit is one of these: it carries the process exit code of the CLI
contract (CLI.md) and a one-line message that says what was wrong and what to do. Messages
never contain key material, passphrases, PINs or tokens.
"""

from __future__ import annotations


class EkmError(Exception):
    """Base class: a failure with a defined exit code and a one-line message."""

    exit_code: int = 1

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message.splitlines()[0] if message else type(self).__name__

    def __str__(self) -> str:
        return self.message


class UsageError(EkmError):
    """Bad flag combination or value (exit 2)."""

    exit_code = 2


class NotFoundError(EkmError):
    """Unknown key, version, rule set or file; missing home (exit 3)."""

    exit_code = 3


class InvalidError(EkmError):
    """Malformed input: config, rule file, key metadata, invalid state transition (exit 3)."""

    exit_code = 3


class ConfigError(InvalidError):
    """The configuration file is missing, unreadable or invalid (exit 3)."""


class KeyExistsError(InvalidError):
    """A key with that name already exists (exit 3)."""


class StateError(InvalidError):
    """An operation is not allowed in the key's current state (exit 3)."""


class IntegrityError(EkmError):
    """Tampering, wrong passphrase, bad ciphertext or MAC: refused for safety (exit 4)."""

    exit_code = 4


class UnsafePermissionsError(IntegrityError):
    """A file or directory is readable by group or others, or owned by someone else (exit 4)."""


class AuditLogError(IntegrityError):
    """The audit log cannot be written or its chain is broken; fail closed (exit 4)."""


class LockBusyError(IntegrityError):
    """Another ekm process holds the keystore lock and did not release it in time (exit 4)."""


class StorageError(IntegrityError):
    """A write failed (disk full, I/O error); the previous state was kept (exit 4)."""


class NotDurableError(StorageError):
    """A file was replaced but flushing it failed: the new state is visible, maybe not durable.

    Unlike its parent this does not mean "nothing changed"; callers that record what happened
    (the audit log's intent and commit) must treat the change as made.
    """


class BackendError(EkmError):
    """A backend (HSM, Vault, webhook) is unreachable or refuses (exit 5)."""

    exit_code = 5


class BackendAuthError(IntegrityError):
    """A backend refused our credentials (wrong PIN, bad token): exit 4, never retried."""


class EkmWarning(UserWarning):
    """A risky but allowed setting (e.g. ``vault.verify = false``).

    Raised with :func:`warnings.warn` from the core, which never prints; the CLI shows it as
    one ``ekm: warning: ...`` line on stderr, an application sees a normal Python warning.
    """
