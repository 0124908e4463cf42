"""The compliance engine: rule sets over an inventory -> an :class:`AuditResult`.

Evaluation is linear in keys x matching rules: rules are indexed by key type once per run, so a
key only meets the rules whose match selects its type. Time is a parameter (``as_of``); a rule's
``valid_from`` / ``valid_until`` decide whether it is in force, which is how the 2030 and 2035
transitions arrive without a code change.

Every (rule, key) pair yields pass, fail or unknown. Unknown (a fact not collected) is kept and
reported, never folded into pass, and the result always says how many keys and rules were
evaluated, so an empty inventory cannot pass silently.
"""

from __future__ import annotations

import functools
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field, replace
from datetime import datetime
from pathlib import Path
from typing import Any

from ekm.compliance.checks import CHECKS, FAIL, PASS, UNKNOWN, Context
from ekm.compliance.inventory import DeploymentFacts, Inventory, KeyRecord, VersionRecord
from ekm.compliance.ruleset import (
    OPERATIONS,
    SEVERITIES,
    SEVERITY_RANK,
    Rule,
    RuleSet,
    RuleSetInfo,
    cap_drafts,
    parse_rule_set,
    read_rule_file,
    toml_loads,
)
from ekm.crypto.keytypes import KeyState, KeyType, KeyUsage
from ekm.errors import InvalidError, UsageError

__all__ = [
    "SEVERITIES",
    "AuditResult",
    "CheckResult",
    "evaluate",
    "list_rule_sets",
    "load_custom_rules",
    "load_rule_sets",
    "strength_table",
]


@dataclass(frozen=True, slots=True)
class CheckResult:
    """One verdict: a rule applied to a key version (or to the deployment when key is None)."""

    rule: Rule
    key: str | None
    version: int | None
    status: str  # pass | fail | unknown
    found: str
    required: str
    #: The key judged (None for deployment rules): the facts behind the verdict come from it.
    subject: KeyRecord | None = None

    @property
    def severity(self) -> str:
        return self.rule.severity

    @property
    def message(self) -> str:
        """One line: what was found against what is required, naming key and version."""
        subject = "deployment" if self.key is None else f"key {self.key}"
        if self.version is not None:
            subject += f" v{self.version}"
        verdict = {FAIL: "", UNKNOWN: "not evaluated: ", PASS: "ok: "}[self.status]
        return f"{subject}: {verdict}{self.found} (required: {self.required})"


@dataclass
class AuditResult:
    """Findings (fail), passed and unknown results, and what was evaluated."""

    rule_sets: list[RuleSet]
    as_of: datetime
    home: str
    keystore_file: str
    config_file: str
    findings: list[CheckResult] = field(default_factory=list)
    passed: list[CheckResult] = field(default_factory=list)
    unknown: list[CheckResult] = field(default_factory=list)
    keys_evaluated: int = 0
    rules_evaluated: int = 0
    rules_not_in_force: int = 0
    warnings: list[str] = field(default_factory=list)  # e.g. "master key locked: ..."
    #: When the inventory was taken (``as_of`` is when the rules are judged; they differ
    #: under ``--as-of``).
    collected_at: datetime | None = None
    deployment: DeploymentFacts = field(default_factory=DeploymentFacts)
    enforce_drafts: bool = False

    def at_or_above(self, severity: str) -> list[CheckResult]:
        """Findings whose severity is at least ``severity`` (what ``--fail-on`` tests)."""
        if severity not in SEVERITY_RANK:
            raise UsageError(
                f"unknown severity {severity!r}; expected one of: " + ", ".join(SEVERITIES)
            )
        floor = SEVERITY_RANK[severity]
        return [f for f in self.findings if f.rule.rank >= floor]

    def summary(self) -> dict[str, int]:
        """Finding counts per severity, every severity present (zeros included)."""
        counts = dict.fromkeys(reversed(SEVERITIES), 0)
        for f in self.findings:
            counts[f.rule.severity] += 1
        return counts

    @property
    def rules(self) -> list[Rule]:
        return [r for rs in self.rule_sets for r in rs.rules]


# --- loading -------------------------------------------------------------------------------


def _rules_dir():  # -> importlib.resources.abc.Traversable
    from importlib.resources import files

    return files("ekm.compliance") / "rules"


@functools.lru_cache(maxsize=1)
def _builtin_texts() -> dict[str, str]:
    out = {}
    for entry in _rules_dir().iterdir():
        if entry.name.endswith(".toml"):
            out[entry.name[: -len(".toml")]] = entry.read_text(encoding="utf-8")
    return dict(sorted(out.items()))


@functools.cache
def _builtin(set_id: str) -> RuleSet:
    rs = parse_rule_set(_builtin_texts()[set_id], f"ekm/compliance/rules/{set_id}.toml")
    if rs.id != set_id:
        raise InvalidError(
            f"ekm/compliance/rules/{set_id}.toml: field 'id': is {rs.id!r}; "
            "the id must match the file name"
        )
    return rs


def list_rule_sets() -> list[RuleSetInfo]:
    """The built-in rule sets (id, title, version, sources), sorted by id."""
    return [
        RuleSetInfo(rs.id, rs.title, rs.version, rs.sources, len(rs.rules))
        for rs in (_builtin(i) for i in _builtin_texts())
    ]


def load_rule_sets(ids: list[str] | str, *, enforce_drafts: bool = False) -> list[RuleSet]:
    """Built-in rule sets by id; ``"all"`` (or a comma list) accepted; unknown id: UsageError.

    Rules from draft sources are capped at low unless ``enforce_drafts`` (``--enforce-drafts``).
    """
    known = list(_builtin_texts())
    if isinstance(ids, str):
        ids = known if ids.strip() == "all" else [i.strip() for i in ids.split(",")]
    wanted = [i for i in ids if i]
    if "all" in wanted:
        wanted = known
    if not wanted:
        raise UsageError(
            "no rule set named; pass --compliance ID or all, valid ids: " + ", ".join(known)
        )
    for i in wanted:
        if i not in known:
            raise UsageError(f"unknown rule set {i!r}; valid ids: {', '.join(known)} or all")
    sets = [_builtin(i) for i in dict.fromkeys(wanted)]
    return sets if enforce_drafts else [cap_drafts(rs) for rs in sets]


def builtin_text(set_id: str) -> str:
    """The shipped TOML of a built-in rule set (hashed into evidence bundles)."""
    return _builtin_texts()[set_id]


def find_rule(rule_id: str) -> Rule:
    """A built-in rule by id (``ekm audit --explain``, attestations); UsageError if unknown."""
    for set_id in _builtin_texts():
        for r in _builtin(set_id).rules:
            if r.id == rule_id:
                return r
    from ekm.compliance import integrity

    for r in integrity.RULE_SET.rules:
        if r.id == rule_id:
            return r
    raise UsageError(
        f"unknown rule {rule_id!r}; rule ids are listed in docs/compliance.md "
        "and by ekm audit --format json"
    )


def load_custom_rules(path: str | Path, *, enforce_drafts: bool = False) -> RuleSet:
    """An organisation's rule file; InvalidError names the file, the rule id and the field."""
    rs = read_rule_file(path)
    return rs if enforce_drafts else cap_drafts(rs)


@functools.lru_cache(maxsize=1)
def strength_table() -> dict[str, dict[str, Any]]:
    """Per key type: strength, bits, curve (ekm/compliance/data/strength.toml)."""
    from importlib.resources import files

    text = (files("ekm.compliance") / "data" / "strength.toml").read_text(encoding="utf-8")
    types = toml_loads(text).get("types", {})
    missing = [t.value for t in KeyType if t.value not in types]
    if missing:
        raise InvalidError(
            f"ekm/compliance/data/strength.toml: type {missing[0]!r} has no "
            "strength entry; reinstall ekm"
        )
    return types


# --- evaluation ----------------------------------------------------------------------------


def _representative(key: KeyRecord, states: frozenset[KeyState]) -> VersionRecord | None:
    """The version a key-level rule speaks about: the primary if relevant, else the newest."""
    best = None
    for v in key.versions:
        if v.state in states:
            if v.state is KeyState.PRIMARY:
                return v
            if best is None or v.version > best.version:
                best = v
    return best


def _fingerprint_owners(inv: Inventory) -> dict[str, frozenset[str]]:
    owners: dict[str, set[str]] = defaultdict(set)
    for k in inv.keys:
        for v in k.versions:
            if v.fingerprint and v.material_present:
                owners[v.fingerprint].add(k.name)
    return {fp: frozenset(names) for fp, names in owners.items() if len(names) > 1}


# Checks whose verdict depends on the algorithm: after an algorithm migration they are applied
# to each group of versions sharing a type. Every other check (rotation, backup, storage,
# destruction, ...) describes the key as a whole and runs once, on all its versions.
TYPE_CHECKS = frozenset(
    {"min_strength", "min_key_bits", "allowed_types", "allowed_curves", "disallowed",
     "usage_consistent", "max_age"}
)  # fmt: skip


def _views(key: KeyRecord) -> tuple[tuple[KeyRecord, bool], ...]:
    """The key split by version type, flagged True for the group holding the primary.

    Without a migration (the common case) this is the key itself, with no copy.
    """
    if all(v.key_type is None or v.key_type is key.type for v in key.versions):
        return ((key, True),)
    groups: dict[KeyType, list[VersionRecord]] = {}
    for v in key.versions:
        groups.setdefault(v.key_type or key.type, []).append(v)
    lead = key.primary or max(key.versions, key=lambda v: v.version)
    lead_type = lead.key_type or key.type
    return tuple(
        (replace(key, type=t, versions=tuple(vs)), t is lead_type) for t, vs in groups.items()
    )


def _evaluate_key(
    key: KeyRecord,
    view: KeyRecord,
    is_primary: bool,
    rules: Iterable[Rule],
    ctx: Context,
    sink: dict[str, list[CheckResult]],
) -> None:
    """Apply ``rules`` (already selected by type) to one key view; append to ``sink``."""
    view_reps: dict[str, VersionRecord | None] = {}
    key_reps = view_reps if view is key else {}
    for r in rules:
        if r.usages is not None and key.usage not in r.usages:
            continue
        if r.labels and not _labels_match(r, key):
            continue
        if r.used_beyond is not None and not _used_beyond(key, r.used_beyond, ctx.as_of):
            continue
        states = OPERATIONS[r.operation]
        for name, param in r.checks:
            check = CHECKS[name]
            if name in TYPE_CHECKS:
                subject, reps = view, view_reps
            elif is_primary:
                subject, reps = key, key_reps
            else:
                continue
            rep = None
            if check.level == "key":
                if r.operation not in reps:
                    reps[r.operation] = _representative(subject, states)
                rep = reps[r.operation]
                if rep is None:
                    continue
                o = check.fn(param, subject, rep, ctx)
                outcomes = () if o is None else (o,)
            else:
                outcomes = check.fn(param, subject, ctx, states)
            for o in outcomes:
                ver = o.version if o.version is not None or rep is None else rep.version
                sink[o.status].append(
                    CheckResult(r, key.name, ver, o.status, o.found, o.required, view)
                )


def _labels_match(rule: Rule, key: KeyRecord) -> bool:
    """Every label the rule names has one of its values ("" stands for the label unset)."""
    return all(key.labels.get(name, "") in values for name, values in rule.labels)


def _used_beyond(key: KeyRecord, when: datetime, as_of: datetime) -> bool:
    """Whether the key's planned use extends past ``when``.

    Planned use ends when the primary version is due for rotation (created + rotate_every);
    a key without a rotation interval, or judged after ``when``, is in use beyond it.
    """
    if as_of >= when or key.rotate_every is None:
        return True
    primary = key.primary
    if primary is None:
        return False
    return max(primary.created + key.rotate_every, as_of) >= when


def _check_inventory(inv: Inventory) -> None:
    """Refuse an inventory the rules would misread (naive times, unknown types, duplicates)."""
    seen: set[str] = set()
    for k in inv.keys:
        where = f"inventory of {inv.home}: key {k.name!r}"
        if k.name in seen:
            raise InvalidError(f"{where} is listed twice; key names must be unique")
        seen.add(k.name)
        if not isinstance(k.type, KeyType) or not isinstance(k.usage, KeyUsage):
            raise InvalidError(f"{where}: type and usage must be KeyType/KeyUsage members")
        if k.last_backup is not None and k.last_backup.tzinfo is None:
            raise InvalidError(f"{where}: last_backup has no timezone; use UTC-aware times")
        for v in k.versions:
            if v.key_type is not None and not isinstance(v.key_type, KeyType):
                raise InvalidError(f"{where} version {v.version}: key_type must be a KeyType")
            if v.destroy_after is not None and v.destroy_after.tzinfo is None:
                raise InvalidError(
                    f"{where} version {v.version}: destroy_after has no timezone; "
                    "use UTC-aware times"
                )
            if v.created.tzinfo is None:
                raise InvalidError(
                    f"{where} version {v.version}: created has no timezone; use UTC-aware times"
                )


def evaluate(
    inventory: Inventory, rule_sets: list[RuleSet], *, as_of: datetime | None = None
) -> AuditResult:
    """Apply every in-force rule of ``rule_sets`` to ``inventory`` at ``as_of``.

    ``as_of`` defaults to the inventory's own instant; passing a future date previews the
    transitions (2031: 112-bit for applying protection; 2035: RSA/ECC) with the same data.
    """
    when = as_of or inventory.as_of
    if when.tzinfo is None:
        raise UsageError("as_of must be timezone-aware UTC; pass e.g. 2031-01-01T00:00:00Z")
    _check_inventory(inventory)
    result = AuditResult(
        rule_sets=list(rule_sets),
        as_of=when,
        home=inventory.home,
        keystore_file=inventory.keystore_file,
        config_file=inventory.config_file,
        keys_evaluated=len(inventory.keys),
        collected_at=inventory.as_of,
        deployment=inventory.deployment,
    )
    rules = [r for rs in rule_sets for r in rs.rules]
    in_force = [r for r in rules if r.in_force(when)]
    result.rules_evaluated = len(in_force)
    result.rules_not_in_force = len(rules) - len(in_force)
    by_type: dict[KeyType, list[Rule]] = defaultdict(list)
    for r in in_force:
        if r.scope == "key":
            for t in r.types:
                by_type[t].append(r)
    ctx = Context(when, strength_table(), _fingerprint_owners(inventory), inventory.deployment)
    sink = {FAIL: result.findings, PASS: result.passed, UNKNOWN: result.unknown}

    for r in in_force:
        if r.scope == "deployment":
            for name, param in r.checks:
                arg = r.id if name == "attestation" else param
                o = CHECKS[name].fn(arg, inventory.deployment, ctx)
                if o is not None:
                    sink[o.status].append(CheckResult(r, None, None, o.status, o.found, o.required))

    for key in inventory.keys:
        for view, is_primary in _views(key):
            _evaluate_key(key, view, is_primary, by_type.get(view.type, ()), ctx, sink)
    result.findings.sort(key=lambda f: (-f.rule.rank, f.rule.rule_set, f.rule.id, f.key or ""))
    return result
