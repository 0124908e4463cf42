"""Vault ACL policies, reduced to what ekm's tests exercise.

A policy maps path globs to capabilities. As in Vault, a trailing ``*`` is a prefix match, a
``+`` matches exactly one path segment, the most specific rule of each policy wins, the
policies of a token are unioned, and ``deny`` beats everything.
"""

from __future__ import annotations

CAPABILITIES = frozenset({"create", "read", "update", "patch", "delete", "list", "sudo", "deny"})

# Vault's built-in "default" policy, the parts ekm relies on.
DEFAULT_POLICY: dict[str, list[str]] = {
    "auth/token/lookup-self": ["read"],
    "auth/token/renew-self": ["update"],
    "auth/token/revoke-self": ["update"],
}


def _matches(rule: str, path: str) -> bool:
    glob = rule.endswith("*")
    rparts = (rule[:-1] if glob else rule).split("/")
    pparts = path.split("/")
    if len(pparts) < len(rparts) or (not glob and len(pparts) != len(rparts)):
        return False
    for i, r in enumerate(rparts):
        p = pparts[i]
        if r == "+":
            continue
        if glob and i == len(rparts) - 1:
            return p.startswith(r)
        if r != p:
            return False
    return True


def _specificity(rule: str) -> tuple[int, int, int]:
    """Exact beats glob; then fewer ``+``; then the longer prefix (Vault's priority order)."""
    return (0 if rule.endswith("*") else 1, -rule.count("+"), len(rule))


def capabilities(
    policies: dict[str, dict[str, list[str]]], names: list[str], path: str
) -> set[str]:
    """The capabilities the named policies grant on ``path``."""
    if "root" in names:
        return set(CAPABILITIES - {"deny"})
    granted: set[str] = set()
    for name in names:
        rules = DEFAULT_POLICY if name == "default" else policies.get(name, {})
        best = [r for r in rules if _matches(r, path)]
        if not best:
            continue
        rule = max(best, key=_specificity)
        caps = set(rules[rule])
        if "deny" in caps:
            return {"deny"}
        granted |= caps
    return granted


def any_capability_under(
    policies: dict[str, dict[str, list[str]]], names: list[str], prefix: str
) -> bool:
    """Whether the token can do anything under ``prefix`` (Vault's check for ui/mounts)."""
    if "root" in names:
        return True
    for name in names:
        rules = DEFAULT_POLICY if name == "default" else policies.get(name, {})
        for rule, caps in rules.items():
            if "deny" in caps:
                continue
            if rule.startswith(prefix) or prefix.startswith(rule.rstrip("*")):
                return True
    return False
