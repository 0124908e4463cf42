"""ekm.toml: locate, load (tomllib), validate, write (tomli-w).

The schema is declared once, as data (``SCHEMA``): every section, every option, its type, its
default and a one-line description. Validation, the defaults, ``config.example.toml`` and the
man page ``ekm.toml.5`` all come from it, so they cannot drift apart. Unknown keys and bad
values are ConfigError (exit 3) naming the file, the key and the expected form.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ekm.crypto.keytypes import KeyType, KeyUsage, parse_type, parse_usage
from ekm.errors import ConfigError
from ekm.timeutil import DURATION_FORM, parse_duration

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

CONFIG_NAME = "ekm.toml"
MAX_CONFIG_BYTES = 1024 * 1024

MASTER_KEY_SOURCES = ("file", "passphrase", "pkcs11", "vault-transit")
BACKENDS = ("file", "pkcs11", "vault")
SEVERITIES = ("low", "medium", "high", "critical")
#: Argon2id memory (KiB) x passes may not go below 19 MiB x 2 (OWASP's minimum pairs).
ARGON2_MIN_WORK = 19456 * 2


# --------------------------------------------------------------------------------------
# Option types: a checker returns the normalised value or raises ValueError(expected form)
# --------------------------------------------------------------------------------------
def _str(v: Any) -> str:
    if not isinstance(v, str):
        raise ValueError("a string")
    return v


def _bool(v: Any) -> bool:
    if not isinstance(v, bool):
        raise ValueError("true or false")
    return v


def _int_range(lo: int, hi: int) -> Callable[[Any], int]:
    def check(v: Any) -> int:
        if isinstance(v, bool) or not isinstance(v, int) or not lo <= v <= hi:
            raise ValueError(f"an integer from {lo} to {hi}")
        return v

    return check


def _num_range(lo: float, hi: float) -> Callable[[Any], float]:
    def check(v: Any) -> float:
        if isinstance(v, bool) or not isinstance(v, (int, float)) or not lo <= v <= hi:
            raise ValueError(f"a number from {lo:g} to {hi:g}")
        return float(v)

    return check


def _duration(v: Any) -> str:
    if not isinstance(v, str):
        raise ValueError(DURATION_FORM)
    try:
        parse_duration(v)
    except ValueError:
        raise ValueError(DURATION_FORM) from None
    return v


def _duration_or_never(v: Any) -> str:
    if v == "never":
        return v
    try:
        return _duration(v)
    except ValueError:
        raise ValueError(f'{DURATION_FORM}, or "never"') from None


def _choice(*choices: str) -> Callable[[Any], str]:
    def check(v: Any) -> str:
        if v not in choices:
            raise ValueError("one of: " + ", ".join(repr(c) for c in choices))
        return v

    return check


def _str_list(v: Any) -> list[str]:
    if not isinstance(v, list) or not all(isinstance(x, str) for x in v):
        raise ValueError("a list of strings")
    return list(v)


def _str_map(v: Any) -> dict[str, str]:
    if not isinstance(v, dict) or not all(isinstance(x, str) for x in v.values()):
        raise ValueError("a table of string values")
    return dict(v)


def _pq_algorithms(v: Any) -> list[str]:
    from ekm.crypto.pq import check_algorithm_names  # light: cryptography loads lazily

    return check_algorithm_names(v)


def _key_type(v: Any) -> str:
    if not isinstance(v, str):
        raise ValueError("a key type name")
    return parse_type(v).value


def _usage(v: Any) -> str:
    if not isinstance(v, str):
        raise ValueError("a key usage name")
    return parse_usage(v).value


@dataclass(frozen=True)
class Option:
    check: Callable[[Any], Any]
    default: Any
    doc: str
    example: Any = None  # shown in config.example.toml when the default is None


# --------------------------------------------------------------------------------------
# The schema. [keys.NAME] and [policy."TYPE"] are tables of tables described by KEY_OPTIONS
# and POLICY_OPTIONS; [hsm] and [vault] are validated by their backends' settings classes.
# --------------------------------------------------------------------------------------
SCHEMA: dict[str, dict[str, Option]] = {
    "storage": {
        "backend": Option(
            _choice("file", "vault"),
            "file",
            "where keys live: the embedded file keystore or a shared Vault KV v2 mount",
        ),
        "lock_timeout": Option(
            _duration, "30s", "how long to wait for another ekm process holding the keystore lock"
        ),
    },
    "master_key": {
        "source": Option(
            _choice(*MASTER_KEY_SOURCES),
            "file",
            "what protects the keystore: "
            "a random key file, a passphrase (Argon2id), an HSM key, or Vault Transit",
        ),
        "key_file": Option(_str, "master.key", "key file, relative to the home (source = file)"),
        "argon2_memory_kib": Option(
            _int_range(19 * 1024, 4 * 1024 * 1024),
            65536,
            "Argon2id memory in KiB (RFC 9106 second recommended option: 64 MiB)",
        ),
        "argon2_iterations": Option(_int_range(1, 64), 3, "Argon2id passes"),
        "argon2_parallelism": Option(_int_range(1, 64), 4, "Argon2id lanes"),
        "hsm_key_label": Option(
            _str, "ekm-master", "label of the master key object in the token (source = pkcs11)"
        ),
    },
    "audit": {
        "log": Option(_str, "audit.log", "audit log file, relative to the home"),
        "max_bytes": Option(
            _int_range(0, 2**40),
            64 * 1024 * 1024,
            "rotate the log file past this size (0: never); the chain continues in the next file",
        ),
        "actor": Option(
            _str, None, "name recorded as the actor (default: the login user)", example="ops-team"
        ),
    },
    "cache": {
        "enabled": Option(_bool, True, "cache unwrapped data keys in memory (never on disk)"),
        "max_size": Option(_int_range(0, 10_000_000), 1000, "data keys held at most"),
        "ttl_seconds": Option(_int_range(0, 86400), 300, "seconds a cached data key lives"),
    },
    "rotation": {
        "default_keep_versions": Option(
            _int_range(0, 1000),
            None,
            "previous versions rotation leaves enabled, beyond the primary (unset: every "
            "version keeps decrypting until an operator disables or destroys it)",
            example=2,
        ),
        "usage_warn_fraction": Option(
            _num_range(0.0, 1.0),
            0.5,
            "warn when a version has used this fraction of its message limit (2^32 for AES-GCM)",
        ),
        "soft_delete_window": Option(
            _duration,
            "7d",
            "destroyed material is kept for this "
            "recovery window (0s, or 7d to 30d) before it is shredded",
        ),
    },
    "backup": {
        "dir": Option(_str, "backups", "where `ekm backup create` writes, relative to the home"),
    },
    "monitor": {
        "interval": Option(_duration, "60s", "seconds between two checks in --daemon mode"),
        "webhook": Option(
            _str, None, "webhook URL for alerts", example="https://alerts.example.com/ekm"
        ),
        "webhook_secret_env": Option(
            _str,
            None,
            "environment variable holding the HMAC secret that signs webhook bodies",
            example="EKM_WEBHOOK_SECRET",
        ),
        "slack": Option(
            _str,
            None,
            "Slack incoming-webhook URL",
            example="https://hooks.slack.com/services/T000/B000/XXXX",
        ),
        "fail_on": Option(_choice(*SEVERITIES), "high", "`monitor --once` exits 1 at or above"),
        "alert_levels": Option(
            _str_list, ["CRITICAL", "HIGH", "MEDIUM"], "severities sent to notifiers"
        ),
        "metrics_port": Option(
            _int_range(0, 65535), None, "serve Prometheus metrics on this port", example=9464
        ),
        "metrics_bind": Option(_str, "127.0.0.1", "address the metrics endpoint binds"),
        "metrics_file": Option(
            _str,
            None,
            "write metrics here for node_exporter's textfile collector",
            example="/var/lib/node_exporter/ekm.prom",
        ),
        "burst_threshold": Option(
            _int_range(1, 100000),
            5,
            "failed operations in the window that count as suspicious activity",
        ),
        "burst_window": Option(_duration, "5m", "window for the failed-operation burst check"),
    },
    "pqc": {
        "enabled": Option(_bool, False, "offer post-quantum key types in the default key set"),
        "algorithms": Option(
            _pq_algorithms,
            ["ML-KEM-768", "ML-DSA-65"],
            "post-quantum algorithms (FIPS 203/204 names; CRYSTALS-Kyber/Dilithium accepted)",
        ),
        "hybrid_mode": Option(_bool, True, "classical + post-quantum hybrids for new keys"),
    },
}

KEY_OPTIONS: dict[str, Option] = {
    "type": Option(_key_type, None, "algorithm", example="aes-256-gcm"),
    "usage": Option(
        _usage,
        None,
        "encryption, signing, mac, key-wrapping, api-auth, key-agreement",
        example="encryption",
    ),
    "rotate_every": Option(
        _duration_or_never, None, 'rotation interval (or "never")', example="90d"
    ),
    "notify_before": Option(_duration, None, "warn this long before rotation is due", example="7d"),
    "backup": Option(_bool, None, "back the key up before each rotation", example=True),
    "keep_versions": Option(_int_range(0, 1000), None, "retired versions kept", example=2),
    "backend": Option(_choice(*BACKENDS), "file", "file, pkcs11 (HSM) or vault"),
    "labels": Option(_str_map, {}, "free-form labels", example={"team": "payments"}),
}
POLICY_OPTIONS = {
    k: KEY_OPTIONS[k] for k in ("rotate_every", "notify_before", "backup", "keep_versions")
}

#: CLI.md "The default key set".
DEFAULT_KEY_SET: dict[str, dict[str, Any]] = {
    "database_encryption": {
        "type": "aes-256-gcm",
        "usage": "encryption",
        "rotate_every": "90d",
        "backup": True,
        "notify_before": "7d",
    },
    "jwt_signing": {
        "type": "hmac-sha256",
        "usage": "signing",
        "rotate_every": "30d",
        "backup": True,
        "notify_before": "3d",
    },
    "api_master": {
        "type": "hmac-sha256",
        "usage": "api-auth",
        "rotate_every": "60d",
        "backup": True,
        "notify_before": "5d",
    },
    "api_internal": {
        "type": "hmac-sha256",
        "usage": "api-auth",
        "rotate_every": "60d",
        "backup": True,
        "notify_before": "5d",
    },
    "session": {
        "type": "aes-256-gcm",
        "usage": "encryption",
        "rotate_every": "7d",
        "backup": False,
        "notify_before": "1d",
    },
    "hmac": {
        "type": "hmac-sha256",
        "usage": "mac",
        "rotate_every": "30d",
        "backup": True,
        "notify_before": "3d",
    },
    "rsa": {
        "type": "rsa-4096",
        "usage": "signing",
        "rotate_every": "365d",
        "backup": True,
        "notify_before": "30d",
    },
}

#: With [pqc] hybrid_mode, the default key set gains these.
PQC_KEY_SET: dict[str, dict[str, Any]] = {
    "pq_recipient": {
        "type": "x25519-ml-kem-768",
        "usage": "encryption",
        "rotate_every": "365d",
        "backup": True,
        "notify_before": "30d",
    },
    "pq_signing": {
        "type": "ed25519-ml-dsa-65",
        "usage": "signing",
        "rotate_every": "365d",
        "backup": True,
        "notify_before": "30d",
    },
}

#: Fallback policy by type family when neither the key nor [policy."TYPE"] says.
FALLBACK_POLICY = {
    "rotate_every": "90d",
    "notify_before": "7d",
    "backup": True,
    "keep_versions": None,
}


@dataclass
class KeySpec:
    """One configured key: what ``ekm generate`` creates and which policy applies."""

    name: str
    type: KeyType
    usage: KeyUsage
    rotate_every: str | None
    notify_before: str
    backup: bool
    keep_versions: int | None
    backend: str = "file"
    labels: dict[str, str] = field(default_factory=dict)


@dataclass
class Config:
    """A validated configuration. ``path`` is None when running on defaults."""

    path: Path | None
    sections: dict[str, dict[str, Any]]
    keys: dict[str, KeySpec]
    policies: dict[str, dict[str, Any]]
    hsm: dict[str, Any] | None = None
    vault: dict[str, Any] | None = None
    raw: dict[str, Any] = field(default_factory=dict)

    def __repr__(self) -> str:
        """The file and the key names only: option values (a Slack webhook URL is itself a
        credential) must not reach a log line or traceback through ``repr``."""
        return f"Config(path={self.path!r}, keys={sorted(self.keys)!r})"

    def get(self, section: str, option: str) -> Any:
        return self.sections[section][option]

    @property
    def source(self) -> str:
        return str(self.path) if self.path else "built-in defaults"

    def policy_for(self, key_type: str, overrides: Mapping[str, Any] | None = None) -> dict:
        """Rotation policy for a key: key overrides > [policy."TYPE"] > fallback."""
        merged = dict(FALLBACK_POLICY)
        merged.update({k: v for k, v in self.policies.get(key_type, {}).items() if v is not None})
        if overrides:
            merged.update({k: v for k, v in overrides.items() if v is not None})
        return merged


# --------------------------------------------------------------------------------------
# Locate / load / validate
# --------------------------------------------------------------------------------------
def locate(
    home: Path, explicit: str | os.PathLike | None = None, env: Mapping[str, str] = os.environ
) -> Path:
    """The config path: ``--config``, then ``EKM_CONFIG``, then ``$EKM_HOME/ekm.toml``."""
    if explicit:
        return Path(explicit)
    if env.get("EKM_CONFIG"):
        return Path(env["EKM_CONFIG"])
    return home / CONFIG_NAME


def load(path: Path, *, required: bool = True) -> Config:
    """Read and validate ``path``; a missing optional file gives the defaults.

    The file decides where secrets go (the Vault endpoint, the HSM module, webhook URLs), so
    like ssh with its config ekm refuses one that group or others may *write* or that belongs
    to someone other than the user or root. The checks run on the opened descriptor
    (``O_NONBLOCK``: a FIFO cannot hang ekm) and the read is bounded, so a file swapped after a
    check cannot be bigger than the limit.
    """
    import errno
    import stat

    try:
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC | os.O_NONBLOCK)
    except FileNotFoundError:
        if required:
            raise ConfigError(
                f"{path}: no such config file (run `ekm deploy` first, or pass --config FILE)"
            ) from None
        return validate({}, None)
    except OSError as exc:
        reason = "a directory" if exc.errno == errno.EISDIR else exc.strerror
        raise ConfigError(f"{path}: cannot read the config file ({reason})") from None
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            raise ConfigError(f"{path}: not a regular file; expected a TOML file")
        _check_config_owner(path, st)
        if st.st_size > MAX_CONFIG_BYTES:
            raise ConfigError(f"{path}: config file is larger than 1 MiB; refusing to parse it")
        with os.fdopen(os.dup(fd), "rb") as fh:
            data = fh.read(MAX_CONFIG_BYTES + 1)
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read the config file ({exc.strerror})") from None
    finally:
        os.close(fd)
    if len(data) > MAX_CONFIG_BYTES:
        raise ConfigError(f"{path}: config file is larger than 1 MiB; refusing to parse it")
    return parse(data, path)


def _check_config_owner(path: Path, st: os.stat_result) -> None:
    """Refuse a config others could have edited: group/other-writable, or a stranger's."""
    from ekm.errors import UnsafePermissionsError

    mode = st.st_mode & 0o7777
    if mode & 0o022:
        raise UnsafePermissionsError(
            f"{path} has mode {mode:04o}; group or others can change it (run: chmod go-w {path})"
        )
    if st.st_uid not in (os.geteuid(), 0):
        raise UnsafePermissionsError(
            f"{path} is owned by uid {st.st_uid}, not by the user running ekm "
            f"({os.geteuid()}) or root"
        )


def parse(data: bytes, path: Path | None) -> Config:
    """Parse TOML bytes and validate them; every error names ``path``."""
    where = str(path) if path else "<config>"
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        raise ConfigError(f"{where}: not UTF-8 text; expected a TOML file") from None
    try:
        raw = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{where}: invalid TOML: {exc}") from None
    except RecursionError:
        raise ConfigError(f"{where}: invalid TOML: nested too deeply") from None
    return validate(raw, path)


def _fail(where: str, key: str, value: Any, expected: str) -> ConfigError:
    shown = repr(value) if isinstance(value, (str, int, float, bool)) else type(value).__name__
    if isinstance(value, str) and len(value) > 60:
        shown = repr(value[:57] + "...")
    return ConfigError(f"{where}: {key} = {shown} is invalid; expected {expected}")


def _check_table(where: str, prefix: str, table: Any, options: dict[str, Option]) -> dict:
    if not isinstance(table, dict):
        raise ConfigError(f"{where}: [{prefix}] must be a table")
    out: dict[str, Any] = {}
    for name, value in table.items():
        opt = options.get(name)
        if opt is None:
            raise ConfigError(
                f"{where}: unknown key {prefix}.{name}; valid keys in [{prefix}]: "
                + ", ".join(options)
            )
        try:
            out[name] = opt.check(value)
        except ValueError as exc:
            raise _fail(where, f"{prefix}.{name}", value, str(exc)) from None
    return out


def validate(raw: dict[str, Any], path: Path | None) -> Config:
    """Turn parsed TOML into a Config, rejecting unknown keys and bad values."""
    where = str(path) if path else "<config>"
    known = set(SCHEMA) | {"keys", "policy", "hsm", "vault", "migration"}
    for section in raw:
        if section not in known:
            raise ConfigError(
                f"{where}: unknown section [{section}]; valid sections: " + ", ".join(sorted(known))
            )
    sections: dict[str, dict[str, Any]] = {}
    for section, options in SCHEMA.items():
        given = _check_table(where, section, raw.get(section, {}), options)
        sections[section] = {k: given.get(k, o.default) for k, o in options.items()}
    mk = sections["master_key"]
    if mk["argon2_memory_kib"] * mk["argon2_iterations"] < ARGON2_MIN_WORK:
        raise ConfigError(
            f"{where}: master_key.argon2_memory_kib x argon2_iterations = "
            f"{mk['argon2_memory_kib']} x {mk['argon2_iterations']} is below the floor of "
            f"{ARGON2_MIN_WORK} (RFC 9106 / OWASP: 19 MiB with 2 passes, or 46 MiB with 1)"
        )
    sw = sections["rotation"]["soft_delete_window"]
    if parse_duration(sw).total_seconds() and not (
        7 * 86400 <= parse_duration(sw).total_seconds() <= 30 * 86400
    ):
        raise _fail(where, "rotation.soft_delete_window", sw, "0s, or a duration from 7d to 30d")

    policies: dict[str, dict[str, Any]] = {}
    policy_raw = raw.get("policy", {})
    if not isinstance(policy_raw, dict):
        raise ConfigError(f"{where}: [policy] must be a table of key types")
    for type_name, table in policy_raw.items():
        try:
            key_type = parse_type(type_name).value
        except ValueError as exc:
            raise ConfigError(f'{where}: [policy."{type_name}"]: {exc}') from None
        policies[key_type] = _check_table(where, f'policy."{type_name}"', table, POLICY_OPTIONS)

    cfg = Config(path=path, sections=sections, keys={}, policies=policies, raw=raw)
    keys_raw = raw.get("keys")
    if keys_raw is None:
        keys_raw = dict(DEFAULT_KEY_SET)
        if sections["pqc"]["enabled"] and sections["pqc"]["hybrid_mode"]:
            keys_raw.update(PQC_KEY_SET)
    if not isinstance(keys_raw, dict):
        raise ConfigError(f"{where}: [keys] must be a table of key tables")
    for name, table in keys_raw.items():
        check_key_name(name, where)
        cfg.keys[name] = _key_spec(cfg, where, name, table)

    for section in ("hsm", "vault"):
        if section in raw:
            if not isinstance(raw[section], dict):
                raise ConfigError(f"{where}: [{section}] must be a table")
            setattr(cfg, section, dict(raw[section]))
    if "migration" in raw and not isinstance(raw["migration"], (list, dict)):
        raise ConfigError(f"{where}: [[migration]] must be an array of tables")
    return cfg


def _key_spec(cfg: Config, where: str, name: str, table: Any) -> KeySpec:
    given = _check_table(where, f"keys.{name}", table, KEY_OPTIONS)
    for required in ("type", "usage"):
        if required not in given:
            raise ConfigError(f"{where}: keys.{name}.{required} is missing")
    policy = cfg.policy_for(given["type"], given)
    rotate = policy["rotate_every"]
    return KeySpec(
        name=name,
        type=KeyType(given["type"]),
        usage=KeyUsage(given["usage"]),
        rotate_every=None if rotate in (None, "never") else rotate,
        notify_before=policy["notify_before"] or "0s",
        backup=bool(policy["backup"]),
        keep_versions=policy.get("keep_versions"),
        backend=given.get("backend", "file"),
        labels=given.get("labels", {}),
    )


_NAME_OK = set("abcdefghijklmnopqrstuvwxyz0123456789_-.")


def check_key_name(name: str, where: str = "key name") -> str:
    """Key names become file names and PKCS#11 labels: lowercase, digits, ``_ - .``, 1-64."""
    if (
        not isinstance(name, str)
        or not 1 <= len(name) <= 64
        or not set(name) <= _NAME_OK
        or name[0] in ".-"
    ):
        raise ConfigError(
            f"{where}: invalid key name {name[:64]!r}; use 1-64 characters of a-z, 0-9, _ - . "
            "(not starting with . or -)"
        )
    return name


# --------------------------------------------------------------------------------------
# Writing
# --------------------------------------------------------------------------------------
def render(raw: Mapping[str, Any]) -> bytes:
    """TOML bytes for a raw config mapping (tomli-w), with a header comment."""
    import tomli_w

    header = (
        "# ekm configuration. Every option is documented in config.example.toml and in\n"
        "# ekm.toml(5). Unknown keys are errors.\n\n"
    )
    return (header + tomli_w.dumps(dict(raw))).encode()


def initial_config(
    master_key_source: str, *, storage_backend: str = "file", pqc: bool = False
) -> dict[str, Any]:
    """The ekm.toml that ``ekm deploy`` writes: the default key set, spelled out."""
    raw: dict[str, Any] = {
        "storage": {"backend": storage_backend},
        "master_key": {"source": master_key_source},
        "keys": {name: dict(spec) for name, spec in DEFAULT_KEY_SET.items()},
    }
    if pqc:
        raw["pqc"] = {"enabled": True, "hybrid_mode": True}
        raw["keys"].update({name: dict(spec) for name, spec in PQC_KEY_SET.items()})
    return raw


# --------------------------------------------------------------------------------------
# Documentation generated from the schema (config.example.toml, ekm.toml(5))
# --------------------------------------------------------------------------------------
def _toml_value(value: Any) -> str:
    import tomli_w

    return tomli_w.dumps({"v": value}).split("=", 1)[1].strip()


def example_toml() -> str:
    """The text of ``config.example.toml``: every option, its default and what it does.

    Options whose default is "unset" are shown commented out with an example value.
    """
    out = [
        "# config.example.toml: every ekm.toml option with its default.",
        "# Generated from ekm/config.py (SCHEMA); `ekm deploy` writes a minimal ekm.toml.",
        "# Unknown keys and bad values are errors that name the file and the key (exit 3).",
        "",
    ]
    for section, options in SCHEMA.items():
        out.append(f"[{section}]")
        for name, opt in options.items():
            out.append(f"# {opt.doc}")
            if opt.default is None:
                out.append(f"# {name} = {_toml_value(opt.example)}")
            else:
                out.append(f"{name} = {_toml_value(opt.default)}")
        out.append("")
    out += [
        "# Rotation policy per key type; a key's own settings win over these.",
        '[policy."aes-256-gcm"]',
        *(
            f"# {POLICY_OPTIONS[k].doc}\n{k} = {_toml_value(v)}"
            for k, v in (("rotate_every", "90d"), ("notify_before", "7d"), ("backup", True))
        ),
        "",
        "# The key set that `ekm generate` (without NAME) and `ekm deploy` create.",
        "# Without any [keys.*] table the default key set of CLI.md is used.",
    ]
    for name, spec_ in DEFAULT_KEY_SET.items():
        out.append(f"[keys.{name}]")
        for k, v in spec_.items():
            out.append(f"{k} = {_toml_value(v)}")
        out.append("")
    out += [
        '# A key can also carry: keep_versions = 2, backend = "pkcs11", labels = {team = "x"}',
        "",
        "# HSM over PKCS#11 (see docs/hsm.md). The PIN comes from pin_env or pin_file.",
        "# [hsm]",
        '# library_path = "/usr/lib/softhsm/libsofthsm2.so"',
        '# token_label = "ekm"',
        '# pin_env = "EKM_HSM_PIN"',
        '# key_label_prefix = "ekm"',
        "",
        "# HashiCorp Vault (see docs/vault.md). The token comes from VAULT_TOKEN or token_file.",
        "# [vault]",
        '# endpoint = "https://vault.example.com:8200"',
        "# or a cluster, its nodes in the order to try (not both):",
        '# endpoints = ["https://vault-1:8200", "https://vault-2:8200", "https://vault-3:8200"]',
        "# failover_timeout = 30",
        '# auth_method = "token"',
        '# mount_path = "ekm"',
        '# transit_mount = "transit"',
        '# transit_key = "ekm-master"',
        "",
        "# Algorithm migration plans checked by KeyManager.plan_algorithm_migration().",
        "# [[migration]]",
        '# from_algorithm = "rsa-2048"',
        '# to_algorithm = "rsa-4096"',
        "# migration_period_days = 90",
        "# rollback_capability = true",
        "",
    ]
    return "\n".join(out)
