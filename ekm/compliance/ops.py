"""Compliance audits as KeyManager operations (a mixin of :class:`ekm.manager.KeyManager`).

``inventory`` gathers the facts, ``audit`` evaluates rule sets over them, ``verify_audit_log``
walks the audit log's keyed hash chain. All three try to unlock the master key and carry on
without it when they cannot (a passphrase home in CI without ``EKM_PASSPHRASE``): the facts
that need it are then "not evaluated" and a warning says so, because an audit that refuses to
run tells an operator less than one that runs on what it can see.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ekm.auditlog import VerifyResult
from ekm.errors import EkmError, NotFoundError
from ekm.timeutil import instant, iso

if TYPE_CHECKING:  # pragma: no cover
    from ekm.compliance.collect import Collected
    from ekm.compliance.engine import AuditResult
    from ekm.compliance.inventory import Inventory
    from ekm.compliance.ruleset import RuleSet

LOCKED_WARNING = (
    "master key not unlocked ({reason}); keystore MACs, material fingerprints and audit-log "
    "MACs are not evaluated (set EKM_PASSPHRASE or run on a terminal to include them)"
)


@dataclass
class LogVerification(VerifyResult):
    """:class:`VerifyResult` plus the warnings of this run (e.g. MACs not checked)."""

    warnings: list[str] = field(default_factory=list)


class AuditOps:
    """``inventory()``, ``audit()`` and ``verify_audit_log()`` for :class:`KeyManager`."""

    # Provided by KeyManager.
    home: Path
    layout: Any
    audit_log: Any
    _root: Any

    def unlock(self) -> None: ...  # pragma: no cover - implemented by KeyManager

    def _try_unlock(self) -> str | None:
        """Unlock if possible; the reason (one line, no secret) when not."""
        if not self.layout.master_meta.exists():
            if not Path(self.home).exists():
                raise NotFoundError(
                    f"no ekm home at {self.home} (run `ekm deploy`, or pass --home)"
                )
            raise NotFoundError(
                f"{self.home} is not an ekm home: master.json is missing (run `ekm deploy`)"
            )
        try:
            self.unlock()
        except EkmError as exc:
            return exc.message
        return None

    def _collect(self, now: datetime | None) -> Collected:
        from ekm.compliance.collect import collect

        reason = self._try_unlock()
        got = collect(self, now=instant(now))  # type: ignore[arg-type]
        if reason is not None:
            got.warnings.insert(0, LOCKED_WARNING.format(reason=reason.rstrip(".")))
        return got

    def inventory(self, now: datetime | None = None) -> Inventory:
        """The facts an audit judges: keys, versions, backups, permissions, the audit log."""
        return self._collect(now).inventory

    def audit(
        self,
        compliance: str | list[str] | None = "all",
        rules: str | Path | None = None,
        as_of: datetime | None = None,
        *,
        now: datetime | None = None,
        record: bool = True,
        enforce_drafts: bool = False,
    ) -> AuditResult:
        """Evaluate rule sets (ids, a comma list or ``"all"``) and/or a custom rule file.

        ``compliance=None`` with ``rules`` evaluates the custom file alone. ``as_of`` is the
        instant the rules are judged at (``--as-of 2031-01-01`` previews the transitions);
        ``now`` is when the inventory is taken. The built-in ``ekm-integrity`` rule set is
        always added: an unreadable key document is a critical finding naming the file.
        The run is audit-logged (``audit.run``) when ``record`` and the log exists.
        """
        return self.audit_collected(
            compliance, rules, as_of, now=now, record=record, enforce_drafts=enforce_drafts
        )[0]

    def audit_collected(
        self,
        compliance: str | list[str] | None = "all",
        rules: str | Path | None = None,
        as_of: datetime | None = None,
        *,
        now: datetime | None = None,
        record: bool = True,
        enforce_drafts: bool = False,
        record_fields: dict[str, Any] | None = None,
    ) -> tuple[AuditResult, Collected]:
        """:meth:`audit`, plus what was collected for it (``Collected.log_verify`` included).

        A caller that also shows the audit log's chain (``ekm report``) takes the chain
        verification from here instead of walking a 100,000-record log a second time.
        """
        from ekm.compliance import engine, integrity

        sets: list[RuleSet] = []
        drafts = {"enforce_drafts": enforce_drafts}
        if compliance is not None:
            sets = engine.load_rule_sets(compliance, **drafts)
        if rules is not None:
            sets.append(engine.load_custom_rules(rules, **drafts))
        if not sets:
            sets = engine.load_rule_sets("all", **drafts)
        got = self._collect(now)
        result = engine.evaluate(got.inventory, sets, as_of=as_of or got.inventory.as_of)
        result.enforce_drafts = enforce_drafts
        integrity.apply(
            result,
            got.problems,
            keys_read=got.keys_read,
            mac_checked=got.mac_checked,
            deployment=got.inventory.deployment,
        )
        result.warnings.extend(got.warnings)
        if record:
            broken = got.inventory.deployment.audit_chain_ok is False
            self._record(
                "audit.run",
                best_effort=broken,
                result_warnings=result.warnings,
                rule_sets=",".join(rs.id for rs in result.rule_sets),
                as_of=iso(result.as_of),
                findings=len(result.findings),
                not_evaluated=len(result.unknown),
                keys=result.keys_evaluated,
                now=now,
                **(record_fields or {}),
            )
        return result, got

    def audit_evidence(
        self,
        directory: str | Path,
        compliance: str | list[str] | None = "all",
        rules: str | Path | None = None,
        as_of: datetime | None = None,
        *,
        now: datetime | None = None,
        enforce_drafts: bool = False,
    ) -> tuple[AuditResult, dict[str, Any]]:
        """:meth:`audit`, plus a signed evidence bundle in ``directory`` (see
        :mod:`ekm.compliance.evidence`). The ``audit.run`` record names the bundle's manifest
        hash, so the log vouches for the bundle and the bundle for the audit."""
        from ekm import __version__
        from ekm.compliance import evidence

        key = evidence.load_or_create(self, now=now)  # needs the master key: fail early
        result, got = self.audit_collected(
            compliance, rules, as_of, now=now, record=False, enforce_drafts=enforce_drafts
        )
        verification = got.log_verify.to_dict() if got.log_verify is not None else {"ok": None}
        info = evidence.write_bundle(
            directory,
            result=result,
            got=got,
            key=key,
            log_verification=verification,
            version=__version__,
        )
        self._record(
            "audit.run",
            best_effort=got.inventory.deployment.audit_chain_ok is False,
            result_warnings=result.warnings,
            rule_sets=",".join(rs.id for rs in result.rule_sets),
            as_of=iso(result.as_of),
            findings=len(result.findings),
            not_evaluated=len(result.unknown),
            keys=result.keys_evaluated,
            evidence_manifest_sha256=info["manifest_sha256"],
            evidence_key=info["signing_key_fingerprint"],
            now=now,
        )
        return result, info

    def verify_audit_log(self, *, now: datetime | None = None) -> LogVerification:
        """Walk the whole chain (rotated files too), MACs included when unlocked.

        The verification itself is recorded (``audit.verify``) unless the log is missing; on a
        broken chain that record is best effort, since the tail may be what is damaged.
        """
        reason = self._try_unlock()
        res = LogVerification(**vars(self.audit_log.verify()))
        if reason is not None:
            res.warnings.append(LOCKED_WARNING.format(reason=reason.rstrip(".")))
        self._record(
            "audit.verify",
            best_effort=not res.ok,
            # a broken chain is the finding itself; not logging this run adds nothing to it
            result_warnings=res.warnings if res.ok else None,
            result="ok" if res.ok else "failed",
            records=res.records,
            files=len(res.files),
            mac_checked=res.keyed,
            now=now,
        )
        return res

    def _record(
        self, op: str, *, best_effort: bool, result_warnings: list[str] | None, **fields: Any
    ) -> None:
        """Append one record if the log exists; never create a log an audit found missing."""
        log = self.audit_log
        if not log.files():
            return
        try:
            log.append(op, **fields)
        except EkmError as exc:
            if not best_effort:
                raise
            if result_warnings is not None:
                result_warnings.append(f"this run was not audit-logged ({exc.message})")
