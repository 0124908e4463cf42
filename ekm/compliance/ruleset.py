"""Rule sets as data: parse, validate and precompile TOML rule files.

Built-in rule sets ship in ``ekm/compliance/rules/<id>.toml``; an organisation's own file comes
through ``--rules FILE`` and goes through exactly the same validation. Rule files are treated as
hostile input: size-capped, strictly typed, unknown fields rejected (a misspelt requirement must
not silently turn a rule into a pass), and every error names the file, the rule id and the field.

Each rule is compiled once into the set of key types and usages it matches, so evaluation is a
set lookup per key instead of re-reading the rule's match table.
"""

from __future__ import annotations

import re
import sys
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any

from ekm.compliance.checks import CHECKS, PROCESSING_STATES
from ekm.crypto.keytypes import SPECS, KeyState, KeyType, KeyUsage
from ekm.errors import InvalidError, NotFoundError
from ekm.timeutil import UTC

SEVERITIES = ("low", "medium", "high", "critical")
SEVERITY_RANK = {s: i for i, s in enumerate(SEVERITIES)}
FAMILIES = tuple(sorted({s.family for s in SPECS.values()}))
OPERATIONS = {
    # applying protection: encrypt, sign, MAC-generate -> the primary version only
    "applying": frozenset({KeyState.PRIMARY}),
    # processing protection: decrypt, verify -> every version that may still be used
    "processing": PROCESSING_STATES,
    "any": frozenset({KeyState.PRIMARY, KeyState.ACTIVE, KeyState.PENDING, KeyState.DISABLED}),
}
MAX_RULE_FILE = 1 << 20
_ID_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._()-]{0,79}$")
_SET_KEYS = {"id", "title", "version", "description", "changelog", "sources", "rule"}
_RULE_KEYS = {
    "id",
    "title",
    "severity",
    "cite",
    "verified",
    "note",
    "remedy",
    "valid_from",
    "valid_until",
    "match",
    "require",
}
_MATCH_KEYS = {"types", "families", "usages", "operation"}


@dataclass(frozen=True)
class Source:
    """A document a rule set cites."""

    id: str
    title: str
    url: str = ""


@dataclass(frozen=True, eq=False)
class Rule:
    """One compiled rule. ``types`` is every key type the match selects (all for none given)."""

    id: str
    rule_set: str
    title: str
    severity: str
    cite: str
    scope: str  # "key" or "deployment"
    checks: tuple[tuple[str, Any], ...]
    types: frozenset[KeyType] = frozenset()
    usages: frozenset[KeyUsage] | None = None
    operation: str = "any"
    valid_from: datetime | None = None
    valid_until: datetime | None = None  # exclusive
    verified: bool = True
    note: str = ""
    remedy: str = ""

    def in_force(self, as_of: datetime) -> bool:
        """Whether the rule applies at ``as_of`` (valid_from inclusive, valid_until inclusive)."""
        if self.valid_from is not None and as_of < self.valid_from:
            return False
        return not (self.valid_until is not None and as_of >= self.valid_until)

    @property
    def rank(self) -> int:
        return SEVERITY_RANK[self.severity]


@dataclass(frozen=True)
class RuleSet:
    """A named, versioned collection of rules with the sources they cite."""

    id: str
    title: str
    version: str
    sources: tuple[Source, ...]
    rules: tuple[Rule, ...]
    changelog: tuple[str, ...] = ()
    description: str = ""
    path: str = ""
    custom: bool = False


@dataclass(frozen=True)
class RuleSetInfo:
    """What ``ekm audit --list`` shows about a rule set."""

    id: str
    title: str
    version: str
    sources: tuple[Source, ...] = field(default_factory=tuple)
    rules: int = 0


def toml_loads(text: str) -> dict[str, Any]:
    """tomllib on 3.11+, tomli before (the one third-party fallback ekm allows)."""
    if sys.version_info >= (3, 11):
        import tomllib
    else:  # pragma: no cover - exercised on 3.10 only
        import tomli as tomllib
    return tomllib.loads(text)


class _Where:
    """Builds error messages that name the file, the rule and the field."""

    def __init__(self, file: str) -> None:
        self.file = file
        self.rule: str | None = None

    def error(self, fld: str, problem: str) -> InvalidError:
        where = f"rule {self.rule!r}: " if self.rule else ""
        return InvalidError(f"{self.file}: {where}field {fld!r}: {problem}; fix the rule file")


def _str(w: _Where, data: dict, key: str, *, required: bool = True, default: str = "") -> str:
    if key not in data:
        if required:
            raise w.error(key, "missing (required)")
        return default
    value = data[key]
    if not isinstance(value, str) or (required and not value.strip()):
        raise w.error(key, "expected a non-empty string")
    if "\n" in value and key not in ("note", "description", "remedy"):
        raise w.error(key, "expected a single line")
    return value


def _when(w: _Where, data: dict, key: str, *, end: bool) -> datetime | None:
    value = data.get(key)
    if value is None:
        return None
    if isinstance(value, datetime):
        return value if value.tzinfo else value.replace(tzinfo=UTC)
    if isinstance(value, date):
        start = datetime(value.year, value.month, value.day, tzinfo=UTC)
        return start + timedelta(days=1) if end else start
    raise w.error(key, "expected a TOML date such as 2031-01-01")


def _names(w: _Where, match: dict, key: str, choices: tuple[str, ...]) -> frozenset[str] | None:
    if key not in match:
        return None
    value = match[key]
    if not isinstance(value, list) or not value or not all(isinstance(v, str) for v in value):
        raise w.error(f"match.{key}", "expected a non-empty list of strings")
    bad = [v for v in value if v not in choices]
    if bad:
        raise w.error(
            f"match.{key}", f"unknown value {bad[0]!r}; expected one of: " + ", ".join(choices)
        )
    return frozenset(value)


def _compile_rule(w: _Where, raw: Any, set_id: str) -> Rule:
    if not isinstance(raw, dict):
        raise w.error("rule", "expected [[rule]] tables")
    w.rule = None
    rid = raw.get("id")
    if not isinstance(rid, str) or not _ID_RE.match(rid):
        raise w.error("id", "missing or invalid (letters, digits, . _ - ( ); at most 80)")
    w.rule = rid
    unknown = sorted(set(raw) - _RULE_KEYS)
    if unknown:
        allowed = ", ".join(sorted(_RULE_KEYS))
        raise w.error(unknown[0], f"unknown field; expected one of: {allowed}")
    severity = _str(w, raw, "severity")
    if severity not in SEVERITIES:
        raise w.error("severity", f"expected one of: {', '.join(SEVERITIES)}")
    verified = raw.get("verified", True)
    if not isinstance(verified, bool):
        raise w.error("verified", "expected true or false")
    note = _str(w, raw, "note", required=False)
    if not verified and not note.strip():
        raise w.error("note", "an unverified rule needs a note saying what could not be verified")

    match = raw.get("match", {})
    if not isinstance(match, dict):
        raise w.error("match", "expected a table")
    unknown = sorted(set(match) - _MATCH_KEYS)
    if unknown:
        raise w.error(
            f"match.{unknown[0]}",
            "unknown field; expected one of: " + ", ".join(sorted(_MATCH_KEYS)),
        )
    types = _names(w, match, "types", tuple(t.value for t in KeyType))
    families = _names(w, match, "families", FAMILIES)
    usages = _names(w, match, "usages", tuple(u.value for u in KeyUsage))
    operation = match.get("operation", "any")
    if operation not in OPERATIONS:
        raise w.error("match.operation", "expected one of: " + ", ".join(OPERATIONS))

    require = raw.get("require")
    if not isinstance(require, dict) or not require:
        raise w.error("require", "missing or empty; name at least one requirement")
    checks = []
    levels = set()
    for name, value in require.items():
        if name not in CHECKS:
            raise w.error(
                f"require.{name}",
                "unknown requirement; expected one of: " + ", ".join(sorted(CHECKS)),
            )
        try:
            parsed = CHECKS[name].parse(value)
        except ValueError as exc:
            raise w.error(f"require.{name}", str(exc)) from None
        checks.append((name, parsed))
        levels.add("deployment" if CHECKS[name].level == "deployment" else "key")
    if len(levels) > 1:
        raise w.error("require", "mixes deployment and key requirements; split the rule")
    scope = levels.pop()
    if scope == "deployment" and match:
        raise w.error("match", "a deployment rule matches no keys; remove the match table")

    selected = frozenset(
        t
        for t in KeyType
        if (types is None or t.value in types) and (families is None or SPECS[t].family in families)
    )
    if scope == "key" and not selected:
        raise w.error("match", "selects no key type (types and families do not overlap)")
    valid_from = _when(w, raw, "valid_from", end=False)
    valid_until = _when(w, raw, "valid_until", end=True)
    if valid_from and valid_until and valid_until <= valid_from:
        raise w.error("valid_until", "is before valid_from")
    return Rule(
        id=rid,
        rule_set=set_id,
        title=_str(w, raw, "title"),
        severity=severity,
        cite=_str(w, raw, "cite"),
        scope=scope,
        checks=tuple(checks),
        types=selected,
        usages=None if usages is None else frozenset(KeyUsage(u) for u in usages),
        operation=operation,
        valid_from=valid_from,
        valid_until=valid_until,
        verified=verified,
        note=note,
        remedy=_str(w, raw, "remedy", required=False),
    )


def parse_rule_set(text: str, file: str, *, custom: bool = False) -> RuleSet:
    """Parse and validate one rule-set document; InvalidError names file, rule and field."""
    w = _Where(file)
    try:
        data = toml_loads(text)
    except ValueError as exc:  # tomllib.TOMLDecodeError is a ValueError
        raise w.error("(syntax)", f"not valid TOML ({exc})") from None
    except RecursionError:
        raise w.error("(syntax)", "not valid TOML (nested too deeply)") from None
    unknown = sorted(set(data) - _SET_KEYS)
    if unknown:
        raise w.error(
            unknown[0], "unknown top-level field; expected one of: " + ", ".join(sorted(_SET_KEYS))
        )
    set_id = _str(w, data, "id")
    if not _ID_RE.match(set_id):
        raise w.error("id", "invalid rule set id (letters, digits, . _ -)")
    title = _str(w, data, "title")
    version = _str(w, data, "version")
    sources = []
    raw_sources = data.get("sources", [])
    if not isinstance(raw_sources, list) or (not custom and not raw_sources):
        raise w.error("sources", "expected a non-empty list of { id, title, url } tables")
    for src in raw_sources:
        if not isinstance(src, dict) or set(src) - {"id", "title", "url"}:
            raise w.error("sources", "each source is a table with id, title and url")
        sources.append(
            Source(_str(w, src, "id"), _str(w, src, "title"), _str(w, src, "url", required=False))
        )
    changelog = data.get("changelog", [])
    if not isinstance(changelog, list) or not all(isinstance(c, str) for c in changelog):
        raise w.error("changelog", "expected a list of strings")
    raw_rules = data.get("rule")
    if not isinstance(raw_rules, list) or not raw_rules:
        raise w.error("rule", "no [[rule]] tables; a rule set needs at least one rule")
    rules: list[Rule] = []
    seen: set[str] = set()
    for raw in raw_rules:
        rule = _compile_rule(w, raw, set_id)
        if rule.id in seen:
            raise w.error("id", "duplicate rule id in this file")
        seen.add(rule.id)
        rules.append(rule)
    w.rule = None
    return RuleSet(
        id=set_id,
        title=title,
        version=version,
        sources=tuple(sources),
        rules=tuple(rules),
        changelog=tuple(changelog),
        description=_str(w, data, "description", required=False),
        path=file,
        custom=custom,
    )


def read_rule_file(path: str | Path) -> RuleSet:
    """Read an organisation's rule file (``--rules FILE``) with the same validation."""
    p = Path(path)
    try:
        with open(p, "rb") as fh:
            raw = fh.read(MAX_RULE_FILE + 1)
    except FileNotFoundError:
        raise NotFoundError(f"{p}: rule file not found; check the --rules path") from None
    except IsADirectoryError:
        raise InvalidError(f"{p}: is a directory, not a rule file; pass a TOML file") from None
    except OSError as exc:
        raise InvalidError(f"{p}: cannot read rule file ({exc.strerror}); check it") from None
    if len(raw) > MAX_RULE_FILE:
        raise InvalidError(f"{p}: rule file larger than 1 MiB; is this the right file?")
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise InvalidError(f"{p}: rule file is not UTF-8 text; save it as UTF-8 TOML") from None
    return parse_rule_set(text, str(p), custom=True)
