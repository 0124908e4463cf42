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
    # processing only (SP 800-57 "legacy use"): superseded versions kept to decrypt/verify
    "legacy": frozenset({KeyState.ACTIVE}),
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
    "source",
    "section",
    "strength",
    "mapping",
    "verified",
    "note",
    "remedy",
    "valid_from",
    "valid_until",
    "match",
    "require",
}
_MATCH_KEYS = {"types", "families", "usages", "operation", "labels", "used_beyond"}
_SOURCE_KEYS = {"id", "title", "url", "publisher", "edition", "date", "status"}
SOURCE_STATUSES = ("final", "draft")
#: A requirement's strength in its source's own words, and the ekm severities it may map to
#: (lowest, highest). The range is the documented mapping (docs/compliance.md, "Severity"):
#: a rule file whose severity falls outside its strength's range is refused.
STRENGTHS: dict[str, tuple[str, str, str]] = {
    "shall": ("medium", "critical", "a mandatory requirement (shall / must / RègleFact)"),
    "required": ("medium", "critical", "a required implementation specification (HIPAA)"),
    "disallowed": ("high", "critical", "the source disallows the use (SP 800-57 / 800-131A)"),
    "control": ("medium", "high", "a security control an assessor tests (SP 800-53, TSC)"),
    "sfr": ("medium", "high", "a security functional requirement of a protection profile"),
    "recommended": ("low", "high", "a recommendation the source's users are held to (BSI)"),
    "should": ("low", "medium", "a recommendation (should / RecomFact)"),
    "addressable": ("low", "medium", "an addressable implementation specification (HIPAA)"),
    "deprecated": ("low", "medium", "allowed with risk accepted by the data owner"),
    "legacy-use": ("low", "low", "processing already-protected data only"),
    "point-of-focus": ("low", "medium", "a TSC point of focus (guidance, not a criterion)"),
}
#: Draft sources never drive more than this unless the operator opts in (--enforce-drafts).
DRAFT_CAP = "low"


@dataclass(frozen=True)
class Source:
    """A document a rule set cites: which edition, of when, by whom, and whether it is final.

    ``status`` is ``final`` or ``draft``; a draft never drives a verdict above
    :data:`DRAFT_CAP` unless the operator opts in.
    """

    id: str
    title: str
    url: str = ""
    publisher: str = ""
    edition: str = ""
    date: str = ""
    status: str = "final"

    @property
    def draft(self) -> bool:
        return self.status == "draft"

    def to_dict(self) -> dict[str, str]:
        return {
            "id": self.id,
            "title": self.title,
            "publisher": self.publisher,
            "edition": self.edition,
            "date": self.date,
            "status": self.status,
            "url": self.url,
        }


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
    source: Source | None = None
    section: str = ""
    strength: str = ""
    mapping: str = ""
    declared_severity: str = ""  # the rule file's severity before a draft cap
    labels: tuple[tuple[str, frozenset[str]], ...] = ()
    used_beyond: datetime | None = None  # only keys whose planned use extends past this

    @property
    def draft(self) -> bool:
        return self.source is not None and self.source.draft

    @property
    def capped(self) -> bool:
        """Whether a draft source lowered this rule's severity (see :func:`cap_drafts`)."""
        return bool(self.declared_severity) and self.declared_severity != self.severity

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


def _sources(w: _Where, raw: Any, *, custom: bool) -> list[Source]:
    """The set's sources; built-in sets must say publisher, edition, date and status."""
    if not isinstance(raw, list) or (not custom and not raw):
        raise w.error("sources", "expected a non-empty list of { id, title, url, ... } tables")
    out: list[Source] = []
    for src in raw:
        if not isinstance(src, dict) or set(src) - _SOURCE_KEYS:
            raise w.error(
                "sources", "each source is a table of: " + ", ".join(sorted(_SOURCE_KEYS))
            )
        full = not custom
        status = _str(w, src, "status", required=False, default="final")
        if status not in SOURCE_STATUSES:
            raise w.error("sources.status", "expected final or draft")
        source = Source(
            id=_str(w, src, "id"),
            title=_str(w, src, "title"),
            url=_str(w, src, "url", required=False),
            publisher=_str(w, src, "publisher", required=full),
            edition=_str(w, src, "edition", required=full),
            date=_str(w, src, "date", required=full),
            status=status,
        )
        if source.date and not re.fullmatch(r"\d{4}(-\d{2}){0,2}", source.date):
            raise w.error("sources.date", "expected YYYY, YYYY-MM or YYYY-MM-DD")
        if any(x.id == source.id for x in out):
            raise w.error("sources.id", f"duplicate source id {source.id!r}")
        out.append(source)
    return out


def _labels(w: _Where, match: dict) -> tuple[tuple[str, frozenset[str]], ...]:
    raw = match.get("labels")
    if raw is None:
        return ()
    if not isinstance(raw, dict) or not raw:
        raise w.error("match.labels", 'expected a table such as { "cnsa-use" = ["web-cloud"] }')
    out = []
    for name, values in raw.items():
        if (
            not isinstance(values, list)
            or not values
            or not all(isinstance(v, str) for v in values)
        ):
            raise w.error(f"match.labels.{name}", 'expected a list of values ("" = label unset)')
        out.append((name, frozenset(values)))
    return tuple(sorted(out))


def _strength_severity(w: _Where, strength: str, severity: str) -> str:
    if strength not in STRENGTHS:
        raise w.error("strength", "expected one of: " + ", ".join(STRENGTHS))
    low, high, _ = STRENGTHS[strength]
    if not SEVERITY_RANK[low] <= SEVERITY_RANK[severity] <= SEVERITY_RANK[high]:
        raise w.error(
            "severity",
            f"{severity!r} is outside the range {low}..{high} documented for strength {strength!r}",
        )
    return strength


def _compile_rule(
    w: _Where, raw: Any, set_id: str, sources: dict[str, Source], *, custom: bool = True
) -> Rule:
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
    labels = _labels(w, match)
    used_beyond = _when(w, match, "used_beyond", end=True)

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
    source_id = _str(w, raw, "source", required=not custom)
    source = sources.get(source_id) if source_id else None
    if source_id and source is None:
        raise w.error("source", f"{source_id!r} is not among the set's sources")
    section = _str(w, raw, "section", required=not custom)
    strength = _str(w, raw, "strength", required=not custom)
    if strength:
        _strength_severity(w, strength, severity)
    cite = _str(w, raw, "cite", required=source is None)
    if not cite and source is not None:
        edition = f" {source.edition}" if source.edition else ""
        draft = " (draft)" if source.draft else ""
        cite = f"{source.id}{edition}{draft}, {section}" if section else f"{source.id}{edition}"
    return Rule(
        id=rid,
        rule_set=set_id,
        title=_str(w, raw, "title"),
        severity=severity,
        cite=cite,
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
        source=source,
        section=section,
        strength=strength,
        mapping=_str(w, raw, "mapping", required=False),
        declared_severity=severity,
        labels=labels,
        used_beyond=used_beyond,
    )


def cap_drafts(rule_set: RuleSet) -> RuleSet:
    """``rule_set`` with every rule from a draft source capped at :data:`DRAFT_CAP`.

    A draft can change before it is final; an auditor would not accept it as the basis of a
    high finding, so by default it yields a warning-level (low) finding. The declared
    severity stays on the rule (``declared_severity``) and every report shows both.
    """
    from dataclasses import replace

    cap = SEVERITY_RANK[DRAFT_CAP]
    rules = tuple(
        replace(r, severity=DRAFT_CAP) if r.draft and r.rank > cap else r for r in rule_set.rules
    )
    return replace(rule_set, rules=rules)


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
    sources = _sources(w, data.get("sources", []), custom=custom)
    changelog = data.get("changelog", [])
    if not isinstance(changelog, list) or not all(isinstance(c, str) for c in changelog):
        raise w.error("changelog", "expected a list of strings")
    raw_rules = data.get("rule")
    if not isinstance(raw_rules, list) or not raw_rules:
        raise w.error("rule", "no [[rule]] tables; a rule set needs at least one rule")
    rules: list[Rule] = []
    seen: set[str] = set()
    by_id = {src.id: src for src in sources}
    for raw in raw_rules:
        rule = _compile_rule(w, raw, set_id, by_id, custom=custom)
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
