"""Shell-completion callbacks for ``ekm``'s arguments and options.

A completion runs on every <TAB>, inside the operator's shell, often on a host where the
master key is an HSM or a passphrase. So these callbacks read key *names* from metadata only:
no master key, no unlock, no audit record, no network (a Vault-backed keystore completes
nothing rather than stall the shell). Every failure is swallowed and completes nothing: a
completion must never print an error into the middle of a command line.

Each callback takes ``(ctx, incomplete)``; typer passes them by name.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterable
from typing import Any

#: ``ekm audit --format``
AUDIT_FORMATS = ("table", "json", "sarif", "junit", "markdown")
#: ``ekm report --format``
REPORT_FORMATS = ("html", "pdf", "markdown", "json")
#: ``ekm keys export --format``
EXPORT_FORMATS = ("pem", "der", "jwk", "jwks", "raw")
SEVERITIES = ("low", "medium", "high", "critical")
MASTER_KEY_SOURCES = ("file", "passphrase", "pkcs11", "vault-transit")
KEY_BACKENDS = ("file", "pkcs11", "vault")
STORE_BACKENDS = ("file", "vault")


def _matching(choices: Iterable[str], incomplete: str) -> list[str]:
    return [c for c in choices if c.startswith(incomplete or "")]


def _global(ctx: Any, name: str) -> str | None:
    """A global option (``--home``, ``--config``) as typed before the command, if any."""
    with contextlib.suppress(Exception):
        value = ctx.find_root().params.get(name)
        if value:
            return str(value)
    return None


def stored_key_names(home: str | None = None, config: str | None = None) -> list[str]:
    """Names of the keys in a home's file keystore, from metadata only; [] on any failure.

    Why through the manager: it knows where the keystore of this home lives (``--home``,
    ``EKM_HOME``, the default) and checks the directory is private before listing it.
    """
    try:
        from ekm.manager import KeyManager

        mgr = KeyManager(home, config, env=os.environ)
        if mgr.config.get("storage", "backend") != "file":
            return []  # listing a remote keystore could hang the shell
        return list(mgr.keystore.names())
    except Exception:  # a completion must never fail loudly
        return []


def key_names(ctx: Any, incomplete: str) -> list[str]:
    """Key names of the current home (``ekm rotate <TAB>``, ``--key <TAB>``)."""
    names = stored_key_names(_global(ctx, "home"), _global(ctx, "config"))
    already: set[str] = set()
    with contextlib.suppress(Exception):
        given = ctx.params.get("names") or ()
        already = {str(n) for n in given}
    return [n for n in _matching(names, incomplete) if n not in already]


def key_types(ctx: Any, incomplete: str) -> list[str]:
    """Every key type ekm knows (``--type``, ``--to-type``)."""
    from ekm.crypto.keytypes import KeyType

    return _matching((t.value for t in KeyType), incomplete)


def key_usages(ctx: Any, incomplete: str) -> list[str]:
    """Every key usage (``--usage``)."""
    from ekm.crypto.keytypes import KeyUsage

    return _matching((u.value for u in KeyUsage), incomplete)


def builtin_rule_sets() -> list[str]:
    """Ids of the rule sets shipped in ``ekm/compliance/rules`` (file names, not parsed)."""
    try:
        from importlib.resources import files

        rules = files("ekm.compliance") / "rules"
        return sorted(e.name[: -len(".toml")] for e in rules.iterdir() if e.name.endswith(".toml"))
    except Exception:
        return []


def rule_sets(ctx: Any, incomplete: str) -> list[str]:
    """``--compliance ID[,ID...]|all``: completes the last id of a comma list."""
    head, _, last = (incomplete or "").rpartition(",")
    prefix = f"{head}," if head else ""
    taken = set(head.split(",")) if head else set()
    ids = [i for i in builtin_rule_sets() if i not in taken]
    if not head:
        ids.append("all")
    return [prefix + i for i in _matching(ids, last)]


def _choices(values: tuple[str, ...]):
    def complete(ctx: Any, incomplete: str) -> list[str]:
        return _matching(values, incomplete)

    complete.__doc__ = "One of: " + ", ".join(values) + "."
    return complete


audit_formats = _choices(AUDIT_FORMATS)
report_formats = _choices(REPORT_FORMATS)
export_formats = _choices(EXPORT_FORMATS)
severities = _choices(SEVERITIES)
master_key_sources = _choices(MASTER_KEY_SOURCES)
key_backends = _choices(KEY_BACKENDS)
store_backends = _choices(STORE_BACKENDS)
