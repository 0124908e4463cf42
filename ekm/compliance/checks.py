"""The requirement kinds a rule can state, and how each one is checked.

Rule files are data: a rule's ``[rule.require]`` table names one or more of the checks below
with a parameter. Keeping the vocabulary small and closed means a typo in an organisation's
rule file is an error (not a silently disabled rule) and every check has tests of its own.

A check returns ``None`` when it does not apply (a backup rule on a key whose policy needs no
backup), otherwise an :class:`Outcome` with status ``pass``, ``fail`` or ``unknown`` (the fact it
needs was not collected). ``found`` and ``required`` are short human phrases; they name types,
dates, counts and paths, never key material.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from ekm.compliance.inventory import DeploymentFacts, KeyRecord, VersionRecord
from ekm.crypto.keytypes import TYPE_NAMES, KeyState
from ekm.timeutil import format_duration, iso, parse_duration

PASS, FAIL, UNKNOWN = "pass", "fail", "unknown"

STORAGE_CLASSES = (
    "hsm",  # pkcs11 backend: the key never leaves the token
    "kms",  # vault backend: the key is held by Vault
    "wrapped-hsm",  # file backend, master key unwrapped by an HSM
    "wrapped-kms",  # file backend, master key unwrapped by Vault Transit
    "wrapped-passphrase",  # file backend, master key derived from a passphrase
    "wrapped-keyfile",  # file backend, master key in a plain file beside the store
)
MODULE_LEVELS = ("fips-140-3", "fips-140-2")
KDF_NAMES = ("argon2id", "scrypt", "pbkdf2-hmac-sha256", "pbkdf2-hmac-sha512")
_PROCESSING = frozenset({KeyState.PRIMARY, KeyState.ACTIVE, KeyState.PENDING})


@dataclass(frozen=True, slots=True)
class Outcome:
    """The verdict of one check on one key version (or on the deployment)."""

    status: str
    found: str
    required: str
    version: int | None = None


@dataclass(frozen=True, slots=True)
class Context:
    """What checks may consult beyond the key: the instant, the strength table, other keys."""

    as_of: datetime
    strength: dict[str, dict[str, Any]]
    fingerprint_owners: dict[str, frozenset[str]]
    deployment: DeploymentFacts


# --- parameter parsers: value -> parsed, raising ValueError("expected ...") -------------------


def _p_true(value: Any) -> bool:
    if value is not True:
        raise ValueError("expected true (set the field to true or remove it)")
    return True


def _p_int(value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
        raise ValueError("expected a positive integer")
    return value


def _p_duration(value: Any) -> timedelta:
    if not isinstance(value, str):
        raise ValueError('expected a duration string such as "730d"')
    return parse_duration(value)


def _p_list(choices: tuple[str, ...] | None) -> Callable[[Any], frozenset[str]]:
    def parse(value: Any) -> frozenset[str]:
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            raise ValueError("expected a list of strings")
        if choices is not None:
            bad = [v for v in value if v not in choices]
            if bad:
                raise ValueError(f"unknown value {bad[0]!r}; expected one of: {', '.join(choices)}")
        return frozenset(value)

    return parse


def _p_usage_limit(value: Any) -> tuple[int, float]:
    if not isinstance(value, dict) or set(value) - {"max", "warn_at"} or "max" not in value:
        raise ValueError("expected a table { max = N, warn_at = 0.9 }")
    limit = _p_int(value["max"])
    warn = value.get("warn_at", 1.0)
    if isinstance(warn, bool) or not isinstance(warn, (int, float)) or not 0 < warn <= 1:
        raise ValueError("expected warn_at to be a number in (0, 1]")
    return limit, float(warn)


# --- key-level checks: evaluated once per key on its representative version -----------------


def _strength(ctx: Context, key: KeyRecord) -> dict[str, Any]:
    return ctx.strength[key.type.value]


def c_min_strength(p: int, key: KeyRecord, v: VersionRecord, ctx: Context) -> Outcome:
    got = _strength(ctx, key)["strength"]
    st = PASS if got >= p else FAIL
    return Outcome(
        st, f"{key.type} provides {got}-bit security strength", f">= {p} bits", v.version
    )


def c_min_key_bits(p: int, key: KeyRecord, v: VersionRecord, ctx: Context) -> Outcome:
    got = _strength(ctx, key)["bits"]
    st = PASS if got >= p else FAIL
    return Outcome(st, f"{key.type} has a {got}-bit key", f"key size >= {p} bits", v.version)


def c_allowed_types(p: frozenset[str], key: KeyRecord, v: VersionRecord, ctx: Context) -> Outcome:
    st = PASS if key.type.value in p else FAIL
    need = "one of " + ", ".join(sorted(p)) if p else "no key of this kind"
    return Outcome(st, f"type {key.type}", need, v.version)


def c_allowed_curves(p: frozenset[str], key: KeyRecord, v: VersionRecord, ctx: Context) -> Outcome:
    curve = _strength(ctx, key).get("curve")
    if curve is None:
        return Outcome(PASS, f"{key.type} uses no elliptic curve", "n/a", v.version)
    st = PASS if curve in p else FAIL
    return Outcome(st, f"curve {curve}", "curve one of " + ", ".join(sorted(p)), v.version)


def c_disallowed(p: bool, key: KeyRecord, v: VersionRecord, ctx: Context) -> Outcome:
    return Outcome(FAIL, f"type {key.type} in use", "no key of this kind", v.version)


def c_max_age(p: timedelta, key: KeyRecord, v: VersionRecord, ctx: Context) -> Outcome:
    age = ctx.as_of - v.created
    st = PASS if age <= p else FAIL
    found = f"version {v.version} created {iso(v.created)} ({max(age.days, 0)}d old)"
    return Outcome(st, found, f"cryptoperiod <= {format_duration(p)}", v.version)


def c_rotation_defined(p: bool, key: KeyRecord, v: VersionRecord, ctx: Context) -> Outcome:
    if key.rotate_every is None:
        return Outcome(FAIL, "no rotation interval", "a defined cryptoperiod (rotate_every)")
    found = f"rotates every {format_duration(key.rotate_every)}"
    return Outcome(PASS, found, "a defined cryptoperiod (rotate_every)")


def c_max_rotate_every(p: timedelta, key: KeyRecord, v: VersionRecord, ctx: Context) -> Outcome:
    need = f"rotate_every <= {format_duration(p)}"
    if key.rotate_every is None:
        return Outcome(FAIL, "no rotation interval", need)
    st = PASS if key.rotate_every <= p else FAIL
    return Outcome(st, f"rotates every {format_duration(key.rotate_every)}", need)


def c_rotation_current(p: bool, key: KeyRecord, v: VersionRecord, ctx: Context) -> Outcome | None:
    if key.rotate_every is None or v.state is not KeyState.PRIMARY:
        return None
    due = v.created + key.rotate_every
    need = f"rotated every {format_duration(key.rotate_every)}"
    if due <= ctx.as_of:
        overdue = (ctx.as_of - due).days
        return Outcome(FAIL, f"rotation due {iso(due)}, {overdue}d overdue", need, v.version)
    return Outcome(PASS, f"next rotation {iso(due)}", need, v.version)


def c_backup_current(p: bool, key: KeyRecord, v: VersionRecord, ctx: Context) -> Outcome | None:
    if not key.backup_required:
        return None
    need = "a backup taken after the newest version was created"
    newest = max(
        (x for x in key.versions if x.state is not KeyState.DESTROYED),
        key=lambda x: x.version,
        default=None,
    )
    if key.last_backup is None:
        return Outcome(FAIL, "no backup recorded", need, v.version)
    if newest is not None and key.last_backup < newest.created:
        found = f"last backup {iso(key.last_backup)} predates version {newest.version}"
        return Outcome(FAIL, found, need, newest.version)
    return Outcome(PASS, f"last backup {iso(key.last_backup)}", need, v.version)


def c_usage_consistent(p: bool, key: KeyRecord, v: VersionRecord, ctx: Context) -> Outcome:
    from ekm.crypto.keytypes import spec

    need = "one key, one purpose: the declared usage only"
    if key.usage not in spec(key.type).usages:
        return Outcome(FAIL, f"{key.type} declared for {key.usage}", need, v.version)
    extra = sorted({str(u) for u in key.observed_usages} - {key.usage.value})
    if extra:
        found = f"declared for {key.usage} but also used for {', '.join(extra)}"
        return Outcome(FAIL, found, need, v.version)
    return Outcome(PASS, f"used for {key.usage} only", need, v.version)


def _storage_class(key: KeyRecord, d: DeploymentFacts) -> str | None:
    if key.backend == "pkcs11":
        return "hsm"
    if key.backend == "vault":
        return "kms"
    if key.backend != "file":
        return f"unknown backend {key.backend!r}"
    return {
        "pkcs11": "wrapped-hsm",
        "vault-transit": "wrapped-kms",
        "passphrase": "wrapped-passphrase",
        "key-file": "wrapped-keyfile",
    }.get(d.master_key_source or "")


def c_storage(p: frozenset[str], key: KeyRecord, v: VersionRecord, ctx: Context) -> Outcome:
    need = "stored as " + " or ".join(sorted(p))
    cls = _storage_class(key, ctx.deployment)
    if cls is None:
        return Outcome(UNKNOWN, "master key source not checked", need, v.version)
    return Outcome(PASS if cls in p else FAIL, f"stored {cls}", need, v.version)


def c_validated_module(
    p: frozenset[str], key: KeyRecord, v: VersionRecord, ctx: Context
) -> Outcome:
    need = "held in a module with a " + " or ".join(sorted(p)) + " certificate"
    table = ctx.deployment.module_validation
    if table is None or key.backend not in table:
        return Outcome(UNKNOWN, f"validation of the {key.backend} module not checked", need)
    got = table[key.backend]
    found = f"{key.backend} module: " + ("not validated" if got == "none" else got)
    return Outcome(PASS if got in p else FAIL, found, need, v.version)


def c_required_labels(p: frozenset[str], key: KeyRecord, v: VersionRecord, ctx: Context) -> Outcome:
    missing = sorted(x for x in p if not key.labels.get(x))
    need = "labels " + ", ".join(sorted(p))
    if missing:
        return Outcome(FAIL, "missing label " + ", ".join(missing), need)
    return Outcome(PASS, "labels present", need)


def c_unique_material(p: bool, key: KeyRecord, v: VersionRecord, ctx: Context) -> Outcome:
    need = "material not shared with another key"
    prints = [x for x in key.versions if x.fingerprint and x.material_present]
    if not prints and key.versions:
        return Outcome(UNKNOWN, "no material fingerprints collected", need)
    for x in prints:
        others = ctx.fingerprint_owners.get(x.fingerprint or "", frozenset()) - {key.name}
        if others:
            found = f"version {x.version} has the same material as {', '.join(sorted(others))}"
            return Outcome(FAIL, found, need, x.version)
    return Outcome(PASS, "material unique", need)


_SEALS_DATA_KEYS = frozenset({"encryption", "key-wrapping", "key-agreement"})
#: Every ekm encryption (and key-agreement) key seals a 256-bit data key (docs/FORMAT.md).
DATA_KEY_STRENGTH = 256


def c_kek_strength(p: bool, key: KeyRecord, v: VersionRecord, ctx: Context) -> Outcome:
    """A key-encrypting key at least as strong as what it protects (SP 800-57 Pt 1 5.6.1).

    Two KEKs are judged: the key itself when it seals 256-bit data keys (every encryption
    key does), and the master key that wraps the key's material in the file keystore.
    Strengths above 256 bits count as 256 (SP 800-57 Table 2 ends there).
    """
    need = "every key-encrypting key at least as strong as the keys it protects"
    own = min(_strength(ctx, key)["strength"], DATA_KEY_STRENGTH)
    if key.usage.value in _SEALS_DATA_KEYS and own < DATA_KEY_STRENGTH:
        found = f"{key.type} ({own}-bit) seals {DATA_KEY_STRENGTH}-bit data keys"
        return Outcome(FAIL, found, need, v.version)
    parts = []
    if key.usage.value in _SEALS_DATA_KEYS:
        parts.append(f"{key.type} ({own}-bit) seals {DATA_KEY_STRENGTH}-bit data keys")
    if key.backend == "file":
        master = ctx.deployment.master_key_strength
        if master is None:
            src = ctx.deployment.master_key_source or "unknown source"
            found = f"master key from {src}: its strength cannot be measured"
            return Outcome(UNKNOWN, found, need, v.version)
        if master < own:
            found = f"{master}-bit master key wraps a {own}-bit {key.type} key"
            return Outcome(FAIL, found, need, v.version)
        parts.append(f"{master}-bit master key wraps it")
    else:
        parts.append(f"material held by the {key.backend} backend, never wrapped by ekm")
    return Outcome(PASS, "; ".join(parts), need, v.version)


# --- version-level checks: each returns a list of outcomes over the versions it concerns ------


def c_material_destroyed(p: bool, key: KeyRecord, ctx: Context, rel: frozenset) -> list[Outcome]:
    need = "material of destroyed versions erased"
    out = []
    for x in key.versions:
        if x.state is not KeyState.DESTROYED:
            continue
        if x.material_present is None:
            found = "material not checked (backend unreachable)"
            out.append(Outcome(UNKNOWN, found, need, x.version))
        elif not x.material_present:
            out.append(Outcome(PASS, "erased", need, x.version))
        elif x.destroy_after is not None and x.destroy_after > ctx.as_of:
            found = f"kept for recovery until {iso(x.destroy_after)}"
            out.append(Outcome(PASS, found, need, x.version))
        elif x.destroy_after is not None:
            found = f"recovery window ended {iso(x.destroy_after)}, material still present"
            out.append(Outcome(FAIL, found, need, x.version))
        else:
            out.append(Outcome(FAIL, "destroyed but material still present", need, x.version))
    return out


def c_usage_limit(p: tuple[int, float], key: KeyRecord, ctx: Context, rel: frozenset) -> list:
    limit, warn = p
    threshold = int(limit * warn)
    need = f"fewer than {threshold} uses per version (limit {limit})"
    out = []
    for x in key.versions:
        if x.state in rel:
            st = FAIL if x.usage_count >= threshold else PASS
            out.append(Outcome(st, f"{x.usage_count} uses", need, x.version))
    return out


def c_retire_after(p: timedelta, key: KeyRecord, ctx: Context, rel: frozenset) -> list[Outcome]:
    need = f"superseded versions disabled or destroyed within {format_duration(p)}"
    ordered = sorted(key.versions, key=lambda x: x.version)
    out = []
    for x, nxt in itertools.pairwise(ordered):
        if x.state is KeyState.ACTIVE:
            late = ctx.as_of - nxt.created > p
            found = f"still active, superseded {iso(nxt.created)}"
            out.append(Outcome(FAIL if late else PASS, found, need, x.version))
    return out


# --- deployment-level checks -----------------------------------------------------------------


def _unknown(fact: str, need: str) -> Outcome:
    return Outcome(UNKNOWN, f"{fact} not checked", need)


def d_private_files(p: bool, d: DeploymentFacts, ctx: Context) -> Outcome:
    need = "home 0700, files 0600, readable by the owner only"
    if d.unsafe_paths is None:
        return _unknown("file permissions", need)
    if d.unsafe_paths:
        shown = ", ".join(list(d.unsafe_paths)[:3])
        more = f" and {len(d.unsafe_paths) - 3} more" if len(d.unsafe_paths) > 3 else ""
        return Outcome(FAIL, f"group/other can access {shown}{more}", need)
    return Outcome(PASS, "permissions private", need)


def d_master_key_sources(p: frozenset[str], d: DeploymentFacts, ctx: Context) -> Outcome:
    need = "master key from " + " or ".join(sorted(p))
    if d.master_key_source is None:
        return _unknown("master key source", need)
    st = PASS if d.master_key_source in p else FAIL
    return Outcome(st, f"master key from {d.master_key_source}", need)


def d_approved_kdfs(p: frozenset[str], d: DeploymentFacts, ctx: Context) -> Outcome | None:
    need = "passphrase KDF one of " + ", ".join(sorted(p))
    if d.master_key_source is None:
        return _unknown("master key source", need)
    if d.master_key_source != "passphrase":
        return None
    if d.passphrase_kdf is None:
        return _unknown("passphrase KDF", need)
    st = PASS if d.passphrase_kdf in p else FAIL
    return Outcome(st, f"master key derived with {d.passphrase_kdf}", need)


def d_keystore_mac(p: bool, d: DeploymentFacts, ctx: Context) -> Outcome:
    need = "keystore metadata MAC verifies"
    if d.keystore_mac_ok is None:
        return _unknown("keystore MAC (needs the master key)", need)
    if d.keystore_mac_ok:
        return Outcome(PASS, "MAC verified", need)
    return Outcome(FAIL, "keystore MAC does not verify (tampering or corruption)", need)


def d_audit_log(p: bool, d: DeploymentFacts, ctx: Context) -> Outcome:
    need = "audit log present with an intact hash chain"
    if d.audit_log_present is None:
        return _unknown("audit log", need)
    if not d.audit_log_present:
        return Outcome(FAIL, "no audit log", need)
    if d.audit_chain_ok is None:
        return _unknown("audit log chain", need)
    if not d.audit_chain_ok:
        return Outcome(FAIL, "audit log chain broken", need)
    return Outcome(PASS, "audit log chain intact", need)


def d_no_pin_in_config(p: bool, d: DeploymentFacts, ctx: Context) -> Outcome:
    need = "HSM PIN from the environment or a prompt, not the config file"
    if d.hsm_pin_in_config is None:
        return _unknown("HSM PIN location", need)
    if d.hsm_pin_in_config:
        return Outcome(FAIL, "HSM PIN written in the config file", need)
    return Outcome(PASS, "no PIN in the config file", need)


def d_master_key_cryptoperiod(p: timedelta, d: DeploymentFacts, ctx: Context) -> Outcome:
    """The master key (a symmetric key-wrapping key) within its cryptoperiod.

    ``master.json`` records the creation time since ekm 1.x; older homes have none. Then the
    earliest verified audit record bounds the age from below: past the period that alone is a
    finding; otherwise the age is unknown and the result says so.
    """
    need = f"master key younger than {format_duration(p)} (then re-key the home)"
    if d.master_key_source is None:
        return _unknown("master key creation time", need)
    created = d.master_key_created
    if created is not None:
        if d.master_key_created_authentic is False:
            return Outcome(FAIL, "master.json creation time does not authenticate", need)
        age = ctx.as_of - created
        how = "" if d.master_key_created_authentic else " (not authenticated: master key locked)"
        found = f"master key created {iso(created)} ({max(age.days, 0)}d old){how}"
        if d.master_key_created_authentic is None and age <= p:
            return Outcome(UNKNOWN, found, need)
        return Outcome(PASS if age <= p else FAIL, found, need)
    first = d.master_key_first_seen
    if first is not None and ctx.as_of - first > p:
        age = (ctx.as_of - first).days
        found = (
            f"master.json records no creation time; the audit log shows the key in use since "
            f"{iso(first)} ({age}d)"
        )
        return Outcome(FAIL, found, need)
    found = "master.json records no creation time (home deployed before ekm recorded it)"
    if first is not None:
        found += f"; in use since at least {iso(first)}"
    return Outcome(UNKNOWN, found, need)


def d_attestation(rule_id: str, d: DeploymentFacts, ctx: Context) -> Outcome:
    """An operator attestation of ``rule_id``, current at ``as_of`` (``ekm audit attest``)."""
    need = f"a current attestation (ekm audit attest {rule_id} --by NAME --evidence FILE)"
    if d.attestations is None:
        return _unknown("attestations (need a verified, MAC-checked audit log)", need)
    a = d.attestations.get(rule_id)
    if a is None:
        return Outcome(FAIL, "no attestation recorded", need)
    who = (
        f"attested by {a.by} on {iso(a.recorded)}, evidence {a.evidence} "
        f"sha256:{a.evidence_sha256[:16]}"
    )
    if a.recorded > ctx.as_of:
        return Outcome(FAIL, f"{who}: recorded after {iso(ctx.as_of)}", need)
    if a.expires <= ctx.as_of:
        return Outcome(FAIL, f"{who}: expired {iso(a.expires)}", need)
    return Outcome(PASS, f"{who}; valid until {iso(a.expires)}", need)


@dataclass(frozen=True)
class CheckDef:
    """A requirement kind: where it applies (key, version, deployment) and its parameter."""

    level: str
    parse: Callable[[Any], Any]
    fn: Callable[..., Any]


_TYPES = tuple(TYPE_NAMES)
CHECKS: dict[str, CheckDef] = {
    "min_strength": CheckDef("key", _p_int, c_min_strength),
    "min_key_bits": CheckDef("key", _p_int, c_min_key_bits),
    "allowed_types": CheckDef("key", _p_list(_TYPES), c_allowed_types),
    "allowed_curves": CheckDef("key", _p_list(None), c_allowed_curves),
    "disallowed": CheckDef("key", _p_true, c_disallowed),
    "max_age": CheckDef("key", _p_duration, c_max_age),
    "rotation_defined": CheckDef("key", _p_true, c_rotation_defined),
    "max_rotate_every": CheckDef("key", _p_duration, c_max_rotate_every),
    "rotation_current": CheckDef("key", _p_true, c_rotation_current),
    "backup_current": CheckDef("key", _p_true, c_backup_current),
    "usage_consistent": CheckDef("key", _p_true, c_usage_consistent),
    "storage": CheckDef("key", _p_list(STORAGE_CLASSES), c_storage),
    "validated_module": CheckDef("key", _p_list(MODULE_LEVELS), c_validated_module),
    "required_labels": CheckDef("key", _p_list(None), c_required_labels),
    "unique_material": CheckDef("key", _p_true, c_unique_material),
    "kek_strength": CheckDef("key", _p_true, c_kek_strength),
    "material_destroyed": CheckDef("version", _p_true, c_material_destroyed),
    "usage_limit": CheckDef("version", _p_usage_limit, c_usage_limit),
    "retire_after": CheckDef("version", _p_duration, c_retire_after),
    "private_files": CheckDef("deployment", _p_true, d_private_files),
    "master_key_sources": CheckDef(
        "deployment",
        _p_list(("key-file", "passphrase", "pkcs11", "vault-transit")),
        d_master_key_sources,
    ),
    "approved_kdfs": CheckDef("deployment", _p_list(KDF_NAMES), d_approved_kdfs),
    "keystore_mac": CheckDef("deployment", _p_true, d_keystore_mac),
    "audit_log": CheckDef("deployment", _p_true, d_audit_log),
    "no_pin_in_config": CheckDef("deployment", _p_true, d_no_pin_in_config),
    "master_key_cryptoperiod": CheckDef("deployment", _p_duration, d_master_key_cryptoperiod),
    # the engine passes the rule's own id as the parameter: the attestation names the rule
    "attestation": CheckDef("deployment", _p_true, d_attestation),
}

PROCESSING_STATES = _PROCESSING
