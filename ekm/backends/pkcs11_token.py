"""The PKCS#11 token layer: ekm's keys held in an HSM, reached through python-pkcs11.

Why this shape:

* One logged-in read/write session per (module, token) per process, reused by every caller and
  guarded by a lock. PKCS#11 logins are per application, so opening a session per operation
  would only add round trips; and a login that fails is *never* retried: each wrong-PIN attempt
  moves the token's retry counter, and a loop would lock the token. The same wrong PIN is
  refused in-process without another attempt (only a fingerprint under a per-process random key
  is remembered, never the PIN).
* Keys are generated *in* the token, sensitive and non-extractable, one object (or key pair) per
  key version, labelled ``<prefix>/<name>/v<version>`` with a CKA_ID derived from the label so
  the two halves of a pair share it. Plain key material never leaves the token.
* The keystore's root key is protected by a token-resident AES-256 master key with in-token
  AES-GCM (authenticated, 96-bit random IV, the label bound as AAD). CKM_AES_KEY_WRAP_PAD would
  need the root key imported as a token object first, and SoftHSM 2.6 has no AES-GCM wrapping.
* Every python-pkcs11 failure is translated into an :class:`ekm.errors.EkmError` with one line
  naming the problem and the ``[hsm]`` config key to fix. PINs never appear in messages, reprs
  or logs.

``pkcs11`` and ``cryptography`` are imported inside functions so ``import ekm`` stays light.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import os
import re
import threading
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ekm.crypto.keytypes import KeyType, spec
from ekm.errors import (
    BackendAuthError,
    BackendError,
    ConfigError,
    EkmError,
    IntegrityError,
    InvalidError,
    KeyExistsError,
    NotFoundError,
)

log = logging.getLogger("ekm.hsm")

#: Mechanisms ekm needs from every token, with what each is for (shown by ``ekm status --hsm``).
REQUIRED_MECHANISMS: Mapping[str, str] = {
    "CKM_AES_KEY_GEN": "generate AES-256 keys and the master key in the token",
    "CKM_AES_GCM": "encrypt/decrypt with AES keys and wrap the keystore root key",
    "CKM_RSA_PKCS_KEY_PAIR_GEN": "generate RSA-3072/4096 key pairs",
    "CKM_SHA256_RSA_PKCS_PSS": "sign with RSA keys (PSS, SHA-256)",
    "CKM_EC_KEY_PAIR_GEN": "generate EC P-256/P-384 key pairs",
    "CKM_ECDSA": "sign with EC keys (ECDSA)",
}

#: Mechanisms used when present: their absence only disables the key types that need them.
OPTIONAL_MECHANISMS: Mapping[str, str] = {
    "CKM_EC_EDWARDS_KEY_PAIR_GEN": "generate Ed25519 key pairs",
    "CKM_EDDSA": "sign with Ed25519 keys",
}

#: The key types this layer can hold, and the mechanisms each one needs.
TYPE_MECHANISMS: Mapping[KeyType, tuple[str, ...]] = {
    KeyType.AES_256_GCM: ("CKM_AES_KEY_GEN", "CKM_AES_GCM"),
    KeyType.RSA_3072: ("CKM_RSA_PKCS_KEY_PAIR_GEN", "CKM_SHA256_RSA_PKCS_PSS"),
    KeyType.RSA_4096: ("CKM_RSA_PKCS_KEY_PAIR_GEN", "CKM_SHA256_RSA_PKCS_PSS"),
    KeyType.EC_P256: ("CKM_EC_KEY_PAIR_GEN", "CKM_ECDSA"),
    KeyType.EC_P384: ("CKM_EC_KEY_PAIR_GEN", "CKM_ECDSA"),
    KeyType.ED25519: ("CKM_EC_EDWARDS_KEY_PAIR_GEN", "CKM_EDDSA"),
}

_SETTINGS_KEYS = frozenset(
    {
        "library_path",
        "token_label",
        "slot_id",
        "pin_env",
        "pin_file",
        "pin",
        "key_label_prefix",
        "fips_validation",
    }
)
#: What an operator may declare about the module's certificate (audits cannot look it up).
FIPS_VALIDATIONS = ("fips-140-3", "fips-140-2", "none")
_PREFIX_RE = re.compile(r"^[A-Za-z0-9._-]{1,32}$")
_NAME_RE = re.compile(r"^[A-Za-z0-9._-]{1,64}$")
_PIN_FILE_LIMIT = 256
_IV_LEN = 12
_TAG_LEN = 16
_ROOT_KEY_LEN = 32
_WRAP_FORMAT = b"\x01"  # blob: format byte || IV || ciphertext || tag
_WRAP_AAD = b"ekm/root-key-wrap/v1/"
_CURVE_OIDS = {  # DER-encoded OIDs (CKA_EC_PARAMS)
    KeyType.EC_P256: bytes.fromhex("06082a8648ce3d030107"),
    KeyType.EC_P384: bytes.fromhex("06052b81040022"),
    KeyType.ED25519: bytes.fromhex("06032b6570"),
}
_EDWARDS25519_NAME = b"\x13\x0cedwards25519"  # PrintableString form (PKCS#11 3.0 allows it)


class NotAuthenticError(IntegrityError):
    """In-token AES-GCM refused a ciphertext: the caller learns "not authentic", never why."""


# --------------------------------------------------------------------------------------------
# Settings
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class HsmSettings:
    """The ``[hsm]`` table of ekm.toml, validated. ``pin`` never appears in ``repr``."""

    library_path: str
    token_label: str | None = None
    slot_id: int | None = None
    pin_env: str | None = None
    pin_file: str | None = None
    pin: str | None = field(default=None, repr=False)
    key_label_prefix: str = "ekm"
    fips_validation: str | None = None
    source: str = "ekm.toml"
    env: Mapping[str, str] = field(default_factory=lambda: os.environ, repr=False, compare=False)

    @classmethod
    def from_mapping(
        cls,
        d: Mapping[str, Any],
        *,
        env: Mapping[str, str] = os.environ,
        source: str = "ekm.toml",
    ) -> HsmSettings:
        """Validate a parsed ``[hsm]`` table; ConfigError names the bad key and the file."""
        if not isinstance(d, Mapping):
            raise ConfigError(f"[hsm] in {source} must be a table")
        unknown = sorted(set(d) - _SETTINGS_KEYS)
        if unknown:
            raise ConfigError(
                f"unknown key [hsm] {unknown[0]} in {source}; "
                f"expected: {', '.join(sorted(_SETTINGS_KEYS))}"
            )

        def text(key: str, *, required: bool = False) -> str | None:
            value = d.get(key)
            if value is None:
                if required:
                    raise ConfigError(f"[hsm] {key} is missing in {source}; set it")
                return None
            if not isinstance(value, str) or not value.strip() or "\x00" in value:
                raise ConfigError(f"[hsm] {key} in {source} must be a non-empty string")
            return value

        library_path = text("library_path", required=True)
        assert library_path is not None
        token_label = text("token_label")
        if token_label is not None and len(token_label.encode()) > 32:
            raise ConfigError(
                f"[hsm] token_label in {source} is longer than 32 bytes (the PKCS#11 limit)"
            )
        slot_id = d.get("slot_id")
        if slot_id is not None and (
            isinstance(slot_id, bool) or not isinstance(slot_id, int) or slot_id < 0
        ):
            raise ConfigError(f"[hsm] slot_id in {source} must be a non-negative integer")
        if token_label is None and slot_id is None:
            raise ConfigError(f"[hsm] token_label (or slot_id) is missing in {source}; set one")
        if token_label is not None and slot_id is not None:
            raise ConfigError(f"[hsm] token_label and slot_id are both set in {source}; keep one")

        pin_env, pin_file = text("pin_env"), text("pin_file")
        pin = d.get("pin")
        if pin is not None and (not isinstance(pin, str) or not pin):
            raise ConfigError(f"[hsm] pin in {source} must be a non-empty string")
        given = [k for k, v in (("pin_env", pin_env), ("pin_file", pin_file), ("pin", pin)) if v]
        if not given:
            raise ConfigError(f"[hsm] pin_env (or pin_file) is missing in {source}; set one")
        if len(given) > 1:
            raise ConfigError(
                f"[hsm] {' and '.join(given)} are all set in {source}; keep only one PIN source"
            )
        if pin_env is not None and not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", pin_env):
            raise ConfigError(f"[hsm] pin_env in {source} must be an environment variable name")

        prefix = d.get("key_label_prefix", "ekm")
        if not isinstance(prefix, str) or not _PREFIX_RE.match(prefix):
            raise ConfigError(
                f"[hsm] key_label_prefix in {source} must be 1-32 letters, digits, '.', '_' or '-'"
            )
        fips = d.get("fips_validation")
        if fips is not None and fips not in FIPS_VALIDATIONS:
            raise ConfigError(
                f"[hsm] fips_validation in {source} must be one of: "
                + ", ".join(FIPS_VALIDATIONS)
                + " (what the module's certificate says; audits take it as declared)"
            )
        return cls(
            library_path=library_path,
            fips_validation=fips,
            token_label=token_label,
            slot_id=slot_id,
            pin_env=pin_env,
            pin_file=pin_file,
            pin=pin,
            key_label_prefix=prefix,
            source=source,
            env=env,
        )

    @property
    def pin_in_config(self) -> bool:
        """True when the PIN is written in the config file itself (the audit flags this)."""
        return self.pin is not None

    @property
    def pin_source(self) -> str:
        """Where the PIN comes from, for messages and diagnostics; never the PIN."""
        if self.pin_env:
            return f"environment variable {self.pin_env} ([hsm] pin_env)"
        if self.pin_file:
            return f"file {self.pin_file} ([hsm] pin_file)"
        return f"[hsm] pin in {self.source}"

    @property
    def pin_key(self) -> str:
        """The config key an operator edits to fix the PIN."""
        return "pin_env" if self.pin_env else "pin_file" if self.pin_file else "pin"

    @property
    def token_ref(self) -> str:
        """The token as the operator configured it: ``token 'x'`` or ``slot 3``."""
        return f"token {self.token_label!r}" if self.token_label else f"slot {self.slot_id}"

    @property
    def warnings(self) -> tuple[str, ...]:
        """Accepted but unsafe settings, one line each."""
        if self.pin_in_config:
            return (
                f"the HSM PIN is written in {self.source} ([hsm] pin); "
                "move it to [hsm] pin_env or [hsm] pin_file",
            )
        return ()

    def key_label(self, name: str, version: int) -> str:
        """The token label of one key version: ``<prefix>/<name>/v<version>``."""
        return key_label(self.key_label_prefix, name, version)

    def read_pin(self) -> str:
        """The PIN, read now from its source; ConfigError (or UnsafePermissionsError) if not."""
        if self.pin is not None:
            return self.pin
        if self.pin_env:
            value = self.env.get(self.pin_env)
            if not value:
                raise ConfigError(
                    f"[hsm] pin_env names {self.pin_env}, which is not set or empty; "
                    "export it or fix [hsm] pin_env"
                )
            return value
        assert self.pin_file is not None
        from ekm.fsutil import read_private

        path = Path(self.pin_file)
        if not path.is_file():
            raise ConfigError(f"[hsm] pin_file {path} does not exist or is not a file")
        raw = read_private(path, limit=_PIN_FILE_LIMIT)
        try:
            value = raw.decode("utf-8").rstrip("\r\n")
        except UnicodeDecodeError:
            raise ConfigError(f"[hsm] pin_file {path} is not UTF-8 text") from None
        if not value or "\n" in value or "\x00" in value:
            raise ConfigError(f"[hsm] pin_file {path} must hold the PIN on one line")
        return value


def key_label(prefix: str, name: str, version: int) -> str:
    """``<prefix>/<name>/v<version>``; InvalidError for names a label cannot carry."""
    if not _PREFIX_RE.match(prefix) or not _NAME_RE.match(name):
        raise InvalidError(f"key name {name!r} cannot be used in an HSM label")
    if isinstance(version, bool) or not isinstance(version, int) or version < 1:
        raise InvalidError(f"key version {version!r} must be a positive integer")
    return f"{prefix}/{name}/v{version}"


def _check_label(label: str) -> bytes:
    if not isinstance(label, str) or not label or len(label) > 128 or not label.isprintable():
        raise InvalidError(f"HSM key label {label!r} must be 1-128 printable characters")
    return hashlib.sha256(label.encode()).digest()[:16]  # CKA_ID shared by both halves of a pair


# --------------------------------------------------------------------------------------------
# Diagnosis
# --------------------------------------------------------------------------------------------


@dataclass
class HsmDiagnosis:
    """What ``ekm status --hsm`` shows; ``connected``/``error_message`` keep the old API."""

    connected: bool
    error_message: str | None = None
    module_path: str | None = None
    library: dict[str, str] = field(default_factory=dict)
    token: dict[str, Any] = field(default_factory=dict)
    slot_id: int | None = None
    slot_description: str | None = None
    logged_in: bool = False
    pin_source: str | None = None
    mechanisms: dict[str, bool] = field(default_factory=dict)
    supported_types: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)

    @property
    def missing_mechanisms(self) -> list[str]:
        return sorted(m for m, ok in self.mechanisms.items() if not ok and m in REQUIRED_MECHANISMS)

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict (for ``ekm status --hsm --json``)."""
        from dataclasses import asdict

        out = asdict(self)
        out["missing_mechanisms"] = self.missing_mechanisms
        return out


def diagnose(settings: HsmSettings) -> HsmDiagnosis:
    """Connect (or reuse the connection) and describe the token; never raises."""
    try:
        return Token.open(settings).diagnose()
    except EkmError as exc:
        message = exc.message
    except Exception as exc:  # a broken vendor module must not crash `ekm status`
        message = (
            f"unexpected {type(exc).__name__} from the PKCS#11 module; check [hsm] library_path"
        )
    return HsmDiagnosis(
        connected=False,
        error_message=message,
        module_path=settings.library_path,
        pin_source=settings.pin_source,
        warnings=list(settings.warnings),
    )


# --------------------------------------------------------------------------------------------
# Token
# --------------------------------------------------------------------------------------------

_OPEN: dict[tuple[str, str], Token] = {}
_OPEN_LOCK = threading.Lock()
_FAILED_PINS: set[tuple[str, str, bytes]] = set()
_PIN_FINGERPRINT_KEY = os.urandom(32)  # per process: a wrong PIN is never tried twice


def _pin_fingerprint(pin: str) -> bytes:
    return hmac.new(_PIN_FINGERPRINT_KEY, pin.encode(), hashlib.sha256).digest()


def _load_library(path: str) -> Any:
    """Load a PKCS#11 module; BackendError naming ``[hsm] library_path`` when it is not one."""
    p = Path(path)
    if not p.exists():
        raise BackendError(
            f"PKCS#11 module {path} does not exist; install the HSM vendor's module "
            "or fix [hsm] library_path"
        )
    if not p.is_file():
        raise BackendError(f"PKCS#11 module {path} is not a file; fix [hsm] library_path")
    import pkcs11

    # python-pkcs11 caches modules by the path string and a module initialises once per
    # process: reuse whatever spelling of this file (symlink or not) was loaded first.
    real = os.path.realpath(path)
    loaded = getattr(pkcs11, "_loaded", {})
    name = next((so for so in loaded if os.path.realpath(so) == real), os.path.abspath(path))
    try:
        return pkcs11.lib(name)
    except pkcs11.PKCS11Error as exc:
        # "OS exception while loading /p: /p: reason": keep the loader's reason only.
        parts = [
            part
            for part in str(exc).split(": ")
            if not (part.startswith("/") and " " not in part)
            and not part.startswith("OS exception while loading")
        ]
        detail = ": ".join(parts) or type(exc).__name__
        raise BackendError(
            f"{path} is not a usable PKCS#11 module ({detail}); fix [hsm] library_path"
        ) from None


class Token:
    """One logged-in PKCS#11 token. Get it with :meth:`Token.open`; it is shared per process."""

    def __init__(self, settings: HsmSettings, lib: Any, slot: Any) -> None:
        self.settings = settings
        self._lib = lib
        self._slot = slot
        self._lock = threading.RLock()
        self._session: Any = None
        self._handles: dict[tuple[str, Any], Any] = {}
        self._mechanisms: set[str] | None = None
        self.label: str = settings.token_label or ""

    # -- opening -------------------------------------------------------------------------------

    @classmethod
    def open(cls, settings: HsmSettings) -> Token:
        """The process's Token for ``settings`` (library, token), logged in; opened once."""
        key = (
            os.path.realpath(settings.library_path),
            settings.token_label or f"#slot{settings.slot_id}",
        )
        with _OPEN_LOCK:
            token = _OPEN.get(key)
            if token is None:
                for warning in settings.warnings:
                    log.warning(warning)
                lib = _load_library(settings.library_path)
                token = cls(settings, lib, _find_slot(lib, settings))
                token._connect()
                _OPEN[key] = token
            return token

    @classmethod
    def forget(cls, settings: HsmSettings) -> None:
        """Drop the cached Token for ``settings`` (closing its session); for tests and reloads."""
        key = (
            os.path.realpath(settings.library_path),
            settings.token_label or f"#slot{settings.slot_id}",
        )
        with _OPEN_LOCK:
            token = _OPEN.pop(key, None)
        if token is not None:
            token._drop_session(close=True)

    def _connect(self) -> Any:
        """Open the session and log in once; the caller holds the lock (or is Token.open)."""
        import pkcs11
        from pkcs11 import exceptions as e

        s = self.settings
        if self._session is not None:
            return self._session
        pin = s.read_pin()
        fingerprint = (self._lib.so, self.settings.token_ref, _pin_fingerprint(pin))
        if fingerprint in _FAILED_PINS:
            raise BackendAuthError(
                f"the PIN from {s.pin_source} was already refused by {s.token_ref}; "
                f"ekm does not retry it: fix [hsm] {s.pin_key}"
            )
        try:
            token = self._slot.get_token()
            self.label = token.label
            try:
                session = token.open(rw=True, user_pin=pin)
            except e.UserAlreadyLoggedIn:  # logins are per application: reuse it
                session = token.open(rw=True)
        except e.PinIncorrect:
            _FAILED_PINS.add(fingerprint)
            raise BackendAuthError(
                f"{s.token_ref} refused the PIN from {s.pin_source}; fix [hsm] {s.pin_key} "
                "(ekm tried once and will not retry, to keep the token from locking)"
            ) from None
        except (e.PinLocked, e.PinExpired) as exc:
            state = "locked" if isinstance(exc, e.PinLocked) else "expired"
            raise BackendAuthError(
                f"the user PIN of {s.token_ref} is {state}; the token's security officer "
                "must reset it"
            ) from None
        except (e.PinInvalid, e.PinLenRange):
            _FAILED_PINS.add(fingerprint)
            raise BackendAuthError(
                f"{s.token_ref} rejects the PIN from {s.pin_source} as malformed; "
                f"fix [hsm] {s.pin_key}"
            ) from None
        except e.UserPinNotInitialized:
            raise BackendError(
                f"{s.token_ref} has no user PIN set; initialise the token's user PIN first"
            ) from None
        except pkcs11.PKCS11Error as exc:
            raise self._unreachable(exc) from None
        self._session = session
        return session

    # -- plumbing ------------------------------------------------------------------------------

    def _unreachable(self, exc: BaseException) -> BackendError:
        self._drop_session(close=False)
        what = type(exc).__name__
        return BackendError(
            f"the HSM {self.settings.token_ref} is not reachable ({what}: removed, reinitialised "
            "or the module failed); check the device and [hsm] token_label"
        )

    def _drop_session(self, *, close: bool) -> None:
        with self._lock:
            session, self._session = self._session, None
            self._handles.clear()
            self._mechanisms = None
        if close and session is not None:
            import contextlib

            with contextlib.suppress(Exception):
                session.close()

    def _run(self, what: str, fn: Any) -> Any:
        """Run ``fn(session)`` under the lock, mapping PKCS#11 failures to EkmErrors."""
        import pkcs11
        from pkcs11 import exceptions as e

        with self._lock:
            session = self._connect()
            try:
                return fn(session)
            except EkmError:
                raise
            except (e.ObjectHandleInvalid, e.KeyHandleInvalid) as exc:
                raise self._unreachable(exc) from None
            except e.MechanismInvalid:
                raise BackendError(
                    f"the HSM {self.settings.token_ref} refused the mechanism needed to {what}; "
                    "run `ekm status --hsm` to see what it lacks"
                ) from None
            except e.KeyTypeInconsistent:
                raise InvalidError(f"the HSM key has the wrong type to {what}") from None
            except pkcs11.PKCS11Error as exc:
                raise self._unreachable(exc) from None

    def _find(self, session: Any, label: str, object_class: Any, key_type: KeyType) -> Any:
        """The object with ``label`` and ``object_class``, checked to be a ``key_type`` key.

        Cached per session, so the type check (which stops a mislabelled or mistyped key from
        reaching a mechanism that would fail obscurely) runs once per object.
        """
        from pkcs11 import Attribute

        cached = self._handles.get((label, object_class))
        if cached is not None:
            return cached
        found = list(session.get_objects({Attribute.LABEL: label, Attribute.CLASS: object_class}))
        if not found:
            raise NotFoundError(
                f"no key labelled {label!r} in HSM {self.settings.token_ref}; "
                "check the key name and version (ekm keys show NAME)"
            )
        if len(found) > 1:
            raise IntegrityError(
                f"{len(found)} objects are labelled {label!r} in HSM {self.settings.token_ref}; "
                "ekm refuses to guess: remove the stray ones with pkcs11-tool"
            )
        actual = _object_type(found[0])
        if actual is not key_type:
            raise InvalidError(
                f"HSM key {label!r} has type {actual or 'unsupported by ekm'}, "
                f"not {key_type}; check the key's type "
                "in ekm's metadata (ekm keys show NAME)"
            )
        self._handles[(label, object_class)] = found[0]
        return found[0]

    # -- information ---------------------------------------------------------------------------

    def mechanisms(self) -> set[str]:
        """Names (``CKM_...``) of the mechanisms the token's slot offers."""
        with self._lock:
            if self._mechanisms is None:
                import pkcs11

                try:
                    raw = self._slot.get_mechanisms()
                except pkcs11.PKCS11Error as exc:
                    raise self._unreachable(exc) from None
                self._mechanisms = {
                    f"CKM_{m.name.lstrip('_')}" if hasattr(m, "name") else f"CKM_0x{m:08x}"
                    for m in raw
                }
            return set(self._mechanisms)

    def supported_types(self) -> list[KeyType]:
        """Key types this token can hold through ekm (all their mechanisms are present)."""
        have = self.mechanisms()
        return [t for t, needs in TYPE_MECHANISMS.items() if set(needs) <= have]

    def diagnose(self) -> HsmDiagnosis:
        """Library, token and slot facts, login state and mechanism coverage."""
        import pkcs11

        s = self.settings
        try:
            with self._lock:
                session = self._connect()
                info = self._slot.get_token()
                have = self.mechanisms()
                flags = [f.name for f in type(info.flags) if f.value and f in info.flags and f.name]
                del session  # connected means logged in: ekm always logs in as the user
        except EkmError as exc:
            return HsmDiagnosis(
                connected=False,
                error_message=exc.message,
                module_path=s.library_path,
                pin_source=s.pin_source,
                warnings=list(s.warnings),
            )
        except pkcs11.PKCS11Error as exc:
            return HsmDiagnosis(
                connected=False,
                error_message=self._unreachable(exc).message,
                module_path=s.library_path,
                pin_source=s.pin_source,
                warnings=list(s.warnings),
            )
        wanted = {**REQUIRED_MECHANISMS, **OPTIONAL_MECHANISMS}
        return HsmDiagnosis(
            connected=True,
            module_path=s.library_path,
            library={
                "manufacturer": self._lib.manufacturer_id,
                "description": self._lib.library_description,
                "version": "{}.{}".format(*self._lib.library_version),
                "cryptoki_version": "{}.{}".format(*self._lib.cryptoki_version),
            },
            token={
                "label": info.label,
                "manufacturer": info.manufacturer_id,
                "model": info.model,
                "serial": info.serial.decode("ascii", "replace"),
                "hardware_version": "{}.{}".format(*info.hardware_version),
                "firmware_version": "{}.{}".format(*info.firmware_version),
                "flags": flags,
            },
            slot_id=self._slot.slot_id,
            slot_description=self._slot.slot_description,
            logged_in=True,
            pin_source=s.pin_source,
            mechanisms={m: m in have for m in wanted},
            supported_types=[t.value for t in self.supported_types()],
            warnings=list(s.warnings),
        )

    def _require(self, key_type: KeyType) -> None:
        """InvalidError for types ekm never keeps in an HSM; BackendError for a token gap."""
        needs = TYPE_MECHANISMS.get(key_type)
        backend = self._backend_name()
        if needs is None:
            if spec(key_type).post_quantum:
                kind = (
                    "ML-DSA"
                    if spec(key_type).family.endswith("sig") or "dsa" in key_type
                    else "ML-KEM"
                )
                raise InvalidError(
                    f"{backend} has no {kind} mechanism for {key_type}; keep {key_type} keys "
                    "on the file backend"
                )
            raise InvalidError(
                f"{key_type} keys cannot be held in the HSM ({backend}); use aes-256-gcm, "
                "rsa-3072, rsa-4096, ec-p256, ec-p384 or ed25519, or the file backend"
            )
        missing = [m for m in needs if m not in self.mechanisms()]
        if missing:
            raise BackendError(
                f"{backend} lacks {', '.join(missing)}, needed for {key_type} keys; "
                "use another key type or another token ([hsm] token_label)"
            )

    def _backend_name(self) -> str:
        try:
            info = self._slot.get_token()
            model = (info.manufacturer_id or "").strip()
            if "SoftHSM" in model or "SoftHSM" in (info.model or ""):
                model = "SoftHSM"
            return f"{model or 'the PKCS#11 token'} ({self.settings.token_ref})"
        except Exception:
            return f"the PKCS#11 token ({self.settings.token_ref})"

    # -- keys ----------------------------------------------------------------------------------

    def has_key(self, label: str) -> bool:
        """True when any object carries ``label``."""
        from pkcs11 import Attribute

        _check_label(label)
        return self._run(
            "look up a key",
            lambda s: next(iter(s.get_objects({Attribute.LABEL: label})), None) is not None,
        )

    def list_labels(self, prefix: str = "") -> list[str]:
        """Sorted labels of the secret and private keys whose label starts with ``prefix``."""
        from pkcs11 import Attribute, ObjectClass

        def run(s: Any) -> list[str]:
            labels: set[str] = set()
            for cls in (ObjectClass.SECRET_KEY, ObjectClass.PRIVATE_KEY):
                for obj in s.get_objects({Attribute.CLASS: cls}):
                    label = obj[Attribute.LABEL]
                    if isinstance(label, str) and label.startswith(prefix):
                        labels.add(label)
            return sorted(labels)

        return self._run("list keys", run)

    def generate_master_key(self, label: str) -> str:
        """Create the AES-256 master key (encrypt/decrypt only, never extractable)."""
        self._require(KeyType.AES_256_GCM)
        self._generate_secret(label)
        return label

    def generate(self, label: str, key_type: KeyType | str) -> None:
        """Generate one key version in the token: sensitive, non-extractable, stored."""
        t = KeyType(key_type)
        self._require(t)
        if t is KeyType.AES_256_GCM:
            self._generate_secret(label)
        else:
            self._generate_pair(label, t)

    def _secret_template(self, label: str) -> dict[Any, Any]:
        from pkcs11 import Attribute

        return {
            Attribute.TOKEN: True,
            Attribute.PRIVATE: True,
            Attribute.SENSITIVE: True,
            Attribute.EXTRACTABLE: False,
            Attribute.MODIFIABLE: False,
            Attribute.ENCRYPT: True,
            Attribute.DECRYPT: True,
            Attribute.WRAP: False,
            Attribute.UNWRAP: False,
            Attribute.SIGN: False,
            Attribute.VERIFY: False,
            Attribute.DERIVE: False,
            Attribute.LABEL: label,
            Attribute.ID: _check_label(label),
        }

    def _refuse_existing(self, session: Any, label: str) -> None:
        from pkcs11 import Attribute

        if next(iter(session.get_objects({Attribute.LABEL: label})), None) is not None:
            raise KeyExistsError(
                f"HSM {self.settings.token_ref} already holds a key labelled {label!r}; "
                "rotate to a new version instead"
            )

    def _generate_secret(self, label: str) -> None:
        from pkcs11 import KeyType as P11KeyType

        template = self._secret_template(label)

        def run(s: Any) -> None:
            self._refuse_existing(s, label)
            s.generate_key(P11KeyType.AES, 256, label=label, store=True, template=template)

        self._run("generate an AES key", run)

    def _generate_pair(self, label: str, t: KeyType) -> None:
        from pkcs11 import Attribute, Mechanism
        from pkcs11 import KeyType as P11KeyType

        key_id = _check_label(label)
        public = {
            Attribute.TOKEN: True,
            Attribute.PRIVATE: False,
            Attribute.MODIFIABLE: False,
            Attribute.VERIFY: True,
            Attribute.ENCRYPT: False,
            Attribute.WRAP: False,
            Attribute.DERIVE: False,
            Attribute.LABEL: label,
            Attribute.ID: key_id,
        }
        private = {
            Attribute.TOKEN: True,
            Attribute.PRIVATE: True,
            Attribute.SENSITIVE: True,
            Attribute.EXTRACTABLE: False,
            Attribute.MODIFIABLE: False,
            Attribute.SIGN: True,
            Attribute.DECRYPT: False,
            Attribute.UNWRAP: False,
            Attribute.DERIVE: False,
            Attribute.LABEL: label,
            Attribute.ID: key_id,
        }
        if t in (KeyType.RSA_3072, KeyType.RSA_4096):
            kt, bits, mech = P11KeyType.RSA, spec(t).key_bits, Mechanism.RSA_PKCS_KEY_PAIR_GEN
        elif t is KeyType.ED25519:
            kt, bits, mech = P11KeyType.EC_EDWARDS, None, Mechanism.EC_EDWARDS_KEY_PAIR_GEN
            public[Attribute.EC_PARAMS] = _CURVE_OIDS[t]
        else:
            kt, bits, mech = P11KeyType.EC, None, Mechanism.EC_KEY_PAIR_GEN
            public[Attribute.EC_PARAMS] = _CURVE_OIDS[t]

        def run(s: Any) -> None:
            self._refuse_existing(s, label)
            s.generate_keypair(
                kt,
                bits,
                label=label,
                id=key_id,
                store=True,
                mechanism=mech,
                public_template=public,
                private_template=private,
            )

        self._run(f"generate a {t} key pair", run)

    def destroy(self, label: str) -> None:
        """Destroy every object labelled ``label`` (a secret key, or both halves of a pair)."""
        from pkcs11 import Attribute

        _check_label(label)

        def run(s: Any) -> None:
            found = list(s.get_objects({Attribute.LABEL: label}))
            if not found:
                raise NotFoundError(
                    f"no key labelled {label!r} in HSM {self.settings.token_ref} to destroy"
                )
            for obj in found:
                obj.destroy()
            for k in [k for k in self._handles if k[0] == label]:
                del self._handles[k]

        self._run("destroy a key", run)

    # -- master key: wrap the keystore root key ------------------------------------------------

    def wrap_with(self, label: str, plaintext32: bytes) -> bytes:
        """Encrypt the 32-byte keystore root key under the master key ``label`` in the token."""
        if not isinstance(plaintext32, bytes | bytearray) or len(plaintext32) != _ROOT_KEY_LEN:
            raise InvalidError(f"the root key to wrap must be {_ROOT_KEY_LEN} bytes")
        aad = _WRAP_AAD + label.encode()
        return _WRAP_FORMAT + self.aead_encrypt(label, bytes(plaintext32), aad)

    def unwrap_with(self, label: str, blob: bytes) -> bytes:
        """Recover the root key from :meth:`wrap_with`'s blob; IntegrityError if not authentic."""
        want = 1 + _IV_LEN + _ROOT_KEY_LEN + _TAG_LEN
        if not isinstance(blob, bytes) or len(blob) != want or blob[:1] != _WRAP_FORMAT:
            raise IntegrityError(
                "the wrapped root key is malformed or from another ekm version; "
                "restore the keystore from a backup"
            )
        try:
            return self.aead_decrypt(label, blob[1:], _WRAP_AAD + label.encode())
        except NotAuthenticError:
            raise IntegrityError(
                f"the wrapped root key failed authentication under HSM key {label!r} "
                f"in {self.settings.token_ref} (tampered master.json, or another token's key); "
                "restore master.json from a backup or point [hsm] at the right token"
            ) from None

    # -- AEAD, signatures, public keys ---------------------------------------------------------

    def aead_encrypt(self, label: str, plaintext: bytes, aad: bytes = b"") -> bytes:
        """AES-256-GCM in the token with a random 96-bit IV: ``iv || ciphertext || tag``."""
        from pkcs11 import GCMParams, Mechanism, ObjectClass

        iv = os.urandom(_IV_LEN)
        params = GCMParams(iv, bytes(aad) if aad else None, _TAG_LEN * 8)

        def run(s: Any) -> bytes:
            key = self._find(s, label, ObjectClass.SECRET_KEY, KeyType.AES_256_GCM)
            return key.encrypt(
                bytes(plaintext), mechanism=Mechanism.AES_GCM, mechanism_param=params
            )

        return iv + self._run("encrypt with AES-GCM", run)

    def aead_decrypt(self, label: str, blob: bytes, aad: bytes = b"") -> bytes:
        """Reverse :meth:`aead_encrypt`; IntegrityError when the tag, IV, AAD or key is wrong."""
        from pkcs11 import GCMParams, Mechanism, ObjectClass
        from pkcs11 import exceptions as e

        if not isinstance(blob, bytes | bytearray) or len(blob) < _IV_LEN + _TAG_LEN:
            raise NotAuthenticError("the HSM ciphertext is truncated; it cannot be decrypted")
        iv, body = bytes(blob[:_IV_LEN]), bytes(blob[_IV_LEN:])
        params = GCMParams(iv, bytes(aad) if aad else None, _TAG_LEN * 8)

        def run(s: Any) -> bytes:
            key = self._find(s, label, ObjectClass.SECRET_KEY, KeyType.AES_256_GCM)
            try:
                return key.decrypt(body, mechanism=Mechanism.AES_GCM, mechanism_param=params)
            except (e.EncryptedDataInvalid, e.EncryptedDataLenRange, e.GeneralError):
                # SoftHSM reports a bad tag as CKR_GENERAL_ERROR: check the token is still there
                # before calling it tampering.
                self._slot.get_token()
                raise NotAuthenticError(
                    "the ciphertext failed authentication (tampered, wrong key or wrong "
                    "associated data); nothing was decrypted"
                ) from None

        return self._run("decrypt with AES-GCM", run)

    def sign(self, label: str, key_type: KeyType | str, data: bytes) -> bytes:
        """Sign in the token: RSA-PSS/SHA-256, ECDSA (DER, SHA-256/384) or Ed25519."""
        from pkcs11 import MGF, Mechanism, ObjectClass

        t = KeyType(key_type)
        self._require(t)
        data = bytes(data)

        def run(s: Any) -> bytes:
            key = self._find(s, label, ObjectClass.PRIVATE_KEY, t)
            if t in (KeyType.RSA_3072, KeyType.RSA_4096):
                return key.sign(
                    data,
                    mechanism=Mechanism.SHA256_RSA_PKCS_PSS,
                    mechanism_param=(Mechanism.SHA256, MGF.SHA256, 32),
                )
            if t is KeyType.ED25519:
                return key.sign(data, mechanism=Mechanism.EDDSA)
            digest = (hashlib.sha256 if t is KeyType.EC_P256 else hashlib.sha384)(data).digest()
            raw = key.sign(digest, mechanism=Mechanism.ECDSA)
            from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature

            half = len(raw) // 2
            return encode_dss_signature(
                int.from_bytes(raw[:half], "big"), int.from_bytes(raw[half:], "big")
            )

        return self._run(f"sign with {t}", run)

    def public_key_der(self, label: str, key_type: KeyType | str) -> bytes:
        """The public half as DER SubjectPublicKeyInfo (loads in cryptography and openssl)."""
        from pkcs11 import Attribute, ObjectClass

        t = KeyType(key_type)
        self._require(t)

        def run(s: Any) -> dict[Any, Any]:
            obj = self._find(s, label, ObjectClass.PUBLIC_KEY, t)
            if t in (KeyType.RSA_3072, KeyType.RSA_4096):
                return obj.get_attributes([Attribute.MODULUS, Attribute.PUBLIC_EXPONENT])
            return obj.get_attributes([Attribute.EC_POINT, Attribute.EC_PARAMS])

        return _spki(t, self._run("read a public key", run))


def _find_slot(lib: Any, settings: HsmSettings) -> Any:
    """The slot holding the configured token; BackendError naming the config key otherwise."""
    import pkcs11

    try:
        slots = lib.get_slots(token_present=True)
        if settings.slot_id is not None:
            for slot in slots:
                if slot.slot_id == settings.slot_id:
                    return slot
            raise BackendError(
                f"no token in slot {settings.slot_id} of {settings.library_path}; "
                "fix [hsm] slot_id (pkcs11-tool --list-slots shows them)"
            )
        matches = []
        for slot in slots:
            try:
                if slot.get_token().label == settings.token_label:
                    matches.append(slot)
            except (pkcs11.TokenNotPresent, pkcs11.TokenNotRecognised):
                continue
    except pkcs11.PKCS11Error as exc:
        raise BackendError(
            f"the PKCS#11 module {settings.library_path} failed to list its slots "
            f"({type(exc).__name__}); check the device and [hsm] library_path"
        ) from None
    if not matches:
        raise BackendError(
            f"no token labelled {settings.token_label!r} in {settings.library_path}; "
            "fix [hsm] token_label (pkcs11-tool --list-slots shows them)"
        )
    if len(matches) > 1:
        raise BackendError(
            f"{len(matches)} tokens are labelled {settings.token_label!r}; "
            "set [hsm] slot_id instead of [hsm] token_label"
        )
    return matches[0]


def _object_type(obj: Any) -> KeyType | None:
    """The ekm KeyType of a token object, from CKA_KEY_TYPE and its size or curve."""
    from pkcs11 import Attribute
    from pkcs11 import KeyType as P11KeyType

    kt = obj[Attribute.KEY_TYPE]
    if kt == P11KeyType.AES:
        return KeyType.AES_256_GCM if obj[Attribute.VALUE_LEN] == 32 else None
    if kt == P11KeyType.RSA:
        bits = len(bytes(obj[Attribute.MODULUS]).lstrip(b"\0")) * 8
        return {3072: KeyType.RSA_3072, 4096: KeyType.RSA_4096}.get(bits)
    if kt in (P11KeyType.EC, P11KeyType.EC_EDWARDS):
        params = bytes(obj[Attribute.EC_PARAMS])
        if params == _EDWARDS25519_NAME:  # SoftHSM labels its Ed25519 private keys by name
            return KeyType.ED25519
        return next((t for t, oid in _CURVE_OIDS.items() if oid == params), None)
    return None


def _spki(t: KeyType, attrs: dict[Any, Any]) -> bytes:
    """Build DER SubjectPublicKeyInfo from the token's public attributes."""
    from cryptography.hazmat.primitives import serialization as ser
    from pkcs11 import Attribute

    if t in (KeyType.RSA_3072, KeyType.RSA_4096):
        from cryptography.hazmat.primitives.asymmetric import rsa

        n = int.from_bytes(attrs[Attribute.MODULUS], "big")
        e = int.from_bytes(attrs[Attribute.PUBLIC_EXPONENT], "big")
        key: Any = rsa.RSAPublicNumbers(e, n).public_key()
    else:
        point = _ec_point(bytes(attrs[Attribute.EC_POINT]), _POINT_LEN[t])
        if t is KeyType.ED25519:
            from cryptography.hazmat.primitives.asymmetric import ed25519

            key = ed25519.Ed25519PublicKey.from_public_bytes(point)
        else:
            from cryptography.hazmat.primitives.asymmetric import ec

            curve = ec.SECP256R1() if t is KeyType.EC_P256 else ec.SECP384R1()
            key = ec.EllipticCurvePublicKey.from_encoded_point(curve, point)
    return key.public_bytes(ser.Encoding.DER, ser.PublicFormat.SubjectPublicKeyInfo)


_POINT_LEN = {KeyType.EC_P256: 65, KeyType.EC_P384: 97, KeyType.ED25519: 32}


def _ec_point(value: bytes, size: int) -> bytes:
    """CKA_EC_POINT is a DER OCTET STRING of the point; some modules give the raw point."""
    if len(value) == size:
        return value
    if len(value) == size + 2 and value[0] == 0x04 and value[1] == size:
        return value[2:]
    if len(value) == size + 3 and value[:3] == bytes((0x04, 0x81, size)):
        return value[3:]
    raise IntegrityError(f"the HSM returned a malformed EC point ({len(value)} bytes)")
