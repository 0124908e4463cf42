"""What the compliance engine audits: a snapshot of keys and deployment facts.

The engine never reads the keystore, the config or the audit log itself. The manager builds an
:class:`Inventory` (it knows how to open the store), and the engine only reasons over this plain
data. That keeps the rules testable without a keystore and keeps the engine free of I/O.

Every deployment fact may be ``None``: "not checked". A rule over a fact that is ``None`` yields
an *unknown* result, never a pass, so an audit run without the master key (no MAC check possible)
says so instead of silently passing.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta

from ekm.crypto.keytypes import KeyState, KeyType, KeyUsage

MASTER_KEY_SOURCES = ("key-file", "passphrase", "pkcs11", "vault-transit")
MODULE_VALIDATIONS = ("fips-140-3", "fips-140-2", "none")


@dataclass(frozen=True, slots=True)
class VersionRecord:
    """One version of a key, as the auditor needs to see it.

    ``material_present`` is what the backend reports, independent of ``state``: a destroyed
    version whose material is still on disk is exactly what the destruction rule looks for.
    ``fingerprint`` is a keyed digest of the material (never the material), used only to spot
    the same material under two names; ``None`` when it could not be computed (HSM-held keys).
    ``key_type`` mirrors ``ekm.model.KeyVersion.key_type``: after an algorithm migration the
    versions of one key may use different algorithms, and each is judged by its own.
    ``material_present`` is ``None`` when it could not be checked (an HSM-held version while the
    token is unreachable): the destruction rule then says "not evaluated", never "erased".
    ``destroy_after`` is the end of a soft-delete recovery window: until then a destroyed
    version keeps its material by design.
    """

    version: int
    state: KeyState
    created: datetime
    usage_count: int = 0
    material_present: bool | None = True
    fingerprint: str | None = None
    key_type: KeyType | None = None  # set when this version's algorithm differs (migration)
    destroy_after: datetime | None = None


@dataclass(frozen=True, slots=True)
class KeyRecord:
    """One key with its policy facts and versions.

    ``observed_usages`` are the operations the audit log saw the key used for; a key declared
    for ``encryption`` but observed signing violates "one key, one purpose" (SP 800-57 5.2).
    """

    name: str
    type: KeyType
    usage: KeyUsage
    backend: str = "file"
    versions: tuple[VersionRecord, ...] | list[VersionRecord] = ()
    rotate_every: timedelta | None = None
    backup_required: bool = False
    last_backup: datetime | None = None
    labels: dict[str, str] = field(default_factory=dict)
    observed_usages: frozenset[KeyUsage] = frozenset()

    @property
    def primary(self) -> VersionRecord | None:
        """The version used to apply protection (encrypt, sign), if any."""
        for v in self.versions:
            if v.state is KeyState.PRIMARY:
                return v
        return None


@dataclass(frozen=True, slots=True)
class Attestation:
    """An operator's statement that a control no tool can see is in place (``ekm audit
    attest``), as read back from a verified ``audit.attest`` record of the audit log.

    ``evidence_sha256`` is the hash of the evidence file the operator named; the file itself
    stays with the operator (an auditor compares its hash).
    """

    rule: str
    by: str
    evidence: str
    evidence_sha256: str
    recorded: datetime
    expires: datetime
    seq: int = 0


@dataclass(frozen=True, slots=True)
class DeploymentFacts:
    """Facts about the deployment, each ``None`` when it was not (or could not be) checked.

    - ``unsafe_paths``: files/dirs under the home that group or others can access ([] = all fine).
    - ``master_key_source``: one of :data:`MASTER_KEY_SOURCES`.
    - ``passphrase_kdf``: KDF deriving the master key from a passphrase (``argon2id``,
      ``scrypt``, ``pbkdf2-hmac-sha256``); only meaningful for the passphrase source.
    - ``keystore_mac_ok``: the metadata MAC verified (needs the master key).
    - ``audit_log_present`` / ``audit_chain_ok``: the audit log exists / its hash chain verifies.
    - ``hsm_pin_in_config``: an HSM PIN is written in ekm.toml in clear.
    - ``vault_tls_verify``: ``[vault] verify`` as configured (``True`` when absent); ``None``
      without a ``[vault]`` section. Read from the config only: an audit never calls Vault.
    - ``module_validation``: backend name -> ``fips-140-3`` | ``fips-140-2`` | ``none``: the
      validation status of the cryptographic module that holds that backend's keys.
    - ``master_key_*`` and ``attestations``: see the fields below.
    """

    unsafe_paths: tuple[str, ...] | list[str] | None = None
    master_key_source: str | None = None
    passphrase_kdf: str | None = None
    keystore_mac_ok: bool | None = None
    audit_log_present: bool | None = None
    audit_chain_ok: bool | None = None
    hsm_pin_in_config: bool | None = None
    vault_tls_verify: bool | None = None
    module_validation: dict[str, str] | None = None
    #: ``master.json`` ``key_id`` (the home's identity in reports and evidence bundles).
    master_key_id: str | None = None
    #: When the master key was created, from ``master.json`` (homes deployed before ekm
    #: recorded it have none); ``master_key_created_authentic`` says whether its MAC under the
    #: root key verified (None: not checked, the master key being locked).
    master_key_created: datetime | None = None
    master_key_created_authentic: bool | None = None
    #: The earliest verified audit-log record: the master key is at least this old.
    master_key_first_seen: datetime | None = None
    #: Security strength of the key-encrypting master key (None: passphrase-derived, which
    #: cannot be measured).
    master_key_strength: int | None = None
    #: Attestations by rule id from verified ``audit.attest`` records (None: log not verified).
    attestations: dict[str, Attestation] | None = None


@dataclass(frozen=True, slots=True)
class Inventory:
    """Everything one audit looks at; ``as_of`` is the instant the snapshot describes.

    ``keystore_file`` and ``config_file`` (relative to ``home``) are where SARIF points its
    physical locations: key findings at the keystore, deployment findings at the config.
    """

    home: str
    as_of: datetime
    keys: list[KeyRecord] = field(default_factory=list)
    deployment: DeploymentFacts = field(default_factory=DeploymentFacts)
    keystore_file: str = "keystore.json"  # "{key}" is replaced by the key's name
    config_file: str = "ekm.toml"
